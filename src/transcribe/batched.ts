import { HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, logMelSpectrogram, melWindow } from '../audio/index.js';
import { addWordTimestamps, wordTimestampsUnsupported } from '../alignment/index.js';
import { WhisperError, throwIfAborted } from '../errors.js';
import { ChunkEndGuard, decodeBatch, detectLanguageBatch, selectRows, type LanguageGuess } from '../decoding/batch.js';
import { decodeWindow, detectLanguage, type DecodingResult } from '../decoding/decode.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ResolvedTranscribeOptions } from '../options.js';
import { ort } from '../runtime/session.js';
import { toLanguageCode } from '../tokenizer/index.js';
import type { Segment, TranscriptionInfo, Word } from '../types.js';
import {
  SpeechTimeMap,
  VAD_BATCHED_DEFAULTS,
  chunkSamples,
  planChunks,
  type ChunkPlan,
  type SpeechSpan,
  type VadModel,
} from '../vad/index.js';
import { decodeWithFallback } from './fallback.js';
import { tableDecodingOptions } from './window-options.js';
import { convertSegmentScript, zhScriptConverter, type ScriptConverter } from './zh-script.js';
import type { CallContext, Transcription } from './sequential.js';

/** Seconds per timestamp token (openai/whisper: CHUNK_LENGTH / n_audio_ctx). */
const TIME_PRECISION = 0.02;
/**
 * A chunk that stops early may end (end-of-text) once its last timestamp is within this many seconds of its audio's
 * end (ChunkEndGuard). On longform_en with whisper-base, 0.5 s and 1 s give the same text; without the guard, 25 % WER.
 */
const END_MARGIN = 1;

/** Where a chunk's language comes from: given, or detected on one chunk and shared by the chunks that follow it. */
export interface LanguageSlot {
  language?: string;
  probability?: number;
  probs?: Record<string, number>;
}

/** One ≤ 30-s piece of audio for the batch runner, with a caller's tag to place its result. */
export interface BatchChunk<T> {
  /** The chunk's audio (16 kHz mono, at most 30 s). */
  samples: Float32Array;
  /** Its language; filled by detection on this chunk when `detect` is set. */
  slot: LanguageSlot;
  detect: boolean;
  /**
   * The chunk of the same audio just before this one, when it is decoded in an earlier batch: its text (and the text
   * before it) prompts this chunk, as openai/whisper transcribe.py conditions each window on the previous ones. A
   * chunk whose `after` is in the batch being filled starts the next batch.
   */
  after?: object;
  /** What `after` names this chunk by (any object unique to it, e.g. its ChunkPlan). */
  key?: object;
  tag: T;
}

/** A piece of a chunk's transcript, in seconds from the chunk's start. */
export interface ChunkPiece {
  start: number;
  end: number;
  tokens: number[];
  /** Word times, in seconds from the chunk's start (wordTimestamps). */
  words?: Word[];
}

export interface ChunkOutcome<T> {
  chunk: BatchChunk<T>;
  /** The language the chunk was decoded in. */
  language: string;
  result: DecodingResult;
  /** The no-speech gate called the chunk silent: `pieces` is empty. */
  silent: boolean;
  pieces: ChunkPiece[];
}

/** The language to decode with when it is fixed (given, or the model is English-only); null: detect it. */
export function fixedLanguage(model: WhisperModel, asked: string): string | null {
  if (!model.isMultilingual) {
    const code = asked === 'auto' ? 'en' : toLanguageCode(asked);
    if (code !== 'en') {
      throw new WhisperError('E_OPTIONS', `this model is English-only; language "${asked}" cannot be used`);
    }
    return 'en';
  }
  if (asked === 'auto') return null;
  const code = toLanguageCode(asked);
  if (code === undefined || !model.tokenizer.languageToToken.has(code)) {
    throw new WhisperError('E_OPTIONS', `language "${asked}" is not supported by this model`);
  }
  return code;
}

/** The language of audio with no speech found in it: detected on its first 30 s, as the sequential loop would. */
export async function languageOfAudio(
  model: WhisperModel,
  audio: Float32Array,
  asked: string,
  signal?: AbortSignal,
): Promise<LanguageSlot> {
  const fixed = fixedLanguage(model, asked);
  if (fixed !== null) return { language: fixed, probability: 1 };
  const mel = logMelSpectrogram(audio.subarray(0, N_SAMPLES), model.config.nMels, N_SAMPLES);
  const d = await detectLanguage(model, await model.encode(melWindow(mel, 0, N_FRAMES), 1, signal));
  return { language: d.language, probability: d.probability, probs: d.probs };
}

/**
 * Splits a chunk's tokens at timestamp tokens, as openai/whisper transcribe.py does for a window, in seconds from the
 * chunk's start. A chunk is never decoded again from a later seek (faster-whisper's batched pipeline has no seek), so
 * text after the last complete timestamp pair is kept as a last piece that ends at the chunk's end instead of being
 * left for the next window; every time is clamped to the chunk.
 */
export function splitChunkTokens(
  tokens: readonly number[],
  timestampBegin: number,
  duration: number,
  withoutTimestamps: boolean,
): ChunkPiece[] {
  const tb = timestampBegin;
  const clamp = (t: number): number => Math.min(duration, Math.max(0, t));
  if (withoutTimestamps) return [{ start: 0, end: duration, tokens: [...tokens] }];
  const isTs = tokens.map((t) => t >= tb);
  const cuts: number[] = [];
  for (let i = 1; i < tokens.length; i++) if (isTs[i - 1] && isTs[i]) cuts.push(i);
  cuts.push(tokens.length);
  const pieces: ChunkPiece[] = [];
  let from = 0;
  for (const to of cuts) {
    const sliced = tokens.slice(from, to);
    from = to;
    if (!sliced.some((t) => t < tb)) continue; // timestamps alone: no text
    const head = sliced[0] as number;
    const tail = sliced[sliced.length - 1] as number;
    const start = head >= tb ? (head - tb) * TIME_PRECISION : (pieces[pieces.length - 1]?.end ?? 0);
    const end = tail >= tb && sliced.length > 1 ? (tail - tb) * TIME_PRECISION : duration;
    pieces.push({ start: clamp(start), end: clamp(Math.max(start, end)), tokens: sliced });
  }
  return pieces;
}

/** Runs the no-speech gate of openai/whisper transcribe.py on a window's result. */
function isSilent(o: ResolvedTranscribeOptions, r: DecodingResult): boolean {
  if (o.noSpeechThreshold === null) return false;
  let skip = r.noSpeechProb > o.noSpeechThreshold;
  if (o.logprobThreshold !== null && r.avgLogprob > o.logprobThreshold) skip = false;
  return skip;
}

interface PreparedBatch<T> {
  chunks: BatchChunk<T>[];
  hidden: ort.Tensor;
}

/**
 * Decodes a stream of ≤ 30-s chunks `batchSize` at a time: the log-mel and the encoder output of each chunk of a
 * batch (never of the whole input), language detection on the rows that ask for it, one batched decode
 * (`decodeBatch`), then openai's temperature fallback row by row for the rows that fail its checks, the no-speech
 * gate, and word timestamps per chunk when asked for. Memory is bounded by the batch, not by the audio. `prepare` may
 * be called ahead of `run` to learn the first chunk's language before any decoding.
 */
export class BatchRunner<T> {
  readonly #iterator: AsyncIterator<BatchChunk<T>> | Iterator<BatchChunk<T>>;
  #ready: PreparedBatch<T> | undefined;
  #exhausted = false;
  /** A chunk pulled but left for the next batch (its `after` was in the batch being filled). */
  #held: BatchChunk<T> | undefined;
  /** Per decoded chunk: the text tokens that prompt the chunk after it (openai's all_tokens since the last reset). */
  readonly #context = new WeakMap<object, number[]>();

  constructor(
    private readonly model: WhisperModel,
    private readonly o: ResolvedTranscribeOptions,
    chunks: AsyncIterable<BatchChunk<T>> | Iterable<BatchChunk<T>>,
    private readonly signal?: AbortSignal,
  ) {
    this.#iterator = Symbol.asyncIterator in chunks ? chunks[Symbol.asyncIterator]() : chunks[Symbol.iterator]();
  }

  /** Encodes the next batch (and detects the languages it asks for) unless one is ready; false at the end. */
  async prepare(): Promise<boolean> {
    if (this.#ready) return true;
    if (this.#exhausted && this.#held === undefined) return false;
    const chunks: BatchChunk<T>[] = [];
    while (chunks.length < this.o.batchSize) {
      let chunk = this.#held;
      this.#held = undefined;
      if (chunk === undefined) {
        const next = await this.#iterator.next();
        if (next.done) {
          this.#exhausted = true;
          break;
        }
        chunk = next.value;
      }
      if (chunk.after !== undefined && chunks.some((c) => c.key === chunk.after)) {
        this.#held = chunk;
        break;
      }
      chunks.push(chunk);
    }
    if (chunks.length === 0) return false;
    throwIfAborted(this.signal);
    // one encoder run per chunk: as fast per window as one run on the batch here, without the batch's attention
    // matrices in memory (8 × 8 heads × 1500² floats per layer for base), and each chunk encoded exactly as it would
    // be alone (the q8 encoder quantizes its activations per run)
    const { nMels } = this.model.config;
    const mel = new Float32Array(nMels * N_FRAMES);
    let data: Float32Array | undefined;
    let dims: readonly number[] = [];
    for (let i = 0; i < chunks.length; i++) {
      writeChunkMel((chunks[i] as BatchChunk<T>).samples, nMels, mel);
      const row = await this.model.encode(mel, 1, this.signal);
      const values = row.data as Float32Array;
      data ??= new Float32Array(values.length * chunks.length);
      data.set(values, i * values.length);
      dims = row.dims;
    }
    const hidden = new ort.Tensor('float32', data as Float32Array, [chunks.length, ...dims.slice(1)]);
    const asking = chunks.flatMap((c, i) => (c.detect ? [i] : []));
    if (asking.length > 0) {
      const rows = asking.length === chunks.length ? hidden : selectRows(hidden, asking, chunks.length, ort);
      const guesses: LanguageGuess[] = await detectLanguageBatch(this.model, rows);
      asking.forEach((i, k) => Object.assign((chunks[i] as BatchChunk<T>).slot, guesses[k]));
    }
    this.#ready = { chunks, hidden };
    return true;
  }

  /** Decodes every chunk, yielding outcomes in the order the chunks came in. */
  async *run(): AsyncGenerator<ChunkOutcome<T>, void, undefined> {
    while (await this.prepare()) {
      const batch = this.#ready as PreparedBatch<T>;
      this.#ready = undefined;
      for (const outcome of await this.#decode(batch)) yield outcome;
    }
  }

  async #decode({ chunks, hidden }: PreparedBatch<T>): Promise<ChunkOutcome<T>[]> {
    const { model, o, signal } = this;
    const tk = model.tokenizer;
    const languages = chunks.map((c) => (model.isMultilingual ? (c.slot.language ?? 'en') : null));
    const durations = chunks.map((c) => c.samples.length / SAMPLE_RATE);
    const initial = o.initialPrompt !== null ? tk.encode(' ' + o.initialPrompt.trim()) : [];
    const half = Math.floor(model.config.nTextCtx / 2) - 1;
    // openai/whisper transcribe.py: each window is prompted with the text since the last reset (carry_initial_prompt:
    // the initial prompt, then the latest text that fits). A decoder with padding inputs takes rows of different
    // prompt lengths (left-padded); otherwise every row keeps the last L tokens of its own text (L: the shortest)
    const contexts = chunks.map((c) => (c.after ? (this.#context.get(c.after) ?? []) : []));
    const carried = o.carryInitialPrompt ? initial.slice(0, half) : [];
    const own = contexts.map((c) => (c.length === 0 && !o.carryInitialPrompt ? initial : c));
    const keep = model.paddingInputs
      ? half - carried.length
      : Math.max(0, Math.min(half - carried.length, ...own.map((c) => c.length)));
    const prompts = own.map((c) => [...carried, ...(keep > 0 ? c.slice(-keep) : [])]);
    const common = {
      ...tableDecodingOptions(o),
      prefix: [] as number[],
      hotwords: o.hotwords !== null ? tk.encode(' ' + o.hotwords.trim()) : [],
      signal,
    };
    const rowHidden = (i: number): ort.Tensor => selectRows(hidden, [i], chunks.length, ort);
    const guards = durations.map((d) =>
      o.withoutTimestamps ? [] : [new ChunkEndGuard(tk.special.eot, tk.special.timestampBegin, d - END_MARGIN)],
    );
    const decodeRow = (i: number, temperature: number): Promise<DecodingResult> =>
      decodeWindow(
        model,
        rowHidden(i),
        {
          ...common,
          prompt: prompts[i] as number[],
          language: languages[i] ?? null,
          temperature,
          seed: o.seed + i,
          extraFilters: guards[i],
        },
        ort,
      );
    const firstTemperature = o.temperature[0] ?? 0;
    // the first temperature for the whole batch at once (greedy, or one sample per row; options.ts refuses beam search
    // with batchSize > 1), the fallback's later temperatures window by window
    const batch = await decodeBatch(
      model,
      hidden,
      { ...common, prompt: [], prompts, languages, temperature: firstTemperature, seed: o.seed, rowFilters: guards },
      ort,
    );
    const outcomes: ChunkOutcome<T>[] = [];
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i] as BatchChunk<T>;
      let tries = 0;
      // openai/whisper transcribe.py decode_with_fallback, row by row: the batch gave the first temperature's result
      const result = await decodeWithFallback(o, (temperature) =>
        tries++ === 0 ? Promise.resolve(batch[i] as DecodingResult) : decodeRow(i, temperature),
      );
      const silent = isSilent(o, result);
      const duration = durations[i] as number;
      const pieces = silent ? [] : splitChunkTokens(result.tokens, tk.special.timestampBegin, duration, o.withoutTimestamps);
      const language = languages[i] ?? 'en';
      if (o.wordTimestamps && pieces.length > 0) {
        // faster-whisper BatchedInferencePipeline.forward: word timestamps per chunk, on its own encoder output
        await addWordTimestamps(model, rowHidden(i), pieces, {
          language,
          task: o.task,
          numFrames: Math.min(N_FRAMES, Math.floor(chunk.samples.length / HOP_LENGTH)),
          timeOffset: 0,
          prependPunctuations: o.prependPunctuations,
          appendPunctuations: o.appendPunctuations,
          lastSpeechTimestamp: 0,
          duration,
          signal,
        });
      }
      const before = own[i] as number[];
      const reset = !o.conditionOnPreviousText || result.temperature > o.promptResetOnTemperature;
      if (chunk.key) this.#context.set(chunk.key, reset ? [] : silent ? before : [...before, ...result.tokens]);
      outcomes.push({ chunk, language, result, silent, pieces });
    }
    return outcomes;
  }
}

/**
 * The model input of one chunk: its log-mel spectrogram over 30 s, frames past the chunk's audio set to zero as
 * openai/whisper transcribe.py feeds a window (`pad_or_trim(mel[:, seek:seek + segment_size])`).
 */
function writeChunkMel(samples: Float32Array, nMels: number, out: Float32Array): void {
  if (samples.length > N_SAMPLES) throw new RangeError(`a chunk of ${samples.length} samples is longer than 30 s`);
  const mel = logMelSpectrogram(samples, nMels, N_SAMPLES - samples.length);
  const content = Math.floor(samples.length / HOP_LENGTH);
  out.set(melWindow(mel, 0, N_FRAMES, content));
}

/**
 * The order in which the batched pipeline decodes `n` consecutive chunks, `batchSize` at a time: the chunks are laid
 * out as S streams of R consecutive chunks (R = ⌈n / batchSize⌉ rounds, S = ⌈n / R⌉), and round r decodes chunk r of
 * every stream, so each chunk after a stream's first can be prompted with the text of the chunk before it.
 */
export function streamOrder(n: number, batchSize: number): number[] {
  if (n === 0) return [];
  const rounds = Math.ceil(n / Math.max(1, batchSize));
  const streams = Math.ceil(n / rounds);
  const order: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let s = 0; s < streams; s++) {
      const i = s * rounds + r;
      if (i < n && r < rounds) order.push(i);
    }
  }
  return order;
}

/** Speech spans, their chunks and the map back to the original audio, for one input. */
export interface ChunkedAudio {
  spans: SpeechSpan[];
  plans: ChunkPlan[];
  map: SpeechTimeMap;
  /** Seconds of audio in the input, and in its chunks. */
  duration: number;
  speechDuration: number;
}

/**
 * Where the batched pipeline cuts an input: Silero VAD speech spans (faster-whisper's batched defaults under the
 * caller's `vadOptions`) merged into chunks of ≤ 30 s of speech, or, without the VAD, 30-s pieces of the whole input
 * (faster-whisper BatchedInferencePipeline.transcribe with vad_filter off).
 */
export async function chunkAudio(
  vad: VadModel | null,
  audio: Float32Array,
  o: ResolvedTranscribeOptions,
  signal?: AbortSignal,
): Promise<ChunkedAudio> {
  let spans: SpeechSpan[];
  if (o.vadFilter) {
    if (vad === null) throw new WhisperError('E_OPTIONS', 'vadFilter needs a VAD model');
    spans = await vad.speechTimestamps(audio, { ...VAD_BATCHED_DEFAULTS, ...o.vadOptions }, signal);
  } else {
    spans = audio.length > 0 ? [{ start: 0, end: audio.length }] : [];
  }
  const plans = planChunks(spans, N_SAMPLES / SAMPLE_RATE, { cutAtPauses: true });
  return {
    spans,
    plans,
    map: new SpeechTimeMap(spans),
    duration: audio.length / SAMPLE_RATE,
    speechDuration: spans.reduce((n, s) => n + s.end - s.start, 0) / SAMPLE_RATE,
  };
}

/**
 * The segments of one decoded chunk, in seconds of the original audio (faster-whisper transcribe.py
 * restore_speech_timestamps: a word keeps both times in the speech span of its middle, and a segment with words spans
 * them). `toScript` converts Chinese output (zhScript).
 */
export function chunkSegments(
  outcome: ChunkOutcome<unknown>,
  plan: ChunkPlan,
  map: SpeechTimeMap,
  decodeText: (tokens: readonly number[]) => string,
  firstId: number,
  toScript: ScriptConverter | null = null,
  task: 'transcribe' | 'translate' = 'transcribe',
): Segment[] {
  const r = outcome.result;
  const segments: Segment[] = [];
  const seek = Math.round(map.toOriginal(plan.offset) * (SAMPLE_RATE / HOP_LENGTH));
  const convert = toScript !== null && task === 'transcribe' && (outcome.language === 'zh' || outcome.language === 'yue');
  for (const p of outcome.pieces) {
    const text = decodeText(p.tokens);
    // faster-whisper transcribe.py: instantaneous or empty segments are not reported
    if (p.start === p.end || text.trim() === '') continue;
    let start = round3(map.toOriginal(plan.offset + p.start));
    let end = Math.max(start, round3(map.toOriginal(plan.offset + p.end, true)));
    let words: Word[] | undefined;
    if (p.words) {
      words = p.words.map((w) => {
        const index = map.chunkIndex(plan.offset + (w.start + w.end) / 2);
        const ws = round3(map.toOriginal(plan.offset + w.start, false, index));
        const we = round3(map.toOriginal(plan.offset + w.end, false, index));
        return { ...w, start: ws, end: Math.max(ws, we) };
      });
      const first = words[0];
      const last = words[words.length - 1];
      if (first && last) {
        start = first.start;
        end = Math.max(start, last.end);
      }
    }
    const segment: Segment = {
      id: firstId + segments.length,
      seek,
      start,
      end,
      text,
      tokens: p.tokens,
      avgLogprob: r.avgLogprob,
      noSpeechProb: r.noSpeechProb,
      compressionRatio: r.compressionRatio,
      temperature: r.temperature,
    };
    if (words) segment.words = words;
    segments.push(convert ? convertSegmentScript(segment, toScript) : segment);
  }
  return segments;
}

/** A chunk's place: the input it belongs to and its index among that input's chunks. */
export interface ChunkTag<R> {
  input: BatchedInput<R>;
  index: number;
}

/**
 * One input of the batched pipeline: its chunks, handed to the runner in stream order (streamOrder, each chunk after
 * a stream's first prompted by the one before it), and its decoded chunks put back in time order as segments.
 * `owner` is the caller's handle on the input.
 */
export class BatchedInput<R> {
  /** The language slot of the first chunk (shared by all chunks unless the language is detected per window). */
  readonly firstSlot: LanguageSlot;
  readonly #shared: LanguageSlot;
  readonly #perWindow: boolean;
  readonly #decoded = new Map<number, ChunkOutcome<ChunkTag<R>>>();
  #emitted = 0;
  #nextId = 0;

  constructor(
    readonly owner: R,
    readonly chunked: ChunkedAudio,
    private readonly fixed: string | null,
    private readonly o: ResolvedTranscribeOptions,
    private readonly decodeText: (tokens: readonly number[]) => string,
    private readonly toScript: ScriptConverter | null,
  ) {
    this.#shared = fixed !== null ? { language: fixed, probability: 1 } : {};
    this.#perWindow = fixed === null && o.languageDetection === 'window';
    this.firstSlot = this.#perWindow ? {} : this.#shared;
  }

  /** The chunks to decode; each chunk's audio is cut from `audio` only when the runner pulls it. */
  *chunks(audio: Float32Array): Generator<BatchChunk<ChunkTag<R>>> {
    const plans = this.chunked.plans;
    const rounds = Math.ceil(plans.length / this.o.batchSize);
    for (const i of streamOrder(plans.length, this.o.batchSize)) {
      const plan = plans[i] as ChunkPlan;
      const chunk: BatchChunk<ChunkTag<R>> = {
        samples: chunkSamples(audio, plan),
        slot: i === 0 ? this.firstSlot : this.#perWindow ? {} : this.#shared,
        detect: this.fixed === null && (this.#perWindow || i === 0),
        key: plan,
        tag: { input: this, index: i },
      };
      if (i % rounds !== 0) chunk.after = plans[i - 1] as ChunkPlan;
      yield chunk;
    }
  }

  /** Takes a decoded chunk of this input; returns the segments that are now ready, in time order. */
  add(outcome: ChunkOutcome<ChunkTag<R>>): Segment[] {
    this.#decoded.set(outcome.chunk.tag.index, outcome);
    const ready: Segment[] = [];
    const { plans, map } = this.chunked;
    for (let next = this.#decoded.get(this.#emitted); next; next = this.#decoded.get(this.#emitted)) {
      this.#decoded.delete(this.#emitted);
      const plan = plans[this.#emitted++] as ChunkPlan;
      const segments = chunkSegments(next, plan, map, this.decodeText, this.#nextId, this.toScript, this.o.task);
      this.#nextId += segments.length;
      ready.push(...segments);
    }
    return ready;
  }

  /** Chunks decoded so far (in or out of order). */
  get chunksDone(): number {
    return this.#emitted + this.#decoded.size;
  }

  get finished(): boolean {
    return this.#emitted === this.chunked.plans.length;
  }

  /** The input's info, once its first chunk's language is known (or given `slot` for an input without speech). */
  info(slot: LanguageSlot = this.firstSlot): TranscriptionInfo {
    const info: TranscriptionInfo = {
      language: slot.language ?? 'en',
      languageProbability: slot.probability ?? 0,
      duration: this.chunked.duration,
      task: this.o.task,
    };
    if (slot.probs) info.allLanguageProbs = slot.probs;
    if (this.o.vadFilter) info.durationAfterVad = this.chunked.speechDuration;
    return info;
  }
}

/** The checks of the batched pipeline that depend on the model. */
export function checkBatchedModel(model: WhisperModel, o: ResolvedTranscribeOptions): void {
  if (o.task === 'translate' && !model.isMultilingual) {
    throw new WhisperError('E_OPTIONS', 'this model is English-only and cannot translate');
  }
  if (o.wordTimestamps && !model.hasCrossAttentions) throw wordTimestampsUnsupported(model);
}

/**
 * The batched long-form pipeline for one input (faster-whisper's BatchedInferencePipeline.transcribe): speech chunks
 * of ≤ 30 s decoded `batchSize` at a time (BatchRunner), timestamps per chunk mapped back to the original audio. The
 * language is detected once on the first chunk, or on every chunk with `languageDetection: 'window'`. Resolves once
 * the first batch is encoded and the language known; segments come in time order.
 */
export async function transcribeBatched(
  model: WhisperModel,
  vad: VadModel | null,
  audio: Float32Array,
  o: ResolvedTranscribeOptions,
  ctx: CallContext = {},
): Promise<Transcription> {
  checkBatchedModel(model, o);
  throwIfAborted(ctx.signal);
  const fixed = fixedLanguage(model, o.language);
  const toScript = await zhScriptConverter(o.zhScript);
  const chunked = await chunkAudio(vad, audio, o, ctx.signal);
  const tk = model.tokenizer;
  const input = new BatchedInput(null, chunked, fixed, o, (t) => tk.decode(t), toScript);
  const runner = new BatchRunner(model, o, input.chunks(audio), ctx.signal);
  let slot = input.firstSlot;
  if (chunked.plans.length === 0) slot = await languageOfAudio(model, audio, o.language, ctx.signal);
  else await runner.prepare(); // encodes the first batch and detects the first chunk's language
  const info = input.info(slot);
  const { duration } = chunked;
  const total = chunked.plans.length;

  async function* run(): AsyncGenerator<Segment, void, undefined> {
    for await (const outcome of runner.run()) {
      yield* input.add(outcome);
      ctx.onProgress?.({ done: total > 0 ? (input.chunksDone / total) * duration : duration, total: duration });
    }
    ctx.onProgress?.({ done: duration, total: duration });
  }
  return { info, segments: run() };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
