/**
 * optimizeDecoder / optimizeEncoder on the real q8 files. With the files' int8 activations kept
 * (`floatActivations: false`) the rewritten decoder must give the original's logits (same argmax at every step of the
 * teacher-forced jfk sequence); with float activations (the default) every integer matrix product must compute exactly
 * x · dequantized(W), and the real models must still reproduce the reference tokens. The cache must be hit on later
 * calls, and models without the pattern or broken files must come back as documented.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WhisperError } from '../src/errors.js';
import {
  GRAPH_REWRITE_VERSION,
  STEP_BLOCK,
  defaultGraphCacheDir,
  exactSignedInt8Kernels,
  optimizeDecoder,
  optimizeEncoder,
  rewriteModel,
} from '../src/runtime/optimize.js';
import {
  DataType,
  decodeModel,
  encodeModel,
  newAttribute,
  newModel,
  newNode,
  newOpset,
  newTensor,
  newTensorValueInfo,
  type GraphProto,
  type NodeProto,
  type ModelProto,
} from '../src/runtime/onnx-proto.js';
import { createSession, ort } from '../src/runtime/session.js';
import { WhisperModel, type GraphRewrite } from '../src/model/whisper-model.js';
import { BASE, BASE_TS, TINY_EN, readReference } from './helpers/paths.js';

const DECODER = 'onnx/decoder_model_merged_quantized.onnx';
const ENCODER = 'onnx/encoder_model_quantized.onnx';

/**
 * Bound on |logit difference|. The rewrite hands the MatMul the very float32 weights DequantizeLinear computes
 * (bit-identical); only ONNX Runtime's GEMM path changes (a constant weight is pre-packed), which reorders the
 * float32 sums of d_model = 512 products. Measured: 3.4e-5 on this sequence and 4.2e-5 at most over 8171 teacher-
 * forced positions of 96 eval files (logits up to ~40 in magnitude, i.e. a few float32 ulps). 1e-3 leaves room for
 * other CPUs' kernels while staying far below the gaps that decide tokens; the argmax check covers the rest.
 */
const MAX_ABS_DIFF = 1e-3;
/**
 * Block-quantized cached steps against float ones, jfk teacher-forced on whisper-base: logits moved by 0.57 at most
 * (the files' own per-tensor int8 arithmetic: 1.3), no token changed.
 */
const STEP_LOGIT_BOUND = 1;

let cacheDir: string;
let scratch: string;

beforeAll(() => {
  cacheDir = mkdtempSync(join(tmpdir(), 'whisper-ts-graphs-'));
  scratch = mkdtempSync(join(tmpdir(), 'whisper-ts-optimize-'));
});

afterAll(() => {
  rmSync(cacheDir, { recursive: true, force: true });
  rmSync(scratch, { recursive: true, force: true });
});

interface ModelCase {
  dir: string;
  /** sot, [language, task,] notimestamps */
  prompt: number[];
  endOfText: number;
}

const CASES: Record<string, ModelCase> = {
  'whisper-base': { dir: BASE, prompt: [50258, 50259, 50359, 50363], endOfText: 50257 },
  'whisper-tiny.en': { dir: TINY_EN, prompt: [50257, 50362], endOfText: 50256 },
};

function readMel(modelDir: string): ort.Tensor {
  const bytes = readFileSync(join(modelDir, 'reference', 'jfk_mel.f32'));
  const mel = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  return new ort.Tensor('float32', mel.slice(), [1, 80, 3000]);
}

function jfkGreedyTokens(modelDir: string): number[] {
  const record = readReference(modelDir).find((r) => r.file === 'jfk.wav');
  if (record?.greedy === undefined) throw new Error(`no jfk.wav greedy reference in ${modelDir}`);
  return record.greedy.tokens;
}

interface Forced {
  /** One logits row per step: the prompt's last position, then one per forced token. */
  logits: Float32Array[];
  /** Extra outputs of the last step (cross_attentions.* of the timestamped decoder). */
  last: Record<string, ort.Tensor>;
  /** The self-attention keys/values after the last step, by input name (past_key_values.{i}.decoder.*). */
  past: Record<string, ort.Tensor>;
}

/** `past` [1, heads, length, headDim] with `step` [1, heads, n, headDim] after it (what a present output holds). */
function concatPositions(past: ort.Tensor | undefined, step: ort.Tensor): ort.Tensor {
  if (past === undefined) return step;
  const [, heads, length, headDim] = past.dims as [number, number, number, number];
  const n = step.dims[2]!;
  const a = past.data as Float32Array;
  const b = step.data as Float32Array;
  const out = new Float32Array(heads * (length + n) * headDim);
  for (let h = 0; h < heads; h++) {
    out.set(a.subarray(h * length * headDim, (h + 1) * length * headDim), h * (length + n) * headDim);
    out.set(b.subarray(h * n * headDim, (h + 1) * n * headDim), (h * (length + n) + length) * headDim);
  }
  return new ort.Tensor('float32', out, [1, heads, length + n, headDim]);
}

/**
 * Feeds `prompt` (empty past, use_cache_branch = false), then each of `tokens` one at a time with the decoder
 * presents fed back as past (use_cache_branch = true; the encoder presents of the first step are reused). A rewritten
 * decoder without decoder presents gives each step's keys/values (`step.*`): they are appended to the past here.
 */
async function teacherForce(
  session: ort.InferenceSession,
  hidden: ort.Tensor,
  prompt: number[],
  tokens: number[],
): Promise<Forced> {
  const pastNames = session.inputNames.filter((n) => n.startsWith('past_key_values.'));
  const layers = pastNames.length / 4;
  // past_key_values.*: [batch, heads, past_length, head_size]
  const meta = session.inputMetadata.find((m) => m.name === pastNames[0]);
  const [heads, headSize] = meta?.isTensor === true ? [Number(meta.shape[1]), Number(meta.shape[3])] : [NaN, NaN];
  const empty = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headSize]);
  const ids = (t: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(t.map(BigInt)), [1, t.length]);
  const feeds: Record<string, ort.Tensor> = {
    input_ids: ids(prompt),
    encoder_hidden_states: hidden,
    use_cache_branch: new ort.Tensor('bool', [false], [1]),
  };
  for (const n of pastNames) feeds[n] = empty;
  // a rewritten decoder's padding inputs, for a row without padding: positions 0, 1, … and a zero bias
  const padded = session.inputNames.includes('position_ids');
  // and its logits_from: every position's logits
  const from = session.inputNames.includes('logits_from')
    ? { logits_from: new ort.Tensor('int64', BigInt64Array.of(0n), [1]) }
    : {};
  const padding = (past: number, n: number): Record<string, ort.Tensor> =>
    padded
      ? {
          position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, j) => BigInt(past + j)), [1, n]),
          attention_bias: new ort.Tensor('float32', new Float32Array(past + n), [1, 1, 1, past + n]),
          ...from,
        }
      : from;
  Object.assign(feeds, padding(0, prompt.length));
  let out = await session.run(feeds);
  const vocab = out['logits']!.dims[2]!;
  const logits = [(out['logits']!.data as Float32Array).slice((prompt.length - 1) * vocab, prompt.length * vocab)];
  const encoderPast: Record<string, ort.Tensor> = {};
  for (let l = 0; l < layers; l++) {
    for (const kv of ['key', 'value']) {
      encoderPast[`past_key_values.${l}.encoder.${kv}`] = out[`present.${l}.encoder.${kv}`]!;
    }
  }
  const past: Record<string, ort.Tensor> = {};
  const keep = (o: ort.InferenceSession.OnnxValueMapType): void => {
    for (let l = 0; l < layers; l++) {
      for (const kv of ['key', 'value']) {
        const name = `past_key_values.${l}.decoder.${kv}`;
        const present = o[`present.${l}.decoder.${kv}`];
        past[name] = present ?? concatPositions(past[name], o[`step.${l}.decoder.${kv}`]!);
      }
    }
  };
  keep(out);
  for (const [i, token] of tokens.entries()) {
    const step: Record<string, ort.Tensor> = {
      ...padding(prompt.length + i, 1),
      input_ids: ids([token]),
      encoder_hidden_states: hidden,
      use_cache_branch: new ort.Tensor('bool', [true], [1]),
      ...encoderPast,
    };
    Object.assign(step, past);
    out = await session.run(step);
    keep(out);
    logits.push((out['logits']!.data as Float32Array).slice(0, vocab));
  }
  return { logits, last: out, past };
}

/** The lines the cache's outcome record (beside the rewritten file) lists, one per change. */
function rewritesOf(path: string): string[] {
  const record = JSON.parse(readFileSync(path.replace(/\.onnx$/, '.json'), 'utf8')) as { rewrites?: string[] };
  return record.rewrites ?? [];
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

async function encode(modelDir: string): Promise<ort.Tensor> {
  const encoder = await createSession(join(modelDir, ENCODER), { threads: 2 });
  try {
    const out = await encoder.run({ input_features: readMel(modelDir) });
    return out['last_hidden_state']!;
  } finally {
    await encoder.release();
  }
}

async function forced(path: string, hidden: ort.Tensor, prompt: number[], tokens: number[]): Promise<Forced> {
  const session = await createSession(path, { threads: 2 });
  try {
    return await teacherForce(session, hidden, prompt, tokens);
  } finally {
    await session.release();
  }
}

describe.each(Object.entries(CASES))('optimizeDecoder on %s', (_name, { dir, prompt, endOfText }) => {
  it('rewrites the q8 decoder into the cache and keeps the logits (argmax identical at every step)', async () => {
    const source = join(dir, DECODER);
    const sourceFiles = readdirSync(dirname(source));
    const result = await optimizeDecoder(source, { cacheDir, floatActivations: false });
    expect(result.rewritten).toBe(true);
    expect(result.reason).toBeUndefined();
    expect(dirname(result.path)).toBe(cacheDir);
    expect(readdirSync(dirname(source))).toEqual(sourceFiles); // nothing written next to the source

    const tokens = jfkGreedyTokens(dir);
    const hidden = await encode(dir);
    const original = await forced(source, hidden, prompt, tokens);
    const rewritten = await forced(result.path, hidden, prompt, tokens);
    expect(rewritten.logits).toHaveLength(tokens.length + 1);

    const originalIds = original.logits.map(argmax);
    // The original graph reproduces the reference: the greedy tokens, then end-of-text.
    expect(originalIds).toEqual([...tokens, endOfText]);
    expect(rewritten.logits.map(argmax)).toEqual(originalIds);
    const diff = Math.max(...original.logits.map((row, i) => maxAbsDiff(row, rewritten.logits[i]!)));
    expect(diff).toBeLessThan(MAX_ABS_DIFF);
    // the step outputs are the last position of the presents: [1, heads, positions, headDim]
    const present = rewritten.last['present.0.decoder.value']!;
    const step = rewritten.last['step.0.decoder.value']!;
    const [, heads, positions, headDim] = present.dims as [number, number, number, number];
    expect(step.dims).toEqual([1, heads, 1, headDim]);
    const last = new Float32Array(heads * headDim);
    for (let h = 0; h < heads; h++) {
      const at = (h * positions + positions - 1) * headDim;
      last.set((present.data as Float32Array).subarray(at, at + headDim), h * headDim);
    }
    expect(Array.from(step.data as Float32Array)).toEqual(Array.from(last));
  });

  it('groups the queries of rows that share one row of cross-attention keys, with the logits of per-row copies', async () => {
    const result = await optimizeDecoder(join(dir, DECODER), { cacheDir });
    const grouped = rewritesOf(result.path).filter((r) => r.includes('queries grouped'));
    const session = await createSession(result.path, { threads: 2 });
    try {
      const layers = session.inputNames.filter((n) => /^past_key_values\.\d+\.encoder\.key$/.test(n)).length;
      expect(grouped).toHaveLength(layers); // every layer's cached cross-attention
      const hidden = await encode(dir);
      const first = await teacherForce(session, hidden, prompt, []);
      const rows = 3;
      const tokens = jfkGreedyTokens(dir).slice(0, rows); // three different next tokens, one per row
      const repeat = (t: ort.Tensor, n: number): ort.Tensor => {
        const d = t.data as Float32Array;
        const out = new Float32Array(d.length * n);
        for (let r = 0; r < n; r++) out.set(d, r * d.length);
        return new ort.Tensor('float32', out, [n, ...t.dims.slice(1)]);
      };
      const step = async (crossRows: number): Promise<Float32Array> => {
        const past = prompt.length;
        const feeds: Record<string, ort.Tensor> = {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [rows, 1]),
          encoder_hidden_states: hidden,
          use_cache_branch: new ort.Tensor('bool', [true], [1]),
          position_ids: new ort.Tensor('int64', new BigInt64Array(rows).fill(BigInt(past)), [rows, 1]),
          attention_bias: new ort.Tensor('float32', new Float32Array(rows * (past + 1)), [rows, 1, 1, past + 1]),
          logits_from: new ort.Tensor('int64', BigInt64Array.of(0n), [1]),
        };
        for (let l = 0; l < layers; l++) {
          for (const kv of ['key', 'value']) {
            feeds[`past_key_values.${l}.decoder.${kv}`] = repeat(first.past[`past_key_values.${l}.decoder.${kv}`]!, rows);
            feeds[`past_key_values.${l}.encoder.${kv}`] = repeat(first.last[`present.${l}.encoder.${kv}`]!, crossRows);
          }
        }
        const out = await session.run(feeds);
        expect(out['logits']!.dims).toEqual([rows, 1, out['logits']!.dims[2]]);
        return out['logits']!.data as Float32Array;
      };
      const shared = await step(1); // the grouped product: [1, heads, rows, headDim] × Kᵀ
      const copies = await step(rows); // one row of keys per row: the graph's own shapes
      expect(maxAbsDiff(shared, copies)).toBeLessThan(MAX_ABS_DIFF);
      const vocab = shared.length / rows;
      const argmaxes = (l: Float32Array): number[] =>
        Array.from({ length: rows }, (_, r) => argmax(l.subarray(r * vocab, (r + 1) * vocab)));
      expect(argmaxes(shared)).toEqual(argmaxes(copies));
    } finally {
      await session.release();
    }
  });

  it('logits_from: the prompt step computes only the logits of positions from logits_from on, the same values', async () => {
    const result = await optimizeDecoder(join(dir, DECODER), { cacheDir });
    expect(rewritesOf(result.path).filter((r) => r.includes('logits_from'))).toHaveLength(2); // both If branches
    const session = await createSession(result.path, { threads: 2 });
    try {
      const hidden = await encode(dir);
      const layers = session.inputNames.filter((n) => /^past_key_values\.\d+\.decoder\.key$/.test(n)).length;
      const meta = session.inputMetadata.find((m) => m.name === 'past_key_values.0.decoder.key');
      const heads = meta?.isTensor === true ? Number(meta.shape[1]) : NaN;
      const headDim = hidden.dims[2]! / heads;
      // a prompt as long as a window's with previous text: the prompt, then the jfk tokens
      const tokens = [...prompt, ...jfkGreedyTokens(dir)];
      const n = tokens.length;
      const run = async (from: number): Promise<ort.Tensor> => {
        const feeds: Record<string, ort.Tensor> = {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens.map(BigInt)), [1, n]),
          encoder_hidden_states: hidden,
          use_cache_branch: new ort.Tensor('bool', [false], [1]),
          position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, j) => BigInt(j)), [1, n]),
          attention_bias: new ort.Tensor('float32', new Float32Array(n), [1, 1, 1, n]),
          logits_from: new ort.Tensor('int64', BigInt64Array.of(BigInt(from)), [1]),
        };
        const empty = new ort.Tensor('float32', new Float32Array(0), [1, heads, 0, headDim]);
        for (let l = 0; l < layers; l++) {
          for (const kind of ['decoder.key', 'decoder.value', 'encoder.key', 'encoder.value']) feeds[`past_key_values.${l}.${kind}`] = empty;
        }
        return (await session.run(feeds, ['logits']))['logits']!;
      };
      const all = await run(0);
      const from = n - 3;
      const tail = await run(from);
      const vocab = all.dims[2]!;
      expect(all.dims).toEqual([1, n, vocab]);
      expect(tail.dims).toEqual([1, 3, vocab]);
      expect(maxAbsDiff((all.data as Float32Array).subarray(from * vocab), tail.data as Float32Array)).toBeLessThan(MAX_ABS_DIFF);
    } finally {
      await session.release();
    }
  });

  it('returns the cached file on later calls without rewriting it', async () => {
    const source = join(dir, DECODER);
    const first = await optimizeDecoder(source, { cacheDir });
    const before = statSync(first.path);
    const again = await optimizeDecoder(source, { cacheDir });
    expect(again).toEqual(first);
    const after = statSync(again.path);
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(after.ino).toBe(before.ino);
  });
});

describe('optimizeDecoder cache keys', () => {
  it('keys the cache by content: a copy elsewhere hits it, new content at the same path does not', async () => {
    const tinySource = join(TINY_EN, DECODER);
    const cached = await optimizeDecoder(tinySource, { cacheDir });
    const mtime = statSync(cached.path).mtimeMs;

    const copy = join(scratch, 'decoder.onnx');
    copyFileSync(tinySource, copy);
    const viaCopy = await optimizeDecoder(copy, { cacheDir });
    expect(viaCopy).toEqual(cached);
    expect(statSync(cached.path).mtimeMs).toBe(mtime);

    // Same path, other content (and size): the stat memo no longer matches, so the base decoder is rewritten.
    copyFileSync(join(BASE, DECODER), copy);
    const replaced = await optimizeDecoder(copy, { cacheDir });
    expect(replaced.rewritten).toBe(true);
    expect(replaced.path).not.toBe(cached.path);
    expect(replaced.path).toBe((await optimizeDecoder(join(BASE, DECODER), { cacheDir })).path);
  });

  it('removes the cached copies of other rewrite versions when it writes the current one', async () => {
    const source = join(TINY_EN, DECODER);
    const dir = mkdtempSync(join(scratch, 'versions-'));
    const hash = createHash('sha256').update(readFileSync(source)).digest('hex');
    const stale = [`${hash}.r0.onnx`, `${hash}.r0.json`];
    for (const f of stale) writeFileSync(join(dir, f), 'old');
    const unrelated = `${'0'.repeat(64)}.r0.onnx`;
    writeFileSync(join(dir, unrelated), 'another model');
    const result = await optimizeDecoder(source, { cacheDir: dir });
    const tag = exactSignedInt8Kernels() ? '-ps' : ''; // the projection's table as int8 (integerProjection)
    expect(result.path).toBe(join(dir, `${hash}.r${GRAPH_REWRITE_VERSION}.decoder-float${tag}.onnx`));
    const files = readdirSync(dir);
    for (const f of stale) expect(files).not.toContain(f);
    expect(files).toContain(unrelated);
  });

  it('defaults to $XDG_CACHE_HOME/whisper-ts/graphs, else ~/.cache/whisper-ts/graphs', () => {
    expect(defaultGraphCacheDir({ XDG_CACHE_HOME: '/var/cache/u' })).toBe('/var/cache/u/whisper-ts/graphs');
    expect(defaultGraphCacheDir({})).toMatch(/[/\\]\.cache[/\\]whisper-ts[/\\]graphs$/);
  });
});

describe('integerProjection: the tied output projection as a product of 8-bit parts (whisper-base)', () => {
  it('logits within 1e-4 of the float32 table\'s at every teacher-forced step, same argmax; the float32 table is gone', async () => {
    const { dir, prompt, endOfText } = CASES['whisper-base']!;
    const source = join(dir, DECODER);
    const integer = await optimizeDecoder(source, { cacheDir });
    const float = await optimizeDecoder(source, { cacheDir, integerProjection: false });
    expect(integer.path).not.toBe(float.path);
    const tokens = jfkGreedyTokens(dir);
    const hidden = await encode(dir);
    const a = await forced(float.path, hidden, prompt, tokens);
    const b = await forced(integer.path, hidden, prompt, tokens);
    expect(b.logits.map(argmax)).toEqual([...tokens, endOfText]);
    // three parts: each element of the activation is off by at most 1/(2 · 127 · 254²) of its row's largest; measured
    // 4.6e-5 at most over 2914 positions of 96 eval files (bench/projection-check.mjs), as float32 summation order
    const diff = Math.max(...a.logits.map((row, i) => maxAbsDiff(row, b.logits[i]!)));
    expect(diff).toBeLessThan(1e-4);
    expect(diff).toBeGreaterThan(0); // the integer product ran
    // the decoder holds the 8-bit table [d_model, vocab] and no float32 copy of it
    const tensors = (path: string): { name: string; type: number; dims: number[] }[] =>
      decodeModel(readFileSync(path), path).graph!.initializer.map((t) => ({
        name: t.name ?? '',
        type: t.data_type ?? 0,
        dims: t.dims.map(Number),
      }));
    const big = (path: string) => tensors(path).filter((t) => t.dims.includes(51865));
    expect(big(float.path).map((t) => [t.type, t.dims])).toContainEqual([DataType.FLOAT, [512, 51865]]);
    expect(big(integer.path).every((t) => t.type !== DataType.FLOAT)).toBe(true);
    const signed = exactSignedInt8Kernels() ? DataType.INT8 : DataType.UINT8;
    expect(big(integer.path).map((t) => [t.type, t.dims])).toContainEqual([signed, [512, 51865]]);
    expect(rewritesOf(integer.path).some((line) => line.includes('8-bit'))).toBe(true);
  });
});

describe('integerProjection: the stored table type (whisper-tiny.en)', () => {
  it('a uint8 or int8 table, for kernels with or without exact u8×s8 sums: the float32 table\'s logits each time', async () => {
    const { dir, prompt, endOfText } = CASES['whisper-tiny.en']!;
    const source = join(dir, DECODER);
    const tokens = jfkGreedyTokens(dir);
    const hidden = await encode(dir);
    const reference = await forced((await optimizeDecoder(source, { cacheDir, integerProjection: false })).path, hidden, prompt, tokens);
    const cases: [number, boolean][] = [
      [DataType.UINT8, false],
      [DataType.INT8, false],
      [DataType.INT8, true],
    ];
    for (const [tableType, signedProjection] of cases) {
      const model = decodeModel(readFileSync(source), source);
      const table = model.graph!.initializer.find((t) => t.data_type === DataType.UINT8 && t.dims.map(Number)[0] === 51864)!;
      if (tableType === DataType.INT8) {
        // the same weights as quantize_dynamic writes them with weight_type QInt8: integers and zero point − 128
        const zero = model.graph!.initializer.find((t) => t.name === table.name!.replace(/_quantized$/, '_zero_point'))!;
        for (const t of [table, zero]) {
          if (t.raw_data !== undefined && t.raw_data !== null && t.raw_data.length > 0) {
            t.raw_data = t.raw_data.map((b) => (b - 128) & 0xff);
          } else t.int32_data = t.int32_data.map((v) => v - 128);
          t.data_type = DataType.INT8;
        }
      }
      const outcome = rewriteModel(model, { role: 'decoder', floatActivations: true, signedProjection });
      expect(outcome.rewrites.some((line) => line.includes('8-bit'))).toBe(true);
      const big = model.graph!.initializer.filter((t) => t.dims.map(Number).join('x') === '384x51864');
      expect(big.map((t) => t.data_type)).toEqual([signedProjection ? DataType.INT8 : DataType.UINT8]);
      const path = join(scratch, `tiny-${tableType}-${signedProjection}.onnx`);
      writeFileSync(path, encodeModel(model));
      const got = await forced(path, hidden, prompt, tokens);
      expect(got.logits.map(argmax)).toEqual([...tokens, endOfText]);
      expect(Math.max(...reference.logits.map((row, i) => maxAbsDiff(row, got.logits[i]!)))).toBeLessThan(1e-4);
    }
  });
});

describe('integerProjection: what the model loader asks for', () => {
  it('the decoder\'s integer projection on the CPU (CUDA, which lacks its kernel, keeps the float32 table)', async () => {
    const asked: GraphRewrite[] = [];
    const model = await WhisperModel.load(TINY_EN, {
      threads: 2,
      graphRewriter: async (path, rewrite) => {
        asked.push(rewrite);
        return path;
      },
    });
    await model.dispose();
    expect(asked.map((r) => [r.role, r.integerProjection]).sort()).toEqual([
      ['decoder', true],
      ['encoder', false],
    ]);
  });
});

describe('mixed activations: the decoder\'s cached steps on int8 activations per block (whisper-base)', () => {
  it('MatMulNBits on the file\'s 8-bit weights in the cached branch only; prompt logits unchanged, steps close, same tokens', async () => {
    const { dir, prompt, endOfText } = CASES['whisper-base']!;
    const source = join(dir, DECODER);
    const float = await optimizeDecoder(source, { cacheDir });
    const blocks = await optimizeDecoder(source, { cacheDir, blockQuantizedSteps: true });
    expect(blocks.path).not.toBe(float.path);
    // every projection of the 6 layers' cached steps (self q, k, v, out; cross q, out; fc1, fc2), none in the prompt's
    const model = decodeModel(readFileSync(blocks.path), blocks.path);
    const ifNode = model.graph!.node.find((n) => n.op_type === 'If')!;
    const counts = ifNode.attribute.map((a) => [a.name, allNodes(a.g!).filter((n) => n.op_type === 'MatMulNBits').length]);
    expect(counts.sort()).toEqual([
      ['else_branch', 0],
      ['then_branch', 48],
    ]);
    // the weights are the file's integers: a block-quantized weight's bytes minus its zero point are the file's, transposed
    const nbits = allNodes(model.graph!).find((n) => n.op_type === 'MatMulNBits')!;
    const attrs = Object.fromEntries(nbits.attribute.map((a) => [a.name, Number(a.i)]));
    expect(attrs).toMatchObject({ bits: 8, block_size: STEP_BLOCK, accuracy_level: 4 });
    const init = (m: ModelProto, name: string) => m.graph!.initializer.find((t) => t.name === name)!;
    const original = decodeModel(readFileSync(source), source);
    const stem = nbits.input[1]!.replace(/_blocks\d+$/, '');
    const w = init(original, `${stem}_quantized`);
    const wZero = init(original, `${stem}_zero_point`).raw_data![0]!;
    const [k, n] = w.dims.map(Number) as [number, number];
    const packed = init(model, nbits.input[1]!).raw_data!;
    const zeros = init(model, nbits.input[3]!).raw_data!;
    const perColumn = packed.length / n;
    const signedShift = w.data_type === DataType.INT8 ? 128 : 0;
    const wValue = (v: number): number => (signedShift > 0 ? (v << 24) >> 24 : v);
    let mismatches = 0;
    for (let c = 0; c < n; c++) {
      for (let r = 0; r < k; r++) {
        const got = packed[c * perColumn + r]! - zeros[c * (perColumn / STEP_BLOCK) + Math.floor(r / STEP_BLOCK)]!;
        if (got !== wValue(w.raw_data![r * n + c]!) - wValue(wZero)) mismatches++;
      }
    }
    expect(mismatches).toBe(0);
    expect(rewritesOf(blocks.path).filter((line) => line.includes('MatMulNBits'))).toHaveLength(48);

    const tokens = jfkGreedyTokens(dir);
    const hidden = await encode(dir);
    const a = await forced(float.path, hidden, prompt, tokens);
    const b = await forced(blocks.path, hidden, prompt, tokens);
    expect(b.logits.map(argmax)).toEqual([...tokens, endOfText]);
    expect(maxAbsDiff(a.logits[0]!, b.logits[0]!)).toBe(0); // the prompt step is the float graph's
    const steps = Math.max(...a.logits.slice(1).map((row, i) => maxAbsDiff(row, b.logits[i + 1]!)));
    expect(steps).toBeGreaterThan(0); // the integer kernels ran
    expect(steps).toBeLessThan(STEP_LOGIT_BOUND);
  });

  it('uint8 weights (the _uint8 files) give the same blocks as their int8 twins, and the same logits (whisper-tiny.en)', async () => {
    const { dir, prompt, endOfText } = CASES['whisper-tiny.en']!;
    const bytes = readFileSync(join(dir, DECODER));
    const variant = (unsigned: boolean): { model: ModelProto; path: string } => {
      const model = decodeModel(bytes, 'decoder');
      if (unsigned) {
        // the same weights as quantize_dynamic writes them with weight_type QUInt8: integers and zero point + 128
        for (const t of model.graph!.initializer) {
          const zero = model.graph!.initializer.find((z) => z.name === t.name!.replace(/_quantized$/, '_zero_point'));
          if (t.data_type !== DataType.INT8 || !t.name!.endsWith('_quantized') || t.dims.length !== 2 || zero === undefined) continue;
          for (const x of [t, zero]) {
            if (x.raw_data !== undefined && x.raw_data !== null && x.raw_data.length > 0) {
              x.raw_data = x.raw_data.map((b) => (b + 128) & 0xff);
            } else x.int32_data = x.int32_data.map((v) => v + 128);
            x.data_type = DataType.UINT8;
          }
        }
      }
      const outcome = rewriteModel(model, { role: 'decoder', floatActivations: true, blockSteps: true });
      expect(outcome.rewrites.filter((line) => line.includes('MatMulNBits'))).toHaveLength(32); // 4 layers × 8
      const path = join(scratch, `tiny-blocks-${unsigned ? 'uint8' : 'int8'}.onnx`);
      writeFileSync(path, encodeModel(model));
      return { model, path };
    };
    const signed = variant(false);
    const unsigned = variant(true);
    const blocks = (m: ModelProto) =>
      m.graph!.initializer.filter((t) => /_blocks\d+(_zeros)?$/.test(t.name ?? '')).map((t) => [t.name, Buffer.from(t.raw_data!).toString('base64')]);
    expect(blocks(signed.model).length).toBeGreaterThan(0);
    expect(blocks(unsigned.model)).toEqual(blocks(signed.model));
    const tokens = jfkGreedyTokens(dir);
    const hidden = await encode(dir);
    const a = await forced(signed.path, hidden, prompt, tokens);
    const b = await forced(unsigned.path, hidden, prompt, tokens);
    expect(a.logits.map(argmax)).toEqual([...tokens, endOfText]);
    expect(Math.max(...a.logits.map((row, i) => maxAbsDiff(row, b.logits[i]!)))).toBe(0);
  });

  it('the loader asks for it with mixed activations only', async () => {
    const asked = async (activations: 'mixed' | 'float32'): Promise<boolean | undefined> => {
      let got: boolean | undefined;
      const model = await WhisperModel.load(TINY_EN, {
        threads: 2,
        activations,
        graphRewriter: async (path, rewrite) => {
          if (rewrite.role === 'decoder') got = rewrite.blockQuantizedSteps;
          return path;
        },
      });
      await model.dispose();
      return got;
    };
    expect(await asked('mixed')).toBe(true);
    expect(await asked('float32')).toBe(false);
  });
});

describe('float activations: the cached self-attention reads the past and the step apart (whisper-tiny.en)', () => {
  it('no decoder presents; logits and appended step outputs equal those of the same rewrite with the Concat kept', async () => {
    const { prompt, endOfText } = CASES['whisper-tiny.en']!;
    const bytes = readFileSync(join(TINY_EN, DECODER));
    const variant = (splitSelfAttention: boolean): string => {
      const model = decodeModel(bytes, 'decoder');
      const outcome = rewriteModel(model, { role: 'decoder', floatActivations: true, splitSelfAttention });
      expect(outcome.rewrites.some((r) => r.includes('reads the past and the step apart'))).toBe(splitSelfAttention);
      const path = join(scratch, `split-${splitSelfAttention}.onnx`);
      writeFileSync(path, encodeModel(model));
      return path;
    };
    const tokens = jfkGreedyTokens(TINY_EN);
    const hidden = await encode(TINY_EN);
    const kept = await forced(variant(false), hidden, prompt, tokens);
    const split = await forced(variant(true), hidden, prompt, tokens);
    expect(Object.keys(split.last).filter((n) => /^present\.\d+\.decoder\./.test(n))).toEqual([]);
    expect(Object.keys(kept.last).filter((n) => /^present\.\d+\.decoder\./.test(n)).length).toBeGreaterThan(0);
    expect(split.logits.map(argmax)).toEqual([...tokens, endOfText]);
    expect(split.logits.map(argmax)).toEqual(kept.logits.map(argmax));
    expect(Math.max(...kept.logits.map((row, i) => maxAbsDiff(row, split.logits[i]!)))).toBeLessThan(MAX_ABS_DIFF);
    for (const [name, past] of Object.entries(kept.past)) {
      expect(split.past[name]!.dims).toEqual(past.dims);
      expect(maxAbsDiff(split.past[name]!.data as Float32Array, past.data as Float32Array)).toBeLessThan(MAX_ABS_DIFF);
    }
  });
});

describe('optimizeDecoder on the timestamped decoder', () => {
  it('keeps logits and the cross_attentions outputs', async () => {
    const source = join(BASE_TS, DECODER);
    const result = await optimizeDecoder(source, { cacheDir, floatActivations: false });
    expect(result.rewritten).toBe(true);
    const prompt = CASES['whisper-base']!.prompt;
    const tokens = jfkGreedyTokens(BASE); // the same weights as whisper-base
    const hidden = await encode(BASE); // its encoder file is byte-identical to whisper-base's
    const original = await forced(source, hidden, prompt, tokens);
    const rewritten = await forced(result.path, hidden, prompt, tokens);
    expect(rewritten.logits.map(argmax)).toEqual(original.logits.map(argmax));
    const diff = Math.max(...original.logits.map((row, i) => maxAbsDiff(row, rewritten.logits[i]!)));
    expect(diff).toBeLessThan(MAX_ABS_DIFF);
    const crossNames = Object.keys(original.last).filter((n) => n.startsWith('cross_attentions.'));
    expect(crossNames).toHaveLength(6);
    // attention weights that are outputs keep their per-row shape: no layer's queries are grouped
    expect(rewritesOf(result.path).some((r) => r.includes('queries grouped'))).toBe(false);
    for (const name of crossNames) {
      const a = original.last[name]!;
      const b = rewritten.last[name]!;
      expect(b.dims).toEqual(a.dims);
      // The rewrite does not touch attention: the weights come out the same.
      expect(maxAbsDiff(a.data as Float32Array, b.data as Float32Array)).toBeLessThan(1e-6);
    }
  });
});

describe('int8 activations: the q8 encoder\'s uint8 weights stored as int8 (u8×s8 kernels)', () => {
  it('converts every MatMulInteger weight with its zero point and gives the same hidden states', async () => {
    const source = join(BASE, ENCODER);
    const result = await optimizeEncoder(source, { cacheDir, floatActivations: false, signedWeights: true });
    expect(result.rewritten).toBe(true);
    expect(result.path).toMatch(/\.encoder-int8s\.onnx$/);
    const converted = rewritesOf(result.path).filter((r) => r.includes('stored as int8'));
    const model = decodeModel(readFileSync(result.path), result.path);
    const types = new Map(model.graph!.initializer.map((t) => [t.name, t.data_type]));
    const weights = model.graph!.node.filter((n) => n.op_type === 'MatMulInteger').map((n) => n.input[1] ?? '');
    expect(weights.length).toBeGreaterThan(0);
    expect(converted).toHaveLength(new Set(weights).size);
    for (const w of weights) expect(types.get(w), w).toBe(DataType.INT8);
    const run = async (path: string): Promise<Float32Array> => {
      const session = await createSession(path, { threads: 2 });
      try {
        const out = await session.run({ input_features: readMel(BASE) });
        return out['last_hidden_state']!.data as Float32Array;
      } finally {
        await session.release();
      }
    };
    // against the same rewrite with the uint8 weights kept (both take short windows: runtime/optimize
    // `variableEncoderWindow`, which the file as it is does not)
    const unsigned = await optimizeEncoder(source, { cacheDir, floatActivations: false, signedWeights: false });
    const original = await run(unsigned.path);
    const signed = await run(result.path);
    // the same integers: exact where the u8×s8 kernels sum in int32 (VNNI/AMX, which the default requires)
    if (exactSignedInt8Kernels()) expect(maxAbsDiff(original, signed)).toBe(0);
    else expect(maxAbsDiff(original, signed)).toBeLessThan(0.5);
  });
});

describe('encoder windows shorter than 30 s: the positional embedding sliced to the input (whisper-tiny.en)', () => {
  it('symbolic frames; a whole window gives the fixed graph\'s hidden states; a 16-s window gives 800 positions', async () => {
    const source = join(TINY_EN, ENCODER);
    const variant = { role: 'encoder', floatActivations: false, rowActivations: true, signedWeights: exactSignedInt8Kernels() } as const;
    const rewrite = (shortWindows: boolean): { bytes: Uint8Array; rewrites: string[] } => {
      const model = decodeModel(readFileSync(source), source);
      const outcome = rewriteModel(model, { ...variant, shortWindows });
      return { bytes: encodeModel(model), rewrites: outcome.rewrites };
    };
    const windowed = rewrite(true);
    const fixed = rewrite(false);
    expect(windowed.rewrites.filter((r) => r.includes('sliced to the input'))).toHaveLength(1);
    expect(fixed.rewrites.some((r) => r.includes('sliced to the input'))).toBe(false);
    const [a, b] = await Promise.all([createSession(windowed.bytes, { threads: 2 }), createSession(fixed.bytes, { threads: 2 })]);
    try {
      expect(a.inputMetadata[0]).toMatchObject({ shape: ['batch_size', 80, 'frames'] });
      expect(b.inputMetadata[0]).toMatchObject({ shape: ['batch_size', 80, 3000] });
      const mel = readMel(TINY_EN);
      const whole = (await a.run({ input_features: mel }))['last_hidden_state']!;
      expect(whole.dims).toEqual([1, 1500, 384]);
      // the same values up to float32 rounding: ONNX Runtime optimizes a graph of symbolic length a little differently
      expect(maxAbsDiff(whole.data as Float32Array, (await b.run({ input_features: mel }))['last_hidden_state']!.data as Float32Array)).toBeLessThan(1e-4);
      // jfk's 11 s of speech and 5 s of its padding: 1600 frames, 800 positions, close to the whole window's there
      const data = mel.data as Float32Array;
      const short = new Float32Array(80 * 1600);
      for (let m = 0; m < 80; m++) short.set(data.subarray(m * 3000, m * 3000 + 1600), m * 1600);
      const part = (await a.run({ input_features: new ort.Tensor('float32', short, [1, 80, 1600]) }))['last_hidden_state']!;
      expect(part.dims).toEqual([1, 800, 384]);
      const x = part.data as Float32Array;
      const y = (whole.data as Float32Array).subarray(0, 550 * 384); // the speech's positions
      let err = 0;
      let norm = 0;
      for (let i = 0; i < y.length; i++) {
        err += (x[i]! - y[i]!) ** 2;
        norm += y[i]! ** 2;
      }
      // the same speech, less silence after it: the hidden states move a little (bidirectional attention), not much
      expect(Math.sqrt(err / norm)).toBeGreaterThan(0);
      expect(Math.sqrt(err / norm)).toBeLessThan(0.2);
      await expect(b.run({ input_features: new ort.Tensor('float32', short, [1, 80, 1600]) })).rejects.toThrow(/dimensions/);
    } finally {
      await Promise.all([a.release(), b.release()]);
    }
  });
});

describe('mixed activations: the encoder\'s 8-bit products on activations quantized per row', () => {
  it('quantizes each row with its own scale (rows 1e-3 to 50, an all-zero row), bias after, as ONNX Runtime fuses it', async () => {
    const rand = lcg(11);
    const [k, n, batch, rows] = [96, 40, 2, 4];
    const zero = 131;
    const scale = 0.0137;
    const wq = Uint8Array.from({ length: k * n }, () => Math.floor(rand() * 256));
    const magnitudes = [1e-3, 1, 50, 0, 0.2, 7, 0.05, 3];
    // each row has an outlier, as Whisper's activations do, and its own magnitude
    const x = Float32Array.from({ length: batch * rows * k }, (_, i) => {
      const m = magnitudes[Math.floor(i / k)]!;
      return m * (i % k === 5 ? 6 : rand() * 2 - 1);
    });
    const deq = (i: number): number => Math.fround((wq[i]! - zero) * scale);
    // a bias Add after the chain, as in the encoder (ONNX Runtime fuses it into MatMulIntegerToFloat when it can)
    const bias = Float32Array.from({ length: n }, (_, c) => (c % 3) - 1 + 0.25);
    const exact = new Float64Array(batch * rows * n);
    const bound = new Float64Array(batch * rows * n);
    for (let r = 0; r < batch * rows; r++) {
      let absMax = 0;
      for (let j = 0; j < k; j++) absMax = Math.max(absMax, Math.abs(x[r * k + j]!));
      for (let c = 0; c < n; c++) {
        let sum = 0;
        let weights = 0;
        for (let j = 0; j < k; j++) {
          sum += x[r * k + j]! * deq(j * n + c);
          weights += Math.abs(deq(j * n + c));
        }
        exact[r * n + c] = sum + bias[c]!;
        // rounding to the row's own step (absMax / 127) moves each term by at most half a step
        bound[r * n + c] = (absMax / 127 / 2) * weights * 1.001 + 1e-6;
      }
    }
    const dims = [batch, rows, k];
    const original = integerChainModel('MatMulInteger', wq, [k, n], dims, zero, scale, bias);
    const originalOut = await runBytes(encodeModel(original), x, dims);
    const rewritten = decodeModel(encodeModel(original), 'chain');
    // signed weights where the u8×s8 kernels sum exactly (elsewhere u8×u8, exact as well)
    const signedWeights = exactSignedInt8Kernels();
    const outcome = rewriteModel(rewritten, { role: 'encoder', floatActivations: false, rowActivations: true, signedWeights });
    expect(outcome.rewrites.filter((r) => r.includes('per-row'))).toHaveLength(1);
    const ops = opTypes(rewritten.graph!);
    expect(ops.has('DynamicQuantizeLinear')).toBe(false);
    expect(ops.has('MatMulInteger') && ops.has('QuantizeLinear')).toBe(true);
    const rowOut = await runBytes(encodeModel(rewritten), x, dims);
    for (let i = 0; i < exact.length; i++) {
      expect(Math.abs(rowOut[i]! - exact[i]!), `output ${i}`).toBeLessThanOrEqual(bound[i]!);
    }
    // the all-zero row gives the bias, not NaN
    for (let c = 0; c < n; c++) expect(rowOut[3 * n + c]).toBe(bias[c]);
    // one scale per tensor (the files' arithmetic): the 1e-3 row is below half a step of the 50 row, all rounded away
    const small = Array.from({ length: n }, (_, c) => Math.abs(exact[c]! - bias[c]!)).reduce((a, b) => Math.max(a, b));
    const originalSmallError = Array.from({ length: n }, (_, c) => Math.abs(originalOut[c]! - exact[c]!)).reduce((a, b) => Math.max(a, b));
    const rowSmallError = Array.from({ length: n }, (_, c) => Math.abs(rowOut[c]! - exact[c]!)).reduce((a, b) => Math.max(a, b));
    expect(originalSmallError).toBeGreaterThan(0.5 * small);
    expect(rowSmallError).toBeLessThan(0.05 * small);
  });

  it('whisper-base encoder: convolutions and the last layer float, the other projections per row; hidden states closer to float than the files\'', async () => {
    const source = join(BASE, ENCODER);
    const result = await optimizeEncoder(source, { cacheDir, floatActivations: false, rowActivations: true });
    expect(result.path).toMatch(/\.encoder-int8rows?\.onnx$/);
    const rewrites = rewritesOf(result.path);
    expect(rewrites.filter((r) => r.includes('Conv on float activations'))).toHaveLength(2);
    const floatLast = rewrites.filter((r) => r.includes('MatMul on float activations'));
    expect(floatLast).toHaveLength(6); // q, k, v, out, fc1, fc2
    for (const r of floatLast) expect(r).toMatch(/^\/layers\.5\//);
    expect(rewrites.filter((r) => r.includes('per-row int8 activations')).length).toBe(4 * 5); // qkv, out, fc1, fc2
    const model = decodeModel(readFileSync(result.path), result.path);
    expect(opTypes(model.graph!).has('DynamicQuantizeLinear')).toBe(false);
    const run = async (path: string): Promise<Float32Array> => {
      const session = await createSession(path, { threads: 2 });
      try {
        return (await session.run({ input_features: readMel(BASE) }))['last_hidden_state']!.data as Float32Array;
      } finally {
        await session.release();
      }
    };
    const float = await run((await optimizeEncoder(source, { cacheDir })).path);
    const relativeRms = (a: Float32Array): number => {
      let d = 0;
      let r = 0;
      for (let i = 0; i < a.length; i++) {
        d += (a[i]! - float[i]!) ** 2;
        r += float[i]! ** 2;
      }
      return Math.sqrt(d / r);
    };
    const rowError = relativeRms(await run(result.path));
    const fileError = relativeRms(await run(source));
    console.log(`whisper-base encoder on jfk, relative RMS off float: per row ${rowError.toFixed(4)}, per tensor (the files) ${fileError.toFixed(4)}`);
    // measured 0.054 against 0.141 with every layer per row
    expect(rowError).toBeLessThan(0.06);
    expect(fileError).toBeGreaterThan(2 * rowError);
  });
});

describe('optimizeDecoder on files it does not rewrite', () => {
  it('returns a model without the pattern (the encoder) unchanged, with the reason, and caches that outcome', async () => {
    const source = join(BASE, ENCODER);
    const models = (): string[] => readdirSync(cacheDir).filter((f) => f.endsWith('.onnx'));
    const before = models();
    const int8 = { cacheDir, floatActivations: false, signedWeights: false };
    const result = await optimizeDecoder(source, int8);
    expect(result).toEqual({ path: source, rewritten: false, reason: expect.stringContaining('DequantizeLinear') });
    expect(models()).toEqual(before); // no copy written
    expect(await optimizeDecoder(source, int8)).toEqual(result);
    // an encoder with int8 activations and no signed weights is still rewritten, for short windows alone
    const encoder = await optimizeEncoder(source, int8);
    expect(encoder.rewritten).toBe(true);
    expect(rewritesOf(encoder.path)).toEqual([expect.stringContaining('sliced to the input')]);
  });

  it('rejects a corrupt file with E_MODEL_INVALID naming the file', async () => {
    const truncated = join(scratch, 'truncated.onnx');
    writeFileSync(truncated, readFileSync(join(TINY_EN, DECODER)).subarray(0, 1_000_000));
    const text = join(scratch, 'not-a-model.onnx');
    writeFileSync(text, 'this is not an ONNX model\n');
    for (const file of [truncated, text]) {
      const error = await optimizeDecoder(file, { cacheDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WhisperError);
      expect((error as WhisperError).code).toBe('E_MODEL_INVALID');
      expect((error as WhisperError).message).toContain(file);
    }
  });

  it('rejects a missing file with E_MODEL_FILE_MISSING', async () => {
    const missing = join(scratch, 'missing.onnx');
    await expect(optimizeDecoder(missing, { cacheDir })).rejects.toMatchObject({
      code: 'E_MODEL_FILE_MISSING',
      message: expect.stringContaining(missing),
    });
  });

  it('returns the source with the reason when the cache folder cannot be written', async () => {
    const blocker = join(scratch, 'a-file');
    writeFileSync(blocker, '');
    const source = join(TINY_EN, DECODER);
    const result = await optimizeDecoder(source, { cacheDir: join(blocker, 'graphs') });
    expect(result.path).toBe(source);
    expect(result.rewritten).toBe(false);
    expect(result.reason).toContain('cannot be written');
  });
});

/** Every op type in a graph and its subgraphs. */
/** Every node of a graph and of its subgraphs. */
function allNodes(graph: GraphProto, into: NodeProto[] = []): NodeProto[] {
  for (const node of graph.node) {
    into.push(node);
    for (const a of node.attribute) {
      if (a.g !== undefined && a.g !== null) allNodes(a.g, into);
      for (const g of a.graphs) allNodes(g, into);
    }
  }
  return into;
}

function opTypes(graph: GraphProto, into = new Set<string>()): Set<string> {
  for (const node of graph.node) {
    into.add(node.op_type ?? '');
    for (const a of node.attribute) {
      if (a.g !== undefined && a.g !== null) opTypes(a.g, into);
      for (const g of a.graphs) opTypes(g, into);
    }
  }
  return into;
}

/** A deterministic pseudo-random sequence in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/**
 * The chain `quantize_dynamic` writes for one projection: DynamicQuantizeLinear(x) → MatMulInteger (or ConvInteger)
 * with a uint8 weight and zero point → Cast → Mul by x_scale · w_scale.
 */
function integerChainModel(
  kind: 'MatMulInteger' | 'ConvInteger',
  w: Uint8Array,
  wDims: number[],
  xDims: number[],
  zero: number,
  scale: number,
  bias?: Float32Array,
): ModelProto {
  const attribute =
    kind === 'ConvInteger'
      ? [newAttribute({ name: 'pads', type: 7, ints: [1, 1] }), newAttribute({ name: 'kernel_shape', type: 7, ints: [wDims[2]!] })]
      : [];
  return newModel({
    ir_version: 8,
    opset_import: [newOpset({ domain: '', version: 17 })],
    graph: {
      name: 'chain',
      node: [
        newNode({ name: 'dql', op_type: 'DynamicQuantizeLinear', input: ['x'], output: ['xq', 'xs', 'xz'] }),
        newNode({ name: 'int', op_type: kind, input: ['xq', 'w', 'xz', 'wz'], output: ['yi'], attribute }),
        newNode({ name: 'cast', op_type: 'Cast', input: ['yi'], output: ['yf'], attribute: [newAttribute({ name: 'to', type: 2, i: DataType.FLOAT })] }),
        newNode({ name: 'scales', op_type: 'Mul', input: ['xs', 'ws'], output: ['s'] }),
        newNode({ name: 'scaled', op_type: 'Mul', input: ['yf', 's'], output: [bias ? 'yb' : 'y'] }),
        ...(bias ? [newNode({ name: 'bias', op_type: 'Add', input: ['yb', 'b'], output: ['y'] })] : []),
      ],
      initializer: [
        ...(bias ? [newTensor({ name: 'b', dims: [bias.length], data_type: DataType.FLOAT, raw_data: new Uint8Array(bias.buffer.slice(0)) })] : []),
        newTensor({ name: 'w', dims: wDims, data_type: DataType.UINT8, raw_data: w }),
        newTensor({ name: 'wz', dims: [], data_type: DataType.UINT8, raw_data: Uint8Array.of(zero) }),
        newTensor({ name: 'ws', dims: [], data_type: DataType.FLOAT, raw_data: new Uint8Array(Float32Array.of(scale).buffer) }),
      ],
      input: [newTensorValueInfo('x', DataType.FLOAT, xDims)],
      output: [newTensorValueInfo('y', DataType.FLOAT, xDims.map((_, i) => `d${i}`))],
    },
  });
}

async function runBytes(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const session = await createSession(bytes, { threads: 1 });
  try {
    return (await session.run({ x: new ort.Tensor('float32', x, dims) }))['y']!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('float activations: the integer matrix products of quantize_dynamic', () => {
  it('computes x · (w − zero) · scale exactly for MatMulInteger and ConvInteger, and drops the quantizers', async () => {
    const rand = lcg(7);
    const [k, n, rows] = [64, 24, 5];
    const zero = 131;
    const scale = 0.0137;
    const wq = Uint8Array.from({ length: k * n }, () => Math.floor(rand() * 256));
    // activations with an outlier, as Whisper's have: one scale per tensor rounds the small values coarsely
    const x = Float32Array.from({ length: rows * k }, (_, i) => (i === 3 ? 40 : rand() * 2 - 1));
    const deq = (i: number): number => Math.fround((wq[i]! - zero) * scale);
    const expected = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < n; c++) {
        let sum = 0;
        for (let j = 0; j < k; j++) sum += x[r * k + j]! * deq(j * n + c);
        expected[r * n + c] = sum;
      }
    const original = integerChainModel('MatMulInteger', wq, [k, n], [rows, k], zero, scale);
    const originalOut = await runBytes(encodeModel(original), x, [rows, k]);
    const rewritten = decodeModel(encodeModel(original), 'chain');
    const outcome = rewriteModel(rewritten, { role: 'encoder', floatActivations: true });
    expect(outcome.rewrites).toHaveLength(1);
    expect([...opTypes(rewritten.graph!)]).toEqual(['MatMul']);
    expect(rewritten.graph!.initializer.map((t) => t.name)).toEqual(['w_dequantized']); // the 8-bit weight is gone
    const floatOut = await runBytes(encodeModel(rewritten), x, [rows, k]);
    expect(maxAbsDiff(floatOut, expected)).toBeLessThan(1e-4);
    // the original's rounding of x to 8 bits is what the rewrite removes: its error is orders of magnitude larger
    expect(maxAbsDiff(originalOut, expected)).toBeGreaterThan(1e-2);

    // ConvInteger (the encoder's two Conv): weight [out, in, kernel], pads and kernel_shape carried over
    const [cin, cout, kernel, length] = [4, 6, 3, 10];
    const cw = Uint8Array.from({ length: cout * cin * kernel }, () => Math.floor(rand() * 256));
    const cx = Float32Array.from({ length: cin * length }, () => rand() * 2 - 1);
    const conv = integerChainModel('ConvInteger', cw, [cout, cin, kernel], [1, cin, length], zero, scale);
    const convRewritten = decodeModel(encodeModel(conv), 'conv');
    expect(rewriteModel(convRewritten, { role: 'encoder', floatActivations: true }).rewrites).toHaveLength(1);
    expect([...opTypes(convRewritten.graph!)]).toEqual(['Conv']);
    const got = await runBytes(encodeModel(convRewritten), cx, [1, cin, length]);
    for (let o = 0; o < cout; o++)
      for (let t = 0; t < length; t++) {
        let sum = 0;
        for (let c = 0; c < cin; c++)
          for (let j = 0; j < kernel; j++) {
            const at = t + j - 1;
            if (at >= 0 && at < length) sum += cx[c * length + at]! * Math.fround((cw[(o * cin + c) * kernel + j]! - zero) * scale);
          }
        expect(Math.abs(got[o * length + t]! - sum)).toBeLessThan(1e-4);
      }
  });

  describe.each(Object.entries(CASES))('on %s', (_name, { dir, prompt, endOfText }) => {
    it('leaves no integer matrix product or quantizer, and the float graphs still give the reference jfk tokens', async () => {
      const encoder = await optimizeEncoder(join(dir, ENCODER), { cacheDir });
      const decoder = await optimizeDecoder(join(dir, DECODER), { cacheDir });
      expect(encoder.rewritten && decoder.rewritten).toBe(true);
      expect(decoder.path).not.toBe((await optimizeDecoder(join(dir, DECODER), { cacheDir, floatActivations: false })).path);
      const integerOps = ['MatMulInteger', 'ConvInteger', 'DynamicQuantizeLinear'];
      const before = opTypes(decodeModel(readFileSync(join(dir, ENCODER)), 'encoder').graph!);
      expect(integerOps.every((op) => before.has(op))).toBe(true);
      const encoderOps = opTypes(decodeModel(readFileSync(encoder.path), encoder.path).graph!);
      expect(integerOps.filter((op) => encoderOps.has(op))).toEqual([]);
      // in the decoder, only the output projection's two-part product (integerProjection) in each branch of the If
      const integerNodes = allNodes(decodeModel(readFileSync(decoder.path), decoder.path).graph!).filter((n) =>
        integerOps.includes(n.op_type ?? ''),
      );
      expect(integerNodes.map((n) => n.op_type)).toEqual(['MatMulInteger', 'MatMulInteger']);
      expect(integerNodes.every((n) => n.name?.startsWith('/proj_out/int8/'))).toBe(true);
      const session = await createSession(encoder.path, { threads: 2 });
      const hidden = (await session.run({ input_features: readMel(dir) }))['last_hidden_state']!;
      await session.release();
      const tokens = jfkGreedyTokens(dir);
      const forcedRun = await forced(decoder.path, hidden, prompt, tokens);
      expect(forcedRun.logits.map(argmax)).toEqual([...tokens, endOfText]);
    });
  });
});
