// The live half of the page: the microphone through an AudioWorklet (16 kHz PCM) to the WebSocket /v1/realtime;
// final text is appended as it is committed, the partial text (which may still change) is shown after it.
import { apiKey, formatTimestamp, serverInfo } from './common.js';

const $ = (id) => document.getElementById(id);
const form = $('live-form');
const finals = $('live-final');
const partial = $('live-partial');
const statusLine = $('live-status');

let session;
let needsKey = false;

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle('error', isError);
}

function recording(on) {
  $('live-start').disabled = on;
  $('live-stop').hidden = !on;
}

async function start() {
  finals.replaceChildren();
  partial.textContent = '';
  recording(true);
  setStatus('starting the microphone…');
  const media = await navigator.mediaDevices.getUserMedia({
    // Whisper wants the voice as it is: no noise suppression or gain riding (they clip quiet word onsets)
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext({ sampleRate: 16000 });
  await context.audioWorklet.addModule('live-worklet.js');
  const source = context.createMediaStreamSource(media);
  const capture = new AudioWorkletNode(context, 'pcm-capture');
  const mute = context.createGain();
  mute.gain.value = 0;
  source.connect(capture).connect(mute).connect(context.destination);

  const url = new URL('v1/realtime', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const key = apiKey.get();
  const ws = new WebSocket(url, key ? ['realtime', `openai-insecure-api-key.${key}`] : undefined);
  ws.binaryType = 'arraybuffer';
  const options = { task: $('live-task').value };
  const language = $('live-language').value.trim();
  if (language) options.language = language;
  let count = 0;
  let failed = false;

  const stopAudio = () => {
    capture.port.onmessage = null;
    media.getTracks().forEach((t) => t.stop());
    context.close().catch(() => undefined);
  };
  session = {
    stop: () => {
      stopAudio();
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'end' }));
      setStatus('finishing…');
    },
  };
  ws.addEventListener('open', () => {
    ws.send(JSON.stringify({ type: 'start', format: 'pcm16', sample_rate: 16000, options }));
    capture.port.onmessage = (e) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(e.data);
    };
  });
  ws.addEventListener('message', (message) => {
    const e = JSON.parse(message.data);
    if (e.type === 'ready') setStatus('listening…');
    else if (e.type === 'language') setStatus(`listening… (${e.language})`);
    else if (e.type === 'partial') partial.textContent = e.text;
    else if (e.type === 'final') {
      count++;
      const span = document.createElement('span');
      span.textContent = e.text;
      span.title = `${formatTimestamp(e.start)} → ${formatTimestamp(e.end)}`;
      finals.append(span);
      partial.textContent = '';
    } else if (e.type === 'done') {
      setStatus(`done: ${count} final(s), ${e.stats.received.toFixed(1)} s of audio`);
    } else if (e.type === 'error') {
      failed = true;
      setStatus(`error: ${e.message} (${e.code})`, true);
    }
  });
  ws.addEventListener('close', (e) => {
    stopAudio();
    recording(false);
    session = undefined;
    if (failed || e.code === 1000) return;
    // a refused upgrade (a missing or wrong API key) reaches the page only as 1006
    const hint = e.code === 1006 && needsKey ? ': this server needs an API key; enter it in the form above' : '';
    setStatus(`the connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''})${hint}`, true);
  });
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  start().catch((err) => {
    recording(false);
    setStatus(`error: ${err.message}`, true);
  });
});
$('live-stop').addEventListener('click', () => session?.stop());

serverInfo()
  .then((info) => {
    if (!info.multilingual) $('live-task').querySelector('option[value="translate"]').disabled = true;
    needsKey = info.api_key_required === true;
  })
  .catch(() => undefined);
