import { deflateSync } from 'node:zlib';
import { throwIfAborted } from '../errors.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ort } from '../runtime/session.js';
import { BeamSearchChooser, GreedyChooser, type DecodeState, type TokenChooser } from './choosers.js';
import {
  ApplyTimestampRules,
  NoRepeatNgram,
  RepetitionPenalty,
  SuppressBlank,
  SuppressTokens,
  filteredLogZ,
  tokenLogprob,
  type LogitFilter,
  type RowStats,
} from './logit-filters.js';
import { MaximumLikelihoodRanker, type Ranker } from './ranker.js';
import { ortTopLogprobs } from './top-logprobs.js';

export interface DecodeWindowOptions {
  language: string | null;
  task: 'transcribe' | 'translate';
  /** Text tokens of the previous window(s), for condition-on-previous-text / initial prompt. */
  prompt: readonly number[];
  /** Tokens the output must start with. */
  prefix: readonly number[];
  /** Hotword tokens put in the prompt before the previous text when there is no prefix (faster-whisper). */
  hotwords?: readonly number[] | undefined;
  withoutTimestamps: boolean;
  temperature: number;
  /** Candidates sampled at temperature > 0. */
  bestOf: number;
  /** Beams at temperature 0; 1 is greedy. */
  beamSize?: number | undefined;
  /** Beam search stops once round(beamSize × patience) sequences finished; null is 1. */
  patience?: number | null | undefined;
  /** Ranking length penalty: null divides by the length, else ((5 + length) / 6) ** lengthPenalty. */
  lengthPenalty?: number | null | undefined;
  /** CTranslate2 repetition penalty (1: off). */
  repetitionPenalty?: number | undefined;
  /** CTranslate2 no-repeat n-gram size (0: off). */
  noRepeatNgramSize?: number | undefined;
  /** Token ids to suppress; -1 expands to the model's list. */
  suppressTokens: readonly number[];
  suppressBlank: boolean;
  maxInitialTimestamp: number | null;
  maxNewTokens: number;
  seed: number;
  signal?: AbortSignal | undefined;
  /** Filters applied after the standard ones (e.g. the batched pipeline's end-of-chunk guard). */
  extraFilters?: readonly LogitFilter[] | undefined;
  /**
   * Tokens expected to follow the forced ones (e.g. the live transcriber's previous hypothesis): a guess that makes
   * greedy decoding faster when it is right and does not change what is chosen. They run through the decoder with the
   * prompt, and each is kept only while it is the token greedy decoding picks at its place (speculative decoding with
   * a draft that costs nothing). Only the first MAX_DRAFT are used. Ignored by beam search and sampling, and by a
   * decoder that quantizes its activations per tensor (`activations: 'int8'`): there the draft's positions would
   * share the prompt's 8-bit scale and move every logit of the run.
   */
  draft?: readonly number[] | undefined;
}

/**
 * The most draft tokens checked in a prompt run: each costs a position of the prompt run and its logits (51865
 * floats); a live hypothesis after its committed words is rarely longer.
 */
const MAX_DRAFT = 48;

export interface DecodingResult {
  /** Forced (timestamp, prefix) and chosen tokens, end-of-text excluded. */
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

/**
 * The decoder's input for one window: `tokens` is the whole prompt, `sotIndex` the position of
 * <|startoftranscript|>, and the last `forced` tokens the ones the output is forced to start with (a timestamp and
 * the prefix). openai/whisper decoding.py DecodingTask._get_initial_tokens, with faster-whisper transcribe.py
 * get_prompt's hotwords and its <|0.00|> in front of a prefix when timestamps are on (so the output still opens with a
 * timestamp).
 */
export function initialTokens(
  model: WhisperModel,
  o: DecodeWindowOptions,
): { tokens: number[]; sotIndex: number; forced: number[] } {
  const tk = model.tokenizer;
  const s = tk.special;
  const sot: number[] = [s.sot];
  if (tk.isMultilingual) {
    sot.push(tk.languageToken(o.language ?? 'en'));
    const task = o.task === 'translate' ? s.translate : s.transcribe;
    if (task !== undefined) sot.push(task);
  }
  if (o.withoutTimestamps) sot.push(s.noTimestamps);
  const half = Math.floor(model.config.nTextCtx / 2) - 1;
  const hotwords = o.prefix.length === 0 && o.hotwords ? o.hotwords.slice(0, half) : [];
  const forced = o.prefix.length > 0 ? [...(o.withoutTimestamps ? [] : [s.timestampBegin]), ...o.prefix.slice(0, half)] : [];
  const tokens: number[] = [];
  if (o.prompt.length > 0 || hotwords.length > 0) {
    // faster-whisper caps hotwords and the previous text at half the context each; together they keep to one half
    // here (and leave room for a long prefix), so that a long prompt never crowds the output out of the context
    const room = model.config.nTextCtx - 2 - sot.length - forced.length - hotwords.length;
    const keep = Math.min(half - hotwords.length, room);
    tokens.push(s.sotPrev, ...hotwords, ...(keep > 0 ? o.prompt.slice(-keep) : []));
  }
  const sotIndex = tokens.length;
  tokens.push(...sot, ...forced);
  return { tokens, sotIndex, forced };
}

/**
 * The logit filters of a window's decoding (openai/whisper decoding.py DecodingTask.__init__); stateless, shared by
 * every row. `forced`: how many forced tokens (timestamp, prefix) open each row's sequence.
 */
export function buildFilters(model: WhisperModel, o: DecodeWindowOptions, forced = 0): LogitFilter[] {
  const tk = model.tokenizer;
  const filters: LogitFilter[] = [];
  // CTranslate2 decoding.cc make_logits_processors: the repetition rules come before the suppressions
  if (o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1) filters.push(new RepetitionPenalty(o.repetitionPenalty));
  if (o.noRepeatNgramSize !== undefined && o.noRepeatNgramSize > 0) filters.push(new NoRepeatNgram(o.noRepeatNgramSize));
  if (o.suppressBlank) {
    const blank = model.config.beginSuppressTokens.length
      ? model.config.beginSuppressTokens
      : [...tk.encode(' '), tk.special.eot];
    filters.push(new SuppressBlank(blank, forced));
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
  if (o.extraFilters) filters.push(...o.extraFilters);
  return filters;
}

/**
 * The chooser and ranker of one window (openai/whisper decoding.py DecodingTask.__init__): beam search at temperature
 * 0 when beamSize > 1, else greedy; at temperature > 0, bestOf independent samples.
 */
function buildSearch(
  o: DecodeWindowOptions,
  eot: number,
  forced: number,
): { chooser: TokenChooser; ranker: Ranker } {
  const ranker = new MaximumLikelihoodRanker(o.lengthPenalty ?? null);
  const beam = o.beamSize ?? 1;
  if (o.temperature === 0 && beam > 1) {
    return { chooser: new BeamSearchChooser(beam, eot, forced, o.patience ?? 1, ortTopLogprobs), ranker };
  }
  const rows = o.temperature > 0 ? Math.max(1, o.bestOf) : 1;
  return { chooser: new GreedyChooser(rows, o.temperature, eot, forced, o.seed), ranker };
}

/**
 * Decodes one 30-s window (openai/whisper decoding.py DecodingTask.run): the prompt runs once with one row, the cache
 * is expanded to the chooser's rows (beams or samples), and all rows then step through the decoder as one batch; each
 * step filters every live row's logits, lets the chooser pick (beam search reorders the cache rows), and the ranker
 * picks among the finished candidates.
 */
export async function decodeWindow(
  model: WhisperModel,
  encoderHidden: ort.Tensor,
  o: DecodeWindowOptions,
  _ortNs?: typeof ort,
): Promise<DecodingResult> {
  const { tokens: init, sotIndex, forced } = initialTokens(model, o);
  const filters = buildFilters(model, o, forced.length);
  const eot = model.tokenizer.special.eot;
  const noSpeech = model.tokenizer.special.noSpeech;
  const { chooser, ranker } = buildSearch(o, eot, forced.length);
  const rows = chooser.rows;
  const cache = model.newCache(encoderHidden);
  const state: DecodeState = {
    sequences: Array.from({ length: rows }, () => [...forced]),
    sumLogprobs: new Array<number>(rows).fill(0),
  };
  let noSpeechProb = Number.NaN;
  const maxTotal = model.config.nTextCtx;
  // a draft fits in the context and in the token budget, and only greedy decoding can check it token by token
  const draft =
    o.draft && rows === 1 && o.temperature === 0 && chooser instanceof GreedyChooser && model.activations !== 'int8'
      ? o.draft.slice(0, Math.max(0, Math.min(MAX_DRAFT, o.maxNewTokens - 1, maxTotal - init.length - 1)))
      : [];
  let input = draft.length > 0 ? [...init, ...draft] : init;
  const stats: RowStats = { logZ: Number.NaN };
  let raw: Float32Array | undefined; // a row before the filters
  let logits: Float32Array = new Float32Array(0);
  const logZ = new Float64Array(rows);

  /** Filters every live row of `logits` and lets the chooser pick; `rawLogZ`: the decoder's normaliser per row. */
  const choose = async (rawLogZ: ArrayLike<number> | undefined, v: number): Promise<boolean> => {
    logZ.fill(Number.NaN);
    for (let r = 0; r < rows; r++) {
      if (chooser.isDone(state, r)) continue;
      const row = logits.subarray(r * v, (r + 1) * v);
      const seq = state.sequences[r] as number[];
      // the decoder's normaliser of the unfiltered row, when it computes one: the filtered row's follows cheaply
      const z = chooser.needsLogZ ? rawLogZ?.[r] : undefined;
      if (z !== undefined) (raw ??= new Float32Array(v)).set(row);
      for (const f of filters) {
        stats.logZ = Number.NaN; // only the last filter's normaliser describes the filtered row
        f.apply(row, seq, stats);
      }
      logZ[r] = stats.logZ;
      if (z !== undefined && raw && Number.isNaN(stats.logZ)) logZ[r] = filteredLogZ(raw, row, z);
    }
    const { sources, completed } = await chooser.update(state, logits, v, logZ);
    if (sources) cache.reorder(sources);
    return completed;
  };

  let step = 0;
  decoding: while (step < o.maxNewTokens) {
    throwIfAborted(o.signal);
    // the prompt step needs the logits of <|startoftranscript|> (no-speech probability) and of the last position
    // (with a draft: of the positions that predict the draft's tokens too)
    const out = await model.decode(input, cache, step === 0 ? { allLogits: true, logitsFrom: sotIndex } : {});
    const v = out.vocab;
    if (step > 0) {
      logits = out.logits;
      step++;
      if ((await choose(out.logSumExp, v)) || init.length + step >= maxTotal) break;
    } else {
      const from = out.allLogitsFrom ?? 0;
      const all = out.allLogits ?? out.logits;
      if (noSpeech !== undefined && out.allLogits) {
        // openai/whisper decoding.py DecodingTask._main_loop: no-speech probability at <|startoftranscript|>
        const at = sotIndex - from;
        noSpeechProb = Math.exp(tokenLogprob(all.subarray(at * v, (at + 1) * v), noSpeech));
      }
      // the prompt ran as one row: every row starts from it
      cache.expand(rows);
      logits = new Float32Array(rows * v);
      // position init.length − 1 + j predicts draft[j]; the last one predicts the token after the whole draft
      for (let j = 0; j <= draft.length; j++) {
        const at = out.allLogits ? init.length - 1 + j - from : 0;
        for (let r = 0; r < rows; r++) logits.set(all.subarray(at * v, (at + 1) * v), r * v);
        const z = out.allLogits ? out.allLogSumExp?.[at] : out.logSumExp?.[0];
        step++;
        if ((await choose(z === undefined ? undefined : new Array<number>(rows).fill(z), v)) || init.length + step >= maxTotal) {
          break decoding;
        }
        if (step >= o.maxNewTokens) break decoding;
        if (j < draft.length && (state.sequences[0] as number[]).at(-1) === draft[j]) continue;
        // greedy decoding left the draft here: the cache forgets the draft's tokens from this one on
        if (j < draft.length) cache.rewind(init.length + j);
        break;
      }
    }
    input = state.sequences.map((seq) => seq[seq.length - 1] as number);
  }
  const candidates = chooser.finalize(state);
  const best = candidates[ranker.rank(candidates)] ?? { tokens: [], sumLogprob: 0 };
  // the forced tokens are part of what the caller sees; the scores and the compression check only judge what the
  // model chose (openai/whisper decoding.py DecodingTask.run: tokens from sample_begin)
  const tokens = [...forced, ...best.tokens];
  const text = model.tokenizer.decode(tokens);
  return {
    tokens,
    text,
    sumLogprob: best.sumLogprob,
    // openai/whisper decoding.py DecodingTask.run: avg_logprob = sum_logprob / (len(tokens) + 1)
    avgLogprob: best.sumLogprob / (best.tokens.length + 1),
    noSpeechProb,
    temperature: o.temperature,
    compressionRatio: compressionRatio(forced.length ? model.tokenizer.decode(best.tokens) : text),
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
  return languageProbs(tk, out.logits);
}

/** Softmax over the language tokens of one row of logits, and the likeliest language (openai decoding.py detect_language). */
export function languageProbs(
  tk: WhisperModel['tokenizer'],
  row: Float32Array,
): { language: string; probability: number; probs: Record<string, number> } {
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
