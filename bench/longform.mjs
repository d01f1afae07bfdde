#!/usr/bin/env node
// Transcribes longform_en with whisper-ts and with @huggingface/transformers (transformers.js) on the same ONNX files,
// dtype and thread count, each in its own process (so peak RSS is its own), and prints the real-time factor of
// each, their ratio, peak RSS and WER (scored with ../shared/tools/score/score.py when the venv is there).
//
//   npm run build && node bench/longform.mjs [--model ../shared/models/whisper-base] [--threads 2] [--runs 1]
//                                            [--only whisper-ts|transformers.js] [--beam 5] [--dtype q8|fp32|…]
//                                            [--options '{call options}'] [--load '{"activations":"int8"}']
//
// --dtype (default q8) picks the same weights variant for both runtimes (fp32 needs a folder that has it, e.g. one
// made with ../shared/tools/convert/export_onnx.py).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
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
const only = arg('only', '');
const extra = JSON.parse(arg('options', '{}'));
const load = JSON.parse(arg('load', '{}')); // whisper-ts load options, e.g. '{"activations":"int8"}'
const dtype = arg('dtype', 'q8');
const audio = join(SHARED, 'eval', 'longform_en', 'librispeech_test_other_3ch_concat.flac');

function child(kind) {
  // the child decodes the audio first (not timed), loads the model (timed apart), then transcribes (timed)
  const code = `
    const kind = ${JSON.stringify(kind)};
    const model = ${JSON.stringify(model)};
    const audioPath = ${JSON.stringify(audio)};
    const threads = ${threads};
    const dtype = ${JSON.stringify(dtype)};
    const extra = ${JSON.stringify(extra)};
    const load = ${JSON.stringify(load)};
    const { decodeAudio, loadModel } = await import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))});
    const samples = await decodeAudio(audioPath);
    let t0 = performance.now();
    let text = '';
    let loadMs = 0;
    let runMs = 0;
    if (kind === 'whisper-ts') {
      const w = await loadModel(model, { threads, dtype, ...load });
      loadMs = performance.now() - t0;
      t0 = performance.now();
      const r = await w.transcribeAll(samples, { language: 'en', ...extra });
      runMs = performance.now() - t0;
      text = r.text;
    } else {
      const { pipeline, env } = await import('@huggingface/transformers');
      env.allowRemoteModels = false;
      env.localModelPath = ${JSON.stringify(dirname(model))} + '/';
      const asr = await pipeline('automatic-speech-recognition', ${JSON.stringify(basename(model))}, {
        dtype, device: 'cpu', session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
      });
      loadMs = performance.now() - t0;
      t0 = performance.now();
      const out = await asr(samples, { chunk_length_s: 30, stride_length_s: 5, return_timestamps: true, language: 'en', task: 'transcribe' });
      runMs = performance.now() - t0;
      text = out.text;
    }
    process.stdout.write(JSON.stringify({ kind, loadMs, runMs, seconds: samples.length / 16000, maxRssMb: process.resourceUsage().maxRSS / 1024, text }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${kind} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function wer(text) {
  const py = join(ROOT, '.venv', 'bin', 'python');
  if (!existsSync(py)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  writeFileSync(join(dir, basename(audio).replace(/\.flac$/, '.txt')), text);
  const out = execFileSync(py, [join(SHARED, 'tools', 'score', 'score.py'), dirname(audio), dir, 'en', '--ext', 'txt'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return Number(/wer ([0-9.]+)/.exec(out)?.[1]);
}

const kinds = only ? [only] : ['whisper-ts', 'transformers.js'];
const results = {};
for (const kind of kinds) {
  const rs = [];
  for (let i = 0; i < runs; i++) rs.push(child(kind));
  const best = rs.reduce((a, b) => (b.runMs < a.runMs ? b : a));
  results[kind] = { ...best, rtf: best.seconds / (best.runMs / 1000), wer: wer(best.text), runsMs: rs.map((r) => Math.round(r.runMs)) };
}
console.log(`longform_en (${results[kinds[0]].seconds.toFixed(1)} s), model ${basename(model)} ${dtype}, ${threads} threads, best of ${runs}`);
console.log('runtime          | real-time × | transcribe s | load s | peak RSS MB | WER');
for (const [k, r] of Object.entries(results)) {
  console.log(
    `${k.padEnd(16)} | ${r.rtf.toFixed(1).padStart(11)} | ${(r.runMs / 1000).toFixed(1).padStart(12)} | ${(r.loadMs / 1000).toFixed(1).padStart(6)} | ${r.maxRssMb.toFixed(0).padStart(11)} | ${r.wer === undefined ? '-' : (r.wer * 100).toFixed(2) + ' %'}`,
  );
}
if (results['whisper-ts'] && results['transformers.js']) {
  console.log(`ratio whisper-ts / transformers.js: ${(results['whisper-ts'].rtf / results['transformers.js'].rtf).toFixed(2)}×`);
}
if (args.includes('--json')) console.log(JSON.stringify(results, (k, v) => (k === 'text' ? undefined : v)));
