import { throwIfAborted } from '../errors.js';
import type { KvCache, WhisperModel } from '../model/whisper-model.js';
import type { ort } from '../runtime/session.js';
import { buildFilters, compressionRatio, initialTokens, languageProbs, type DecodeWindowOptions, type DecodingResult } from './decode.js';
import { argmax, filteredLogZ, tokenLogprob, type LogitFilter, type RowStats } from './logit-filters.js';
import { Rng, sampleToken } from './sampler.js';

/** Options of a batch decode: a window's options, with one language per row (rows are different audio). */
export interface DecodeBatchOptions extends Omit<DecodeWindowOptions, 'language' | 'bestOf'> {
  /** The language of each row (null on English-only models); all rows share task and prefix. */
  languages: readonly (string | null)[];
  /**
   * A prompt per row (previous text), instead of the shared `prompt`. Rows of different lengths are left-padded to
   * one length, which needs a decoder with padding inputs (`WhisperModel.paddingInputs`).
   */
  prompts?: readonly (readonly number[])[];
  /**
   * Drop finished rows from the decoder's batch once at most this fraction of the cached rows is still decoding
   * (default 0.5; 0 never drops, 1 drops as soon as one row finishes). Dropping copies the kept rows' caches.
   */
  compactBelow?: number;
  /** Per row, filters applied after the shared ones (e.g. a `ChunkEndGuard` for the row's audio). */
  rowFilters?: readonly (readonly LogitFilter[])[];
}

type FloatData = Float32Array | Uint16Array;

function floatData(t: ort.Tensor): FloatData {
  const d = t.data;
  if (d instanceof Float32Array || d instanceof Uint16Array) return d;
  throw new TypeError(`a tensor of type ${t.type} cannot be sliced by rows`);
}

/** The rows `rows` of a tensor whose first axis has `total` rows, as a new tensor. */
export function selectRows(t: ort.Tensor, rows: readonly number[], total: number, ortNs: typeof ort): ort.Tensor {
  if (t.dims[0] !== total) return t; // shared by every row (one-row cross-attention cache)
  const d = floatData(t);
  const size = d.length / total;
  const out = d instanceof Float32Array ? new Float32Array(size * rows.length) : new Uint16Array(size * rows.length);
  rows.forEach((r, i) => out.set(d.subarray(r * size, (r + 1) * size), i * size));
  return new ortNs.Tensor(t.type as 'float32', out as Float32Array, [rows.length, ...t.dims.slice(1)]);
}

/**
 * `selectRows` for a tensor nobody else reads: the kept rows (`rows` ascending) move to the front of its own buffer
 * and the result is a view of that front. A new array of the cross-attention keys/values for 8 rows would be ~300 MB
 * for base, allocated, zero-filled and collected at every compaction; moving them in place costs only the copy.
 */
function compactRowsInPlace(t: ort.Tensor, rows: readonly number[], total: number, ortNs: typeof ort): ort.Tensor {
  if (t.dims[0] !== total) return t; // shared by every row (one-row cross-attention cache)
  const d = floatData(t);
  const size = d.length / total;
  rows.forEach((r, i) => {
    if (r !== i) d.copyWithin(i * size, r * size, (r + 1) * size);
  });
  return new ortNs.Tensor(t.type as 'float32', d.subarray(0, size * rows.length) as Float32Array, [rows.length, ...t.dims.slice(1)]);
}

/**
 * A cache holding only `rows` (ascending) of `cache`: the encoder output (the caller's: copied), the cross- and
 * self-attention keys/values (the cache's own: compacted in place; `cache` is not used afterwards).
 */
function compactCache(model: WhisperModel, cache: KvCache, rows: readonly number[], ortNs: typeof ort): KvCache {
  const total = cache.batch;
  const next = model.newCache(selectRows(cache.encoderHidden, rows, total, ortNs));
  for (const [name, t] of cache.decoder) next.decoder.set(name, compactRowsInPlace(t, rows, total, ortNs));
  for (const [name, t] of cache.encoder) next.encoder.set(name, compactRowsInPlace(t, rows, total, ortNs));
  next.length = cache.length;
  next.padding = cache.paddingOf(rows);
  return next;
}

/**
 * Decodes a batch of different 30-s windows at once, one row per window (the decoder half of faster-whisper's
 * BatchedInferencePipeline.generate_segment_batched): the rows share the prompt shape and the logit filters of
 * openai/whisper decoding.py, each row has its own key/value cache rows and language, and rows finish at different
 * steps (a finished row is fed end-of-text until it is dropped from the batch). Greedy at temperature 0, one sample
 * per row otherwise. Returns one result per row, as `decodeWindow` would for that window alone.
 */
export async function decodeBatch(
  model: WhisperModel,
  encoderHidden: ort.Tensor,
  o: DecodeBatchOptions,
  ortNs: typeof ort,
): Promise<DecodingResult[]> {
  const rows = encoderHidden.dims[0] ?? 1;
  if (o.languages.length !== rows) {
    throw new RangeError(`decodeBatch: ${o.languages.length} languages for ${rows} rows`);
  }
  const eot = model.tokenizer.special.eot;
  const noSpeech = model.tokenizer.special.noSpeech;
  const windowOptions = (r: number): DecodeWindowOptions => ({
    ...o,
    language: o.languages[r] ?? null,
    prompt: o.prompts?.[r] ?? o.prompt,
    bestOf: 1,
  });
  const prompts = Array.from({ length: rows }, (_, r) => initialTokens(model, windowOptions(r)));
  const lengths = prompts.map((p) => p.tokens.length);
  const width = Math.max(...lengths);
  const pads = lengths.map((n) => width - n);
  if (pads.some((p) => p > 0) && !model.paddingInputs) {
    throw new RangeError('decodeBatch: rows of different prompt lengths need a decoder with padding inputs');
  }
  const filters = buildFilters(model, windowOptions(0));
  const compactBelow = o.compactBelow ?? 0.5;
  const stats: RowStats = { logZ: Number.NaN };
  let raw: Float32Array | undefined; // a row before the filters
  const rngs = Array.from({ length: rows }, (_, r) => new Rng(o.seed + r));
  const sampled: number[][] = Array.from({ length: rows }, () => []);
  const sums = new Float64Array(rows);
  const noSpeechProbs = new Float64Array(rows).fill(Number.NaN);
  const done = new Array<boolean>(rows).fill(false);

  let cache = model.newCache(encoderHidden);
  if (pads.some((p) => p > 0)) cache.padding = pads;
  /** live[i]: the row of the batch that row i of the cache decodes. */
  let live = Array.from({ length: rows }, (_, r) => r);
  let input: number[] = [];
  prompts.forEach((p, r) => {
    // padding repeats the row's first token (masked from attention; a real token keeps activations in range)
    for (let i = 0; i < (pads[r] as number); i++) input.push(p.tokens[0] as number);
    input.push(...p.tokens);
  });
  const maxTotal = model.config.nTextCtx;
  // the prompt step needs the logits of each row's <|startoftranscript|> (no-speech probability) and of the last
  // position: from the earliest of those on
  const firstSot = Math.min(...prompts.map((p, r) => (pads[r] as number) + p.sotIndex));
  for (let step = 0; step < o.maxNewTokens; step++) {
    throwIfAborted(o.signal);
    const out = await model.decode(input, cache, step === 0 ? { allLogits: true, logitsFrom: firstSot } : {});
    const v = out.vocab;
    if (step === 0 && noSpeech !== undefined && out.allLogits) {
      // openai/whisper decoding.py DecodingTask._main_loop: no-speech probability at <|startoftranscript|>
      const from = out.allLogitsFrom ?? 0;
      for (let r = 0; r < rows; r++) {
        const at = (r * (width - from) + (pads[r] as number) + (prompts[r] as { sotIndex: number }).sotIndex - from) * v;
        noSpeechProbs[r] = Math.exp(tokenLogprob(out.allLogits.subarray(at, at + v), noSpeech));
      }
    }
    const next: number[] = [];
    for (let i = 0; i < live.length; i++) {
      const r = live[i] as number;
      if (done[r]) {
        next.push(eot);
        continue;
      }
      const logits = out.logits.subarray(i * v, (i + 1) * v);
      const seq = sampled[r] as number[];
      // the decoder's normaliser of the unfiltered row, when it computes one: the filtered row's follows cheaply
      const rawLogZ = out.logSumExp?.[i];
      if (rawLogZ !== undefined) (raw ??= new Float32Array(v)).set(logits);
      for (const f of filters) {
        stats.logZ = Number.NaN; // only the last filter's normaliser describes the filtered row
        f.apply(logits, seq, stats);
      }
      for (const f of o.rowFilters?.[r] ?? []) {
        stats.logZ = Number.NaN;
        f.apply(logits, seq, stats);
      }
      const token = o.temperature === 0 ? argmax(logits) : sampleToken(logits, o.temperature, rngs[r] as Rng);
      const logZ = !Number.isNaN(stats.logZ)
        ? stats.logZ
        : rawLogZ !== undefined && raw
          ? filteredLogZ(raw, logits, rawLogZ)
          : (logits[token] as number) - tokenLogprob(logits, token);
      sums[r] = (sums[r] as number) + (logits[token] as number) - logZ;
      if (token === eot) done[r] = true;
      else seq.push(token);
      next.push(token);
    }
    // the text context holds a row's prompt and its tokens: a row that fills it stops (openai/whisper decoding.py
    // _main_loop's n_ctx check)
    for (let r = 0; r < rows; r++) if ((lengths[r] as number) + step + 1 >= maxTotal) done[r] = true;
    if (done.every(Boolean)) break;
    const keep: number[] = [];
    for (let i = 0; i < live.length; i++) if (!done[live[i] as number]) keep.push(i);
    if (compactBelow > 0 && keep.length < live.length && keep.length <= compactBelow * live.length) {
      cache = compactCache(model, cache, keep, ortNs);
      live = keep.map((i) => live[i] as number);
      input = keep.map((i) => next[i] as number);
    } else {
      input = next;
    }
  }
  return Array.from({ length: rows }, (_, r) => {
    const tokens = [...o.prefix, ...(sampled[r] as number[])];
    const text = model.tokenizer.decode(tokens);
    const sum = sums[r] as number;
    return {
      tokens,
      text,
      sumLogprob: sum,
      avgLogprob: sum / ((sampled[r] as number[]).length + 1),
      noSpeechProb: noSpeechProbs[r] as number,
      temperature: o.temperature,
      compressionRatio: compressionRatio(text),
    };
  });
}

/**
 * Keeps a window decoding until its timestamps reach the end of its audio: end-of-text is suppressed while the
 * sequence does not end in text closed by one timestamp (openai/whisper transcribe.py single_timestamp_ending, the
 * model's way of saying the window is done) and its last timestamp lies before `endBefore` seconds.
 *
 * Whisper stops a window early (ending on a timestamp pair that opens a segment, or on unclosed text) when it expects
 * the seek loop to decode the rest from its last timestamp. A chunk of the batched pipeline has no next window, and
 * its audio is speech up to its end (the VAD cut it there), so the rest would be lost; this filter makes the model go
 * on instead. Not used without timestamps.
 */
export class ChunkEndGuard implements LogitFilter {
  constructor(
    private readonly eot: number,
    private readonly timestampBegin: number,
    private readonly endBefore: number,
  ) {}

  apply(logits: Float32Array, seq: readonly number[], stats?: RowStats): void {
    if (logits[this.eot] === -Infinity) return;
    const tb = this.timestampBegin;
    const n = seq.length;
    if (n >= 2 && (seq[n - 1] as number) >= tb && (seq[n - 2] as number) < tb) return; // single timestamp ending
    let last = 0;
    for (let i = n - 1; i >= 0; i--) {
      if ((seq[i] as number) >= tb) {
        last = ((seq[i] as number) - tb) * 0.02;
        break;
      }
    }
    if (last >= this.endBefore) return;
    logits[this.eot] = -Infinity;
    if (stats) stats.logZ = Number.NaN;
  }
}

export interface LanguageGuess {
  language: string;
  probability: number;
  probs: Record<string, number>;
}

/**
 * openai/whisper decoding.py detect_language for every row of a batch at once: softmax over the language tokens
 * after <|startoftranscript|>.
 */
export async function detectLanguageBatch(model: WhisperModel, encoderHidden: ort.Tensor): Promise<LanguageGuess[]> {
  const tk = model.tokenizer;
  const rows = encoderHidden.dims[0] ?? 1;
  const out = await model.decode(new Array<number>(rows).fill(tk.special.sot), model.newCache(encoderHidden));
  const guesses: LanguageGuess[] = [];
  for (let r = 0; r < rows; r++) {
    const row = out.logits.subarray(r * out.vocab, (r + 1) * out.vocab);
    guesses.push(languageProbs(tk, row));
  }
  return guesses;
}
