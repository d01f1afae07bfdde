#!/usr/bin/env node
// Soak of the live transcriber: longform_en (4.85 min) looped into one long stream (30 minutes by default), pushed in
// 100-ms chunks as fast as the decoder takes them (or --realtime: at real speed), with the memory and the buffer
// printed for every minute of audio. Exits 1 if the resident memory of the last minutes is more than --max-growth-mb
// above that of the first ones (after warm-up), or if the buffer ever held more than 30 s.
// Build first (npm run build), then: node --expose-gc bench/stream-soak.mjs [--minutes 30] [--model DIR]
//   [--threads 2] [--realtime] [--min-chunk 0.5] [--max-growth-mb 64]
import { performance } from 'node:perf_hooks';
import { createStream, decodeAudio, loadModel } from '../dist/index.js';

const args = process.argv.slice(2);
const value = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const minutes = Number(value('--minutes', 30));
const model = value('--model', '/work/shared/models/whisper-tiny.en');
const threads = Number(value('--threads', 2));
const realtime = args.includes('--realtime');
const minChunk = Number(value('--min-chunk', 0.5));
const maxGrowthMb = Number(value('--max-growth-mb', 64));
const file = value('--audio', '/work/shared/eval/longform_en/librispeech_test_other_3ch_concat.flac');

const SR = 16000;
const CHUNK = SR / 10;
const mb = (bytes) => bytes / 1024 / 1024;
const gc = globalThis.gc ?? (() => undefined);

const source = await decodeAudio(file);
const whisper = await loadModel(model, { threads });
let finals = 0;
let finalWords = 0;
let lastFinalAt = 0;
const delays = []; // per minute: seconds between a final's last word end and the audio heard when it was sent
let minuteDelays = [];
const stream = await createStream(whisper, { language: 'en', minChunkSeconds: minChunk }, {
  onEvent: (e) => {
    if (e.type !== 'final') return;
    finals++;
    finalWords += e.words.length;
    lastFinalAt = e.audioEnd;
    minuteDelays.push(e.audioEnd - e.end);
  },
});

const total = Math.round(minutes * 60 * SR);
const rows = [];
console.log(
  `${file} looped to ${minutes} min, ${model}, ${threads} thread(s), min chunk ${minChunk} s, ` +
    `${realtime ? 'real speed' : 'as fast as it decodes'}${globalThis.gc ? '' : ' (run with --expose-gc for steadier RSS)'}`,
);
console.log('minute  RSS MB  heap MB  buffer s  peak s  backlog s  steps  ms/step  finals  words  prompt  final lag s');
const started = performance.now();
let nextReport = 60 * SR;
let lastSteps = 0;
let lastStepSeconds = 0;
for (let at = 0; at < total; at += CHUNK) {
  const offset = at % source.length;
  const n = Math.min(CHUNK, source.length - offset, total - at);
  if (realtime) {
    const wait = started + ((at + n) / SR) * 1000 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    stream.push(source.subarray(offset, offset + n));
  } else {
    stream.push(source.subarray(offset, offset + n));
    await stream.drain();
  }
  if (at + n >= nextReport) {
    nextReport += 60 * SR;
    gc();
    const m = process.memoryUsage();
    const s = stream.stats;
    const steps = s.steps - lastSteps;
    const msPerStep = steps > 0 ? ((s.stepSeconds - lastStepSeconds) * 1000) / steps : 0;
    lastSteps = s.steps;
    lastStepSeconds = s.stepSeconds;
    const lag = minuteDelays.length ? minuteDelays.sort((a, b) => a - b)[Math.floor(minuteDelays.length / 2)] : NaN;
    delays.push(lag);
    minuteDelays = [];
    const row = { minute: rows.length + 1, rss: mb(m.rss), heap: mb(m.heapUsed), buffer: s.bufferSeconds, peak: s.peakBufferSeconds };
    rows.push(row);
    console.log(
      `${String(row.minute).padStart(6)}  ${row.rss.toFixed(0).padStart(6)}  ${row.heap.toFixed(0).padStart(7)}  ` +
        `${s.bufferSeconds.toFixed(1).padStart(8)}  ${s.peakBufferSeconds.toFixed(1).padStart(6)}  ` +
        `${s.backlogSeconds.toFixed(1).padStart(9)}  ${String(s.steps).padStart(5)}  ${msPerStep.toFixed(0).padStart(7)}  ` +
        `${String(finals).padStart(6)}  ${String(finalWords).padStart(5)}  ${String(s.promptTokens).padStart(6)}  ${lag.toFixed(2).padStart(11)}`,
    );
  }
}
await stream.end();
await whisper.dispose();
const wall = (performance.now() - started) / 1000;
console.log(`${(total / SR / 60).toFixed(1)} min of audio in ${(wall / 60).toFixed(1)} min; ${finals} finals, ${finalWords} words, last final at ${lastFinalAt.toFixed(1)} s`);

// growth: the median RSS of the last quarter against the first quarter after a 2-minute warm-up
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const warm = rows.slice(Math.min(2, rows.length - 1));
const quarter = Math.max(1, Math.floor(warm.length / 4));
const first = median(warm.slice(0, quarter).map((r) => r.rss));
const last = median(warm.slice(-quarter).map((r) => r.rss));
const peak = Math.max(...rows.map((r) => r.peak), 0);
console.log(`RSS ${first?.toFixed(0)} MB → ${last?.toFixed(0)} MB (limit +${maxGrowthMb} MB); peak buffer ${peak.toFixed(1)} s (limit 30 s)`);
if (rows.length >= 2 && last - first > maxGrowthMb) {
  console.log('FAIL: the resident memory grew');
  process.exitCode = 1;
}
if (peak > 30) {
  console.log('FAIL: the buffer grew past the Whisper window');
  process.exitCode = 1;
}
