#!/usr/bin/env node
// Beam search against greedy on longform_en with openai's transcribe defaults (temperature fallback, conditioning on
// previous text): real-time factor (wall and CPU time), the beam/greedy speed ratio, the decoder steps, and WER
// (scored with ../shared/tools/score/score.py when the venv is there). One process, one model; the runs alternate
// greedy, beam, greedy, beam … so that both see the same load, and each mode's best run is reported.
//
//   npm run build && node bench/beam.mjs [--model ../shared/models/whisper-base] [--threads 2] [--runs 1]
//                                        [--beam 5] [--seconds 290.9] [--options '{"withoutTimestamps":true}']
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.WHISPER_TS_SHARED ?? resolve(ROOT, '../shared');
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const model = resolve(arg('model', join(SHARED, 'models', 'whisper-base')));
const threads = Number(arg('threads', '2'));
const runs = Number(arg('runs', '1'));
const beam = Number(arg('beam', '5'));
const seconds = Number(arg('seconds', 'Infinity'));
const extra = JSON.parse(arg('options', '{}'));
const audioPath = join(SHARED, 'eval', 'longform_en', 'librispeech_test_other_3ch_concat.flac');

const { decodeAudio, loadModel } = await import(join(ROOT, 'dist', 'index.js'));
const all = await decodeAudio(audioPath);
const samples = Number.isFinite(seconds) ? all.subarray(0, Math.round(seconds * 16000)) : all;
const duration = samples.length / 16000;
const whisper = await loadModel(model, { threads });

// decoder steps and the rows they ran, counted at the model's decode call (the bench reads, it changes nothing)
const decode = whisper.model.decode.bind(whisper.model);
let steps = 0;
let rows = 0;
whisper.model.decode = async (tokens, cache, opts) => {
  steps++;
  rows += cache.batch;
  return decode(tokens, cache, opts);
};

async function once(beamSize) {
  steps = 0;
  rows = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await whisper.transcribeAll(samples, { language: 'en', beamSize, ...extra });
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const temperatures = r.segments.map((s) => s.temperature).filter((t) => t > 0).length;
  return { beamSize, wallS, cpuS: (cpu.user + cpu.system) / 1e6, steps, rows, text: r.text, fallbackSegments: temperatures };
}

function wer(text) {
  const py = join(ROOT, '.venv', 'bin', 'python');
  if (!existsSync(py) || Number.isFinite(seconds)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bench-beam-'));
  writeFileSync(join(dir, basename(audioPath).replace(/\.flac$/, '.txt')), text);
  const out = execFileSync(py, [join(SHARED, 'tools', 'score', 'score.py'), dirname(audioPath), dir, 'en', '--ext', 'txt'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return Number(/wer ([0-9.]+)/.exec(out)?.[1]);
}

const results = { greedy: [], beam: [] };
for (let i = 0; i < runs; i++) {
  results.greedy.push(await once(1));
  results.beam.push(await once(beam));
}
await whisper.dispose();
const best = (rs) => rs.reduce((a, b) => (b.wallS < a.wallS ? b : a));
const g = best(results.greedy);
const b = best(results.beam);
console.log(`longform_en (${duration.toFixed(1)} s), model ${basename(model)}, ${threads} threads, best of ${runs}, options ${JSON.stringify(extra)}`);
console.log('mode      | real-time × (wall) | real-time × (CPU) | decoder steps | rows stepped | fallback segs | WER');
for (const r of [g, b]) {
  const w = wer(r.text);
  console.log(
    `${(r.beamSize === 1 ? 'greedy' : `beam ${r.beamSize}`).padEnd(9)} | ${(duration / r.wallS).toFixed(1).padStart(18)} | ${(duration / r.cpuS).toFixed(1).padStart(17)} | ${String(r.steps).padStart(13)} | ${String(r.rows).padStart(12)} | ${String(r.fallbackSegments).padStart(13)} | ${w === undefined ? '-' : (w * 100).toFixed(2) + ' %'}`,
  );
}
console.log(`beam ${beam} speed / greedy speed: ${(g.wallS / b.wallS).toFixed(2)} (wall), ${(g.cpuS / b.cpuS).toFixed(2)} (CPU); goal ≥ 0.6`);
