#!/usr/bin/env node
// Per-token decoder time of the q8 decoders before and after optimizeDecoder's rewrite (batch 1, KV cache, the
// teacher-forced jfk.wav greedy tokens), plus the one-time rewrite cost (cold), the cache-hit cost (warm), session
// load time and each variant's RSS (in its own process).
//
//   npm run build && node bench/decoder-step.js [--models whisper-base,whisper-tiny.en] [--threads 2] [--rounds 7]
//
// Rounds alternate original and rewritten sessions so that load from other processes hits both alike; the figure is
// the median (and the minimum) over rounds of the mean time of the cached steps (one token each).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.WHISPER_TS_SHARED ?? resolve(ROOT, '../shared');
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const threads = Number(arg('threads', '2'));
const rounds = Number(arg('rounds', '7'));
const models = arg('models', 'whisper-base,whisper-tiny.en').split(',');

const { optimizeDecoder } = await import(join(ROOT, 'dist/runtime/optimize.js'));
const { createSession, ort } = await import(join(ROOT, 'dist/runtime/session.js'));

const DECODER = 'onnx/decoder_model_merged_quantized.onnx';

if (args[0] === '--child') {
  // RSS of one decoder session in a process of its own: load, then decode 30 steps on a random encoder output.
  const [, path, heads, dModel] = args;
  const session = await createSession(path, { threads });
  const loaded = process.memoryUsage().rss;
  const hidden = new ort.Tensor('float32', Float32Array.from({ length: 1500 * Number(dModel) }, Math.random), [
    1,
    1500,
    Number(dModel),
  ]);
  await teacherForce(session, hidden, Number(heads), [50257], Array.from({ length: 30 }, (_, i) => 400 + i));
  console.log(JSON.stringify({ loaded, decoded: process.memoryUsage().rss }));
  process.exit(0);
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(fn) {
  const t0 = performance.now();
  const value = await fn();
  return [performance.now() - t0, value];
}

/** Prompt with an empty past, then one token a step with the past fed back; returns the cached steps' times. */
async function teacherForce(session, hidden, heads, prompt, tokens) {
  const pastNames = session.inputNames.filter((n) => n.startsWith('past_key_values.'));
  const layers = pastNames.length / 4;
  const headSize = hidden.dims[2] / heads;
  const ids = (t) => new ort.Tensor('int64', BigInt64Array.from(t.map(BigInt)), [1, t.length]);
  // the rewritten decoder's extra inputs (runtime/optimize): positions, a zero padding bias, every position's logits
  const extra = (past, n) => {
    const feeds = {};
    if (session.inputNames.includes('position_ids')) {
      feeds.position_ids = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, j) => BigInt(past + j)), [1, n]);
      feeds.attention_bias = new ort.Tensor('float32', new Float32Array(past + n), [1, 1, 1, past + n]);
    }
    if (session.inputNames.includes('logits_from')) feeds.logits_from = new ort.Tensor('int64', BigInt64Array.of(0n), [1]);
    return feeds;
  };
  const feeds = { input_ids: ids(prompt), encoder_hidden_states: hidden, use_cache_branch: new ort.Tensor('bool', [false], [1]), ...extra(0, prompt.length) };
  const empty = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headSize]);
  for (const n of pastNames) feeds[n] = empty;
  let out = await session.run(feeds);
  const encoderPast = {};
  for (let l = 0; l < layers; l++) {
    for (const kv of ['key', 'value']) encoderPast[`past_key_values.${l}.encoder.${kv}`] = out[`present.${l}.encoder.${kv}`];
  }
  // the decoder presents, or (a rewritten decoder has none) the past with each step's keys/values appended
  const past = {};
  const keep = (o) => {
    for (let l = 0; l < layers; l++) {
      for (const kv of ['key', 'value']) {
        const name = `past_key_values.${l}.decoder.${kv}`;
        past[name] = o[`present.${l}.decoder.${kv}`] ?? concatPositions(past[name], o[`step.${l}.decoder.${kv}`]);
      }
    }
  };
  keep(out);
  const times = [];
  for (const [i, token] of tokens.entries()) {
    const step = { input_ids: ids([token]), encoder_hidden_states: hidden, use_cache_branch: new ort.Tensor('bool', [true], [1]), ...encoderPast, ...extra(prompt.length + i, 1) };
    Object.assign(step, past);
    const t0 = performance.now();
    out = await session.run(step);
    times.push(performance.now() - t0);
    keep(out);
  }
  return times;
}

/** `past` [1, heads, length, headDim] with `step` [1, heads, n, headDim] appended (what a present output holds). */
function concatPositions(past, step) {
  if (past === undefined) return step;
  const [, heads, length, headDim] = past.dims;
  const n = step.dims[2];
  const out = new Float32Array(heads * (length + n) * headDim);
  for (let h = 0; h < heads; h++) {
    out.set(past.data.subarray(h * length * headDim, (h + 1) * length * headDim), h * (length + n) * headDim);
    out.set(step.data.subarray(h * n * headDim, (h + 1) * n * headDim), (h * (length + n) + length) * headDim);
  }
  return new ort.Tensor('float32', out, [1, heads, length + n, headDim]);
}

function childRss(path, heads, dModel) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', path, String(heads), String(dModel), '--threads', String(threads)], {
    encoding: 'utf8',
  });
  if (r.status !== 0) return { loaded: NaN, decoded: NaN };
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;
const rows = [];
for (const name of models) {
  const dir = join(SHARED, 'models', name);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const heads = config.decoder_attention_heads;
  const englishOnly = name.includes('.en');
  const prompt = englishOnly ? [50257, 50362] : [50258, 50259, 50359, 50363];
  const reference = JSON.parse(readFileSync(join(SHARED, 'models', englishOnly ? name : 'whisper-base', 'reference', 'outputs.jsonl'), 'utf8').split('\n')[0]);
  const tokens = reference.greedy.tokens;
  const source = join(dir, DECODER);

  const cacheDir = mkdtempSync(join(tmpdir(), 'whisper-ts-bench-graphs-'));
  const [cold, result] = await timed(() => optimizeDecoder(source, { cacheDir }));
  const [warm] = await timed(() => optimizeDecoder(source, { cacheDir }));
  // A new path to the same content (a Hub snapshot symlink, say): no stat memo yet, so the file is hashed once.
  const link = join(cacheDir, 'link.onnx');
  symlinkSync(source, link);
  const [hashOnly] = await timed(() => optimizeDecoder(link, { cacheDir }));

  const encoder = await createSession(join(dir, 'onnx/encoder_model_quantized.onnx'), { threads });
  const mel = readFileSync(join(SHARED, 'models', englishOnly ? name : 'whisper-base', 'reference', 'jfk_mel.f32'));
  const features = new ort.Tensor('float32', new Float32Array(mel.buffer, mel.byteOffset, mel.byteLength / 4).slice(), [1, 80, 3000]);
  const hidden = (await encoder.run({ input_features: features })).last_hidden_state;
  await encoder.release();

  const [loadOriginal, original] = await timed(() => createSession(source, { threads }));
  const [loadRewritten, rewritten] = await timed(() => createSession(result.path, { threads }));
  const perRound = { original: [], rewritten: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [key, session] of [['original', original], ['rewritten', rewritten]]) {
      const times = await teacherForce(session, hidden, heads, prompt, tokens);
      if (r > 0) perRound[key].push(times.reduce((a, b) => a + b, 0) / times.length); // round 0 warms up
    }
  }
  await original.release();
  await rewritten.release();
  const rssOriginal = childRss(source, heads, config.d_model);
  const rssRewritten = childRss(result.path, heads, config.d_model);
  rmSync(cacheDir, { recursive: true, force: true });

  rows.push({
    model: name,
    'original ms/token': `${median(perRound.original).toFixed(2)} (min ${Math.min(...perRound.original).toFixed(2)})`,
    'rewritten ms/token': `${median(perRound.rewritten).toFixed(2)} (min ${Math.min(...perRound.rewritten).toFixed(2)})`,
    'rewrite cold ms': cold.toFixed(0),
    'cache hit ms': warm.toFixed(2),
    'new path, hash only ms': hashOnly.toFixed(0),
    'load original ms': loadOriginal.toFixed(0),
    'load rewritten ms': loadRewritten.toFixed(0),
    'RSS original': mb(rssOriginal.decoded),
    'RSS rewritten': mb(rssRewritten.decoded),
  });
}
console.log(`decoder step, ${threads} threads, ${rounds - 1} timed rounds of the jfk.wav greedy tokens`);
console.table(rows);
