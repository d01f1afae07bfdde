#!/usr/bin/env node
// Silero VAD speed on one file: the sequence model whisper-ts runs vs. the file as shipped, run window by window.
// Build first (npm run build), then: node bench/vad.mjs [audio] [--threads N] [--repeat N]
import { performance } from 'node:perf_hooks';
import { decodeAudio } from '../dist/audio/index.js';
import { loadVad } from '../dist/vad/index.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const file = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--')) ??
  '/work/shared/eval/longform_en/librispeech_test_other_3ch_concat.flac';
const threads = flag('--threads', 1);
const repeat = flag('--repeat', 5);

const samples = await decodeAudio(file);
const seconds = samples.length / 16000;
console.log(`${file}: ${seconds.toFixed(1)} s of audio, ${threads} thread(s), best of ${repeat}`);

for (const engine of ['sequence', 'stepwise']) {
  const t0 = performance.now();
  const vad = await loadVad({ threads, engine });
  const loadMs = performance.now() - t0;
  let best = Infinity;
  let spans = [];
  for (let r = 0; r < repeat; r++) {
    const t = performance.now();
    spans = await vad.speechTimestamps(samples);
    best = Math.min(best, performance.now() - t);
  }
  await vad.dispose();
  console.log(
    `${engine.padEnd(8)}  load ${loadMs.toFixed(0).padStart(4)} ms  VAD ${best.toFixed(0).padStart(5)} ms` +
      `  (${(seconds / (best / 1000)).toFixed(0)}x real time, ${spans.length} span(s))`,
  );
}
