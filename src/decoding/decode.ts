import { deflateSync } from 'node:zlib';
import { throwIfAborted } from '../errors.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ort } from '../runtime/session.js';
import {
  ApplyTimestampRules,
  SuppressBlank,
  SuppressTokens,
  argmax,
  tokenLogprob,
  type LogitFilter,
} from './logit-filters.js';
import { Rng, sampleToken } from './sampler.js';

export interface DecodeWindowOptions {
  language: string | null;
  task: 'transcribe' | 'translate';
  /** Text tokens of the previous window(s), for condition-on-previous-text / initial prompt. */
  prompt: readonly number[];
  /** Tokens the output must start with. */
  prefix: readonly number[];
  withoutTimestamps: boolean;
  temperature: number;
  bestOf: number;
  /** Token ids to suppress; -1 expands to the model's list. */
  suppressTokens: readonly number[];
  suppressBlank: boolean;
  maxInitialTimestamp: number | null;
  maxNewTokens: number;
  seed: number;
  signal?: AbortSignal | undefined;
}

export interface DecodingResult {
  /** Sampled tokens (prefix included, end-of-text excluded). */
  tokens: number[];
  text: string;
  avgLogprob: number;
  sumLogprob: number;
  noSpeechProb: number;
  temperature: number;
  compressionRatio: number;
}

/** openai/whisper utils.py compression_ratio: text bytes over zlib-compressed bytes. */
export function compressionRatio(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return 0;
  return bytes.length / deflateSync(bytes).length;
}

/** The prompt tokens in front of the sampled text (openai/whisper decoding.py DecodingTask._get_initial_tokens). */
export function initialTokens(model: WhisperModel, o: DecodeWindowOptions): { tokens: number[]; sotIndex: number } {
  const tk = model.tokenizer;
  const s = tk.special;
  const sot: number[] = [s.sot];
  if (tk.isMultilingual) {
    sot.push(tk.languageToken(o.language ?? 'en'));
    const task = o.task === 'translate' ? s.translate : s.transcribe;
    if (task !== undefined) sot.push(task);
  }
  if (o.withoutTimestamps) sot.push(s.noTimestamps);
  const tokens: number[] = [];
  if (o.prompt.length > 0) {
    const keep = Math.floor(model.config.nTextCtx / 2) - 1;
    tokens.push(s.sotPrev, ...o.prompt.slice(-keep));
  }
  const sotIndex = tokens.length;
  tokens.push(...sot, ...o.prefix);
  return { tokens, sotIndex };
}

/** The logit filters of a window's decoding (openai/whisper decoding.py DecodingTask.__init__); stateless, shared by every row. */
export function buildFilters(model: WhisperModel, o: DecodeWindowOptions): LogitFilter[] {
  const tk = model.tokenizer;
  const filters: LogitFilter[] = [];
  if (o.suppressBlank) {
    const blank = model.config.beginSuppressTokens.length
      ? model.config.beginSuppressTokens
      : [...tk.encode(' '), tk.special.eot];
    filters.push(new SuppressBlank(blank));
  }
  // openai/whisper decoding.py DecodingTask._get_suppress_tokens
  const suppress = new Set<number>();
  for (const t of o.suppressTokens) {
    if (t === -1) for (const m of model.config.suppressTokens) suppress.add(m);
    else if (t >= 0) suppress.add(t);
  }
  for (const t of tk.specialSuppressTokens()) suppress.add(t);
  if (suppress.size) filters.push(new SuppressTokens([...suppress].sort((a, b) => a - b)));
  if (!o.withoutTimestamps) {
    const precision = 0.02; // seconds per timestamp token: CHUNK_LENGTH / n_audio_ctx
    const maxIdx =
      o.maxInitialTimestamp === null ? undefined : Math.round(o.maxInitialTimestamp / precision);
    filters.push(new ApplyTimestampRules(tk.special.eot, tk.special.noTimestamps, tk.special.timestampBegin, maxIdx));
  }
  return filters;
}

/** Repeats a [1, T, D] tensor n times along the batch axis. */
function repeatBatch(t: ort.Tensor, n: number, ortNs: typeof ort): ort.Tensor {
  if (n === 1) return t;
  const data = t.data as Float32Array;
  const out = new Float32Array(data.length * n);
  for (let i = 0; i < n; i++) out.set(data, i * data.length);
  return new ortNs.Tensor('float32', out, [n, ...t.dims.slice(1)]);
}

/**
 * Decodes one 30-s window: greedy at temperature 0, else `bestOf` samples decoded as one batch and ranked by
 * average log-probability (openai/whisper decoding.py DecodingTask.run with the MaximumLikelihoodRanker).
 */
export async function decodeWindow(
  model: WhisperModel,
  encoderHidden: ort.Tensor,
  o: DecodeWindowOptions,
  ortNs: typeof ort,
): Promise<DecodingResult> {
  const rows = o.temperature > 0 ? Math.max(1, o.bestOf) : 1;
  const { tokens: init, sotIndex } = initialTokens(model, o);
  const filters = buildFilters(model, o);
  const eot = model.tokenizer.special.eot;
  const noSpeech = model.tokenizer.special.noSpeech;
  const cache = model.newCache(repeatBatch(encoderHidden, rows, ortNs));
  const rng = new Rng(o.seed);
  const sampled: number[][] = Array.from({ length: rows }, () => []);
  const sums = new Float64Array(rows);
  const done = new Array<boolean>(rows).fill(false);
  let noSpeechProb = Number.NaN;
  let input: number[] = [];
  for (let r = 0; r < rows; r++) input.push(...init);
  const maxTotal = model.config.nTextCtx;
  for (let step = 0; step < o.maxNewTokens; step++) {
    throwIfAborted(o.signal);
    const out = await model.decode(input, cache, { allLogits: step === 0 });
    if (step === 0 && noSpeech !== undefined && out.allLogits) {
      // openai/whisper decoding.py DecodingTask._main_loop: no-speech probability at <|startoftranscript|>
      const v = out.vocab;
      const row = out.allLogits.subarray(sotIndex * v, (sotIndex + 1) * v);
      noSpeechProb = Math.exp(tokenLogprob(row, noSpeech));
    }
    input = [];
    for (let r = 0; r < rows; r++) {
      if (done[r]) {
        input.push(eot);
        continue;
      }
      const row = out.logits.subarray(r * out.vocab, (r + 1) * out.vocab);
      const seq = sampled[r] as number[];
      for (const f of filters) f.apply(row, seq);
      const next = o.temperature === 0 ? argmax(row) : sampleToken(row, o.temperature, rng);
      sums[r] = (sums[r] as number) + tokenLogprob(row, next);
      if (next === eot) done[r] = true;
      else seq.push(next);
      input.push(next);
    }
    if (done.every(Boolean) || init.length + step + 1 >= maxTotal) break;
  }
  // rank: openai/whisper decoding.py MaximumLikelihoodRanker (length_penalty None → divide by length)
  let best = 0;
  let bestScore = -Infinity;
  for (let r = 0; r < rows; r++) {
    const len = (sampled[r] as number[]).length;
    const score = (sums[r] as number) / Math.max(1, len);
    if (score > bestScore) {
      bestScore = score;
      best = r;
    }
  }
  // the prefix is part of the text the caller sees; the filters and scores only cover what was sampled
  const tokens = [...o.prefix, ...(sampled[best] as number[])];
  const text = model.tokenizer.decode(tokens);
  const sampledLen = (sampled[best] as number[]).length;
  return {
    tokens,
    text,
    sumLogprob: sums[best] as number,
    avgLogprob: (sums[best] as number) / (sampledLen + 1),
    noSpeechProb,
    temperature: o.temperature,
    compressionRatio: compressionRatio(text),
  };
}

/** openai/whisper decoding.py detect_language: softmax over the language tokens after <|startoftranscript|>. */
export async function detectLanguage(
  model: WhisperModel,
  encoderHidden: ort.Tensor,
): Promise<{ language: string; probability: number; probs: Record<string, number> }> {
  const tk = model.tokenizer;
  const cache = model.newCache(encoderHidden);
  const out = await model.decode([tk.special.sot], cache);
  const row = out.logits;
  let max = -Infinity;
  for (const id of tk.tokenToLanguage.keys()) max = Math.max(max, row[id] as number);
  let sum = 0;
  for (const id of tk.tokenToLanguage.keys()) sum += Math.exp((row[id] as number) - max);
  const probs: Record<string, number> = {};
  let language = 'en';
  let probability = 0;
  for (const [id, code] of tk.tokenToLanguage) {
    const p = Math.exp((row[id] as number) - max) / sum;
    probs[code] = p;
    if (p > probability) {
      probability = p;
      language = code;
    }
  }
  return { language, probability, probs };
}
