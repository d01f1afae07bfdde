// The upload half of the page: send a file with stream=true, show segments as they arrive, offer subtitle files.
import { apiHeaders, apiKey, download, errorMessage, formatTimestamp, readEvents, serverInfo, toSrt, toTxt, toVtt } from './common.js';

const $ = (id) => document.getElementById(id);
const form = $('upload-form');
const statusLine = $('status');
const list = $('segments');
const downloads = $('downloads');
const keyLabel = $('api-key-label');
const keyInput = $('api-key');

let segments = [];
let baseName = 'transcript';
let controller;

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle('error', isError);
}

function busy(on) {
  $('start').disabled = on;
  $('cancel').hidden = !on;
}

function addSegment(s) {
  segments.push(s);
  const li = document.createElement('li');
  const time = document.createElement('time');
  time.textContent = `${formatTimestamp(s.start)} → ${formatTimestamp(s.end)}`;
  const text = document.createElement('span');
  text.textContent = s.text.trim();
  li.append(time, text);
  list.append(li);
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  if (!keyLabel.hidden) apiKey.set(keyInput.value.trim());
  segments = [];
  list.replaceChildren();
  downloads.hidden = true;
  baseName = file.name.replace(/\.[^.]+$/, '') || 'transcript';
  const body = new FormData();
  body.append('file', file);
  body.append('response_format', 'json');
  body.append('stream', 'true');
  const language = $('language').value.trim();
  if (language) body.append('language', language);
  const endpoint = $('task').value === 'translate' ? 'v1/audio/translations' : 'v1/audio/transcriptions';
  controller = new AbortController();
  busy(true);
  setStatus(`uploading ${file.name}…`);
  const started = performance.now();
  try {
    const response = await fetch(endpoint, { method: 'POST', body, headers: apiHeaders(), signal: controller.signal });
    if (response.status === 401) keyLabel.hidden = false;
    if (!response.ok) throw new Error(await errorMessage(response));
    setStatus('transcribing…');
    let done;
    await readEvents(response, (e) => {
      if (e.type === 'transcript.text.segment') {
        addSegment(e);
        setStatus(`transcribing… ${formatTimestamp(e.end)}`);
      } else if (e.type === 'transcript.text.done') {
        done = e;
      } else if (e.type === 'error') {
        throw new Error(`${e.error.message} (${e.error.code})`);
      }
    });
    if (!done) throw new Error('the server closed the stream before the end');
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    setStatus(`done: ${segments.length} segment(s), ${done.duration.toFixed(1)} s of ${done.language} audio in ${seconds} s`);
    downloads.hidden = segments.length === 0;
  } catch (err) {
    setStatus(err.name === 'AbortError' ? 'cancelled' : `error: ${err.message}`, err.name !== 'AbortError');
  } finally {
    busy(false);
  }
});

$('cancel').addEventListener('click', () => controller?.abort());

downloads.addEventListener('click', (event) => {
  const format = event.target?.dataset?.format;
  if (format === 'srt') download(`${baseName}.srt`, toSrt(segments), 'application/x-subrip');
  if (format === 'vtt') download(`${baseName}.vtt`, toVtt(segments), 'text/vtt');
  if (format === 'txt') download(`${baseName}.txt`, toTxt(segments), 'text/plain');
});

serverInfo()
  .then((info) => {
    $('server-info').textContent = `model ${info.model} · ${info.workers.ready} worker(s)`;
    // the key field is shown before anything is sent when the server needs one (the live half reads it too)
    if (info.api_key_required) keyLabel.hidden = false;
    if (!info.multilingual) {
      $('task').querySelector('option[value="translate"]').disabled = true;
    }
  })
  .catch((err) => setStatus(`server: ${err.message}`, true));
keyInput.value = apiKey.get();
if (keyInput.value) keyLabel.hidden = false;
keyInput.addEventListener('change', () => apiKey.set(keyInput.value.trim()));
