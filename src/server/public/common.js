// What the upload and the live halves of the page share. Plain ES modules: no build step.

/** HH:MM:SS.mmm (vtt) or HH:MM:SS,mmm (srt), as whisper-ts's writers (src/format/index.ts) lay them out. */
export function formatTimestamp(seconds, marker = '.') {
  let ms = Math.round(Math.max(0, seconds) * 1000);
  const h = Math.floor(ms / 3_600_000);
  ms -= h * 3_600_000;
  const m = Math.floor(ms / 60_000);
  ms -= m * 60_000;
  const s = Math.floor(ms / 1000);
  ms -= s * 1000;
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(h)}:${p(m)}:${p(s)}${marker}${p(ms, 3)}`;
}

const cue = (s) => s.text.trim().replace(/-->/g, '->');

/** Subtitle files from segments ({start, end, text}), the same layout as the server's srt/vtt responses. */
export function toSrt(segments) {
  return segments.map((s, i) => `${i + 1}\n${formatTimestamp(s.start, ',')} --> ${formatTimestamp(s.end, ',')}\n${cue(s)}\n`).join('\n');
}
export function toVtt(segments) {
  return 'WEBVTT\n\n' + segments.map((s) => `${formatTimestamp(s.start)} --> ${formatTimestamp(s.end)}\n${cue(s)}\n`).join('\n');
}
export function toTxt(segments) {
  return segments.map((s) => s.text.trim() + '\n').join('');
}

export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const KEY = 'whisper-ts.api-key';
export const apiKey = {
  get: () => localStorage.getItem(KEY) ?? '',
  set: (k) => (k ? localStorage.setItem(KEY, k) : localStorage.removeItem(KEY)),
};

/** Headers for /v1/ requests (the Bearer key when one is stored). */
export function apiHeaders() {
  const k = apiKey.get();
  return k ? { authorization: `Bearer ${k}` } : {};
}

/** The message of an OpenAI-shaped error response, or the status line. */
export async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body?.error?.message) return `${body.error.message} (${body.error.code ?? response.status})`;
  } catch {
    // not JSON
  }
  return `${response.status} ${response.statusText}`;
}

/** Calls onEvent with each JSON `data:` event of a server-sent-events response body. */
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      if (data && data !== '[DONE]') onEvent(JSON.parse(data));
    }
  }
}

/** GET /health: the served model and whether it is multilingual. */
export async function serverInfo() {
  const r = await fetch('health');
  if (!r.ok) throw new Error(await errorMessage(r));
  return r.json();
}
