#!/usr/bin/env node
// Checks the decoder's integer output projection (runtime/optimize `integerProjection`: the tied projection of an
// 8-bit file computed on the activation split in three 8-bit parts) against the float32 table it replaces: every eval
// file's reference tokens (with timestamps) are teacher-forced through both decoders in one run, and the script prints
// the largest logit difference, the largest log-sum-exp difference and the positions whose argmax differs.
//
//   npm run build && node bench/projection-check.mjs [--model ../shared/models/whisper-base] [--limit N]
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { N_FRAMES, N_SAMPLES, decodeAudio, logMelSpectrogram, melWindow } from '../dist/audio/index.js';
import { WhisperModel } from '../dist/model/whisper-model.js';
import { optimizeDecoder, optimizeEncoder } from '../dist/runtime/optimize.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.WHISPER_TS_SHARED ?? resolve(ROOT, '../shared');
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const dir = resolve(arg('model', join(SHARED, 'models', 'whisper-base')));
const limit = Number(arg('limit', 'Infinity'));

const load = (integerProjection) =>
  WhisperModel.load(dir, {
    threads: 2,
    activations: 'float32',
    graphRewriter: async (path, { role, floatActivations, rowActivations, cacheDir }) =>
      (role === 'encoder'
        ? await optimizeEncoder(path, { floatActivations, rowActivations, ...(cacheDir ? { cacheDir } : {}) })
        : await optimizeDecoder(path, { floatActivations, rowActivations, integerProjection, ...(cacheDir ? { cacheDir } : {}) })
      ).path,
  });
const [integer, float] = [await load(true), await load(false)];
const tk = float.tokenizer;
const records = readFileSync(join(dir, 'reference', 'outputs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const evalDir = (set) => join(SHARED, 'eval', set);

let files = 0;
let positions = 0;
let maxLogit = 0;
let maxLse = 0;
let closest = Infinity; // the smallest gap between the two best float logits
const flips = [];
for (const r of records.slice(0, limit)) {
  const tokens = r.timestamps?.tokens;
  if (!tokens) continue;
  const audio = await decodeAudio(join(evalDir(r.set), r.file));
  const mel = logMelSpectrogram(audio, float.config.nMels, N_SAMPLES);
  const hidden = await float.encode(melWindow(mel, 0, N_FRAMES), 1);
  const language = r.langid?.top ?? 'en';
  const prompt = float.isMultilingual
    ? [tk.special.sot, tk.languageToToken.get(language), tk.special.transcribe]
    : [tk.special.sot];
  const input = [...prompt, ...tokens];
  const run = async (m) => m.decode(input, m.newCache(hidden), { allLogits: true, logitsFrom: prompt.length - 1 });
  const [a, b] = [await run(float), await run(integer)];
  const vocab = a.vocab;
  const rows = a.allLogits.length / vocab;
  for (let p = 0; p < rows; p++) {
    const x = a.allLogits.subarray(p * vocab, (p + 1) * vocab);
    const y = b.allLogits.subarray(p * vocab, (p + 1) * vocab);
    let ax = 0;
    let ay = 0;
    let second = -Infinity;
    for (let v = 0; v < vocab; v++) {
      maxLogit = Math.max(maxLogit, Math.abs(x[v] - y[v]));
      if (x[v] > x[ax]) {
        second = x[ax];
        ax = v;
      } else if (v !== ax && x[v] > second) second = x[v];
      if (y[v] > y[ay]) ay = v;
    }
    closest = Math.min(closest, x[ax] - second);
    if (ax !== ay) flips.push(`${r.set}/${r.file} position ${p}: ${ax} → ${ay}`);
    if (a.allLogSumExp && b.allLogSumExp) maxLse = Math.max(maxLse, Math.abs(a.allLogSumExp[p] - b.allLogSumExp[p]));
  }
  positions += rows;
  files++;
}
console.log(`${dir}: ${files} files, ${positions} teacher-forced positions`);
console.log(`largest |logit difference| ${maxLogit.toExponential(2)}, largest |log-sum-exp difference| ${maxLse.toExponential(2)}`);
console.log(`smallest gap between the two best float32-table logits: ${closest.toExponential(2)}`);
console.log(`argmax differs at ${flips.length} positions${flips.length ? ':\n  ' + flips.join('\n  ') : ''}`);
await Promise.all([integer.dispose(), float.dispose()]);
