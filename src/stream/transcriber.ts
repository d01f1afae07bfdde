/**
 * Live transcription: audio arrives in chunks of any size, Silero VAD finds the speech, and a growing buffer is
 * re-decoded every `minChunkSeconds` of new audio (whisper_streaming's OnlineASRProcessor, ufal/whisper_streaming
 * whisper_online.py, with its VAD controller): words become final when consecutive hypotheses agree on them
 * (LocalAgreement-n, agreement.ts) or when the speaker pauses; the buffer is cut at committed sentence ends, so that
 * memory and the work per step stay bounded however long the stream runs.
 *
 * Unlike whisper_streaming, the committed words still inside the buffer are forced as the decoder's prefix (as its
 * successor SimulStreaming does): they are never decoded or compared again, a step only generates the words after
 * them, and the committed text before the buffer is the prompt.
 */
import { SAMPLE_RATE } from '../audio/index.js';
import { wordTimestampsUnsupported } from '../alignment/index.js';
import { WhisperError, isWhisperError } from '../errors.js';
import type { WhisperModel } from '../model/whisper-model.js';
import { toLanguageCode } from '../tokenizer/index.js';
import type { StreamEvent, StreamFinalEvent, Word } from '../types.js';
import { SpeechGate, VAD_WINDOW_SAMPLES, VadStream, loadVad, type VadModel } from '../vad/index.js';
import type { Whisper } from '../whisper.js';
import { LocalAgreement, comparable, type TimedWord } from './agreement.js';
import { resolveStreamOptions, type ResolvedStreamOptions, type StreamOptions } from './options.js';
import { decodeStep, draftAfter, type StepResult } from './window.js';

export interface StreamContext {
  /** Aborting stops the stream: the words of the last hypothesis are sent as final, then the events end. */
  signal?: AbortSignal | undefined;
  /** Receives every event, in order, as it happens (the async iterator is the other way to read them). */
  onEvent?: ((event: StreamEvent) => void) | undefined;
  /** A loaded Silero VAD to use (one can serve many streams); by default the stream loads its own and frees it. */
  vad?: VadModel | undefined;
  /** Called once if the stream fails while working in the background (push, drain and end also throw it). */
  onError?: ((error: unknown) => void) | undefined;
}

/** Figures about a running stream, for tests and monitoring. */
export interface StreamStats {
  /** Seconds of audio received. */
  received: number;
  /** Seconds of audio in the buffer now, and the most it ever held. */
  bufferSeconds: number;
  peakBufferSeconds: number;
  /** Seconds of audio let go from a full buffer although nothing in it could be committed (should stay 0). */
  droppedSeconds: number;
  /** Seconds received but not yet looked at (the decoder is behind). */
  backlogSeconds: number;
  /** Decoding steps run, and their total time in seconds. */
  steps: number;
  stepSeconds: number;
  /** Prompt tokens held (bounded by the decoder's context). */
  promptTokens: number;
  /** Finals sent. */
  finals: number;
  /**
   * Decoding steps whose hypothesis was a repetition loop at every temperature (compression ratio over the
   * threshold): their words were neither shown nor committed.
   */
  repetitiveSteps: number;
}

/** The Whisper window: the buffer never holds more. */
const MAX_BUFFER_SECONDS = 30;
/** Past this, the buffer is cut at any committed word, not only at a sentence end (seconds over the trim length). */
const ANY_WORD_TRIM_EXTRA = 5;
/** Past this, words of the newest hypothesis are committed so that the buffer can be cut. */
const FORCE_SECONDS = 26;
/** With language detection: the first step waits for this much audio, and detects the language once on it. */
const LANGUAGE_SECONDS = 2;
/** Words of the committed text remembered to drop a repetition at the start of a hypothesis after a cut. */
const RECENT_WORDS = 5;
const SENTENCE_END = /[.?!。？！…]["'”’)\]]*$/u;
/**
 * A pause shorter than this keeps the utterance before it in the buffer (committed, forced as the prefix): the decoder
 * hears the next words in their context, as the offline seek loop does. A longer one starts afresh (seconds).
 */
const MAX_GAP_SECONDS = 2;

/**
 * Starts a live transcription with a loaded model. Push 16 kHz mono Float32 chunks of any size with `push`, read
 * events with `for await (const e of stream)` or `onEvent`, and call `end()` when the audio is over.
 */
export async function createStream(
  whisper: Whisper | WhisperModel,
  options: StreamOptions = {},
  ctx: StreamContext = {},
): Promise<LiveTranscriber> {
  const resolved = resolveStreamOptions(options);
  const model = 'model' in whisper ? whisper.model : whisper;
  model.assertUsable();
  const o = resolved.transcribe;
  if (o.task === 'translate' && !model.isMultilingual) {
    throw new WhisperError('E_OPTIONS', 'this model is English-only and cannot translate');
  }
  if (o.wordTimestamps && !model.hasCrossAttentions) throw wordTimestampsUnsupported(model);
  if (options.windowPaddingSeconds !== undefined && resolved.stream.windowPaddingSeconds < 30 && !model.shortWindows) {
    throw new WhisperError(
      'E_OPTIONS',
      `stream option windowPaddingSeconds: this model's encoder takes whole 30-s windows only (its ${model.files.encoderDtype} file is loaded as it is); leave it out or use 30`,
    );
  }
  let language: string | null;
  if (!model.isMultilingual) {
    if (o.language !== 'auto' && toLanguageCode(o.language) !== 'en') {
      throw new WhisperError('E_OPTIONS', `this model is English-only; language "${o.language}" cannot be used`);
    }
    language = 'en';
  } else if (o.language === 'auto') {
    language = null;
  } else {
    const code = toLanguageCode(o.language);
    if (code === undefined || !model.tokenizer.languageToToken.has(code)) {
      throw new WhisperError('E_OPTIONS', `language "${o.language}" is not supported by this model`);
    }
    language = code;
  }
  const vad = ctx.vad ?? (await loadVad());
  return new LiveTranscriber(model, resolved, vad, ctx.vad === undefined, language, ctx);
}

/**
 * A live transcription. `push` never blocks; the work runs in the background, one step at a time, and takes all
 * audio that arrived meanwhile (so a slow machine decodes bigger steps rather than falling behind).
 */
export class LiveTranscriber implements AsyncIterable<StreamEvent> {
  readonly options: ResolvedStreamOptions;
  readonly #model: WhisperModel;
  readonly #vad: VadModel;
  readonly #ownVad: boolean;
  readonly #vadStream: VadStream;
  readonly #gate: SpeechGate;
  readonly #agreement: LocalAgreement;
  readonly #signal: AbortSignal | undefined;
  readonly #padSamples: number;
  readonly #minChunkSamples: number;

  // audio received and not yet looked at
  #inbox: Float32Array[] = [];
  #inboxSamples = 0;
  #received = 0;
  // the buffer: samples [#bufStart, #bufStart + #bufLen) of the stream; #bufStart + #bufLen is what was looked at
  readonly #buf = new Float32Array(MAX_BUFFER_SECONDS * SAMPLE_RATE);
  #bufLen = 0;
  #bufStart = 0;
  /** VAD probabilities of the windows from #probStart on (one per 512 samples of the stream). */
  #probs: number[] = [];
  #probStart = 0;
  /** End (stream sample) of the audio the last decoding step saw. */
  #lastStep = 0;
  /** The last step's tokens after its prefix, the text of its words, and the buffer's start then: the next draft. */
  #lastHypothesis: { tokens: number[]; text: string; bufStart: number } | undefined;

  // text
  #language: string | null;
  /** Committed words inside the buffer: the decoder's forced prefix. */
  #committedInBuffer: TimedWord[] = [];
  /** Prompt tokens: the committed text before the buffer (last half-context only). */
  #promptTokens: number[] = [];
  readonly #initialPrompt: number[];
  #recent: TimedWord[] = [];
  /** Committed words after which the speaker paused: places to cut the buffer at, like sentence ends. */
  readonly #pauseEnds = new WeakSet<TimedWord>();
  /** Where the last speech ended (a stream sample); -1 while speaking or before any speech. */
  #speechEnd = -1;
  /** The buffer was just cut after a committed word: the next hypothesis may repeat it. */
  #afterCut = false;
  #nextId = 0;
  #lastFinalEnd = 0;
  #lastPartial = '';
  #languageSent = false;

  // lifecycle
  #ending = false;
  #closed = false;
  #failure: unknown = undefined;
  #pumping: Promise<void> | null = null;
  readonly #listeners = new Set<(e: StreamEvent) => void>();
  readonly #waiters = new Set<() => void>();
  readonly #onAbort: () => void;
  readonly #onError: ((error: unknown) => void) | undefined;

  // figures
  #peakBuffer = 0;
  /** Samples let go from a full buffer without being decoded into finals (see `#take`). */
  #dropped = 0;
  #repetitive = 0;
  #steps = 0;
  #stepSeconds = 0;
  #finals = 0;

  /** @internal use `createStream` */
  constructor(
    model: WhisperModel,
    options: ResolvedStreamOptions,
    vad: VadModel,
    ownVad: boolean,
    language: string | null,
    ctx: StreamContext,
  ) {
    this.options = options;
    this.#model = model;
    this.#vad = vad;
    this.#ownVad = ownVad;
    this.#vadStream = new VadStream(vad);
    this.#gate = new SpeechGate(options.vad);
    this.#agreement = new LocalAgreement(options.stream.agreement);
    this.#signal = ctx.signal;
    this.#padSamples = Math.round((options.vad.speechPadMs * SAMPLE_RATE) / 1000);
    this.#minChunkSamples = Math.round(options.stream.minChunkSeconds * SAMPLE_RATE);
    this.#language = language;
    const o = options.transcribe;
    this.#initialPrompt = o.initialPrompt !== null ? model.tokenizer.encode(' ' + o.initialPrompt.trim()) : [];
    if (!o.carryInitialPrompt) this.#promptTokens = [...this.#initialPrompt];
    if (ctx.onEvent) this.#listeners.add(ctx.onEvent);
    this.#onError = ctx.onError;
    this.#onAbort = () => this.#abort();
    if (this.#signal?.aborted) queueMicrotask(this.#onAbort);
    else this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** The language being decoded: null until detected. */
  get language(): string | null {
    return this.#language;
  }

  /** Whether the stream has ended (after `end()`, an abort or a failure): no more events come. */
  get closed(): boolean {
    return this.#closed;
  }

  get stats(): StreamStats {
    return {
      received: this.#received / SAMPLE_RATE,
      bufferSeconds: this.#bufLen / SAMPLE_RATE,
      peakBufferSeconds: this.#peakBuffer / SAMPLE_RATE,
      droppedSeconds: this.#dropped / SAMPLE_RATE,
      backlogSeconds: this.#inboxSamples / SAMPLE_RATE,
      steps: this.#steps,
      stepSeconds: this.#stepSeconds,
      promptTokens: this.#promptTokens.length,
      finals: this.#finals,
      repetitiveSteps: this.#repetitive,
    };
  }

  /**
   * Adds audio: 16 kHz mono samples, any length (the array is copied). Throws E_AUDIO_DECODE on NaN/Inf samples,
   * E_ABORTED after an abort, E_DISPOSED after `end()`, and the stream's error after a failure.
   */
  push(chunk: Float32Array): void {
    this.#checkOpen();
    if (!(chunk instanceof Float32Array)) {
      throw new WhisperError('E_OPTIONS', 'push() takes a Float32Array of 16 kHz mono samples');
    }
    for (let i = 0; i < chunk.length; i++) {
      if (!Number.isFinite(chunk[i])) {
        throw new WhisperError('E_AUDIO_DECODE', `the audio has a non-finite sample (NaN or Inf) at index ${i}`);
      }
    }
    if (chunk.length === 0) return;
    this.#inbox.push(Float32Array.from(chunk));
    this.#inboxSamples += chunk.length;
    this.#received += chunk.length;
    this.#kick();
  }

  /** Resolves when all audio pushed so far has been looked at (decoding steps included); rejects on failure. */
  async drain(): Promise<void> {
    while (this.#pumping) await this.#pumping;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Ends the audio: what is left is decoded and sent as final, then the events end. Resolves when done (also after an
   * abort, which flushes on its own); rejects with the stream's error.
   */
  async end(): Promise<void> {
    if (!this.#closed && !this.#ending) {
      this.#ending = true;
      this.#kick();
    }
    await this.#waitClosed();
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** Adds a listener for events; returns a function that removes it. */
  on(listener: (event: StreamEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The events from now on, until the stream closes (throws the stream's error if it fails). */
  [Symbol.asyncIterator](): AsyncIterator<StreamEvent> {
    const queue: StreamEvent[] = [];
    const listener = (e: StreamEvent): void => {
      queue.push(e);
    };
    this.#listeners.add(listener);
    const next = async (): Promise<IteratorResult<StreamEvent>> => {
      for (;;) {
        const e = queue.shift();
        if (e !== undefined) return { value: e, done: false };
        if (this.#failure !== undefined) {
          this.#listeners.delete(listener);
          throw this.#failure;
        }
        if (this.#closed) {
          this.#listeners.delete(listener);
          return { value: undefined, done: true };
        }
        await new Promise<void>((resolve) => this.#waiters.add(resolve));
      }
    };
    return {
      next,
      return: async () => {
        this.#listeners.delete(listener);
        return { value: undefined, done: true };
      },
    };
  }

  #checkOpen(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#signal?.aborted) throw new WhisperError('E_ABORTED', 'the stream was aborted', { cause: this.#signal.reason });
    if (this.#closed || this.#ending) throw new WhisperError('E_DISPOSED', 'the stream has ended');
  }

  #emit(e: StreamEvent): void {
    if (this.#closed) return;
    for (const l of [...this.#listeners]) l(e);
    this.#wake();
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  async #waitClosed(): Promise<void> {
    while (!this.#closed) {
      await new Promise<void>((resolve) => this.#waiters.add(resolve));
    }
  }

  #kick(): void {
    if (this.#pumping || this.#closed) return;
    this.#pumping = this.#pump()
      .catch((err: unknown) => this.#onPumpError(err))
      .finally(() => {
        this.#pumping = null;
        // an abort that came while a step was running but was not noticed by it
        if (this.#signal?.aborted && !this.#closed) void this.#abortFlush();
        this.#wake();
      });
  }

  async #pump(): Promise<void> {
    while (!this.#closed) {
      if (this.#inboxSamples > 0) {
        await this.#take();
      } else if (this.#ending) {
        await this.#finish();
      } else {
        return;
      }
    }
  }

  async #onPumpError(err: unknown): Promise<void> {
    if (this.#signal?.aborted && isWhisperError(err) && err.code === 'E_ABORTED') {
      await this.#abortFlush();
      return;
    }
    this.#failure = err;
    await this.#close();
    this.#onError?.(err);
  }

  #abort(): void {
    // a running step notices the signal and lands in #onPumpError; an idle stream flushes now
    if (!this.#pumping) void this.#abortFlush();
  }

  async #abortFlush(): Promise<void> {
    if (this.#closed) return;
    const tentative = this.#agreement.commit(this.#agreement.tentative.length);
    this.#sendFinal(tentative, 'abort');
    await this.#close();
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#inbox = [];
    this.#inboxSamples = 0;
    this.#bufLen = 0;
    this.#probs = [];
    this.#committedInBuffer = [];
    this.#wake();
    if (this.#ownVad) await this.#vad.dispose();
  }

  /** Moves audio from the inbox into the buffer, runs the VAD on it, and decodes when it is time. */
  async #take(): Promise<void> {
    if (this.#bufLen >= this.#buf.length) {
      // A full buffer (the decoder fell behind and the backlog filled it at once): decode it and cut it at what that
      // commits (the trim commits the newest hypothesis's words past FORCE_SECONDS) before any audio has to go.
      if (this.#gate.speaking) await this.#step();
      else this.#trim();
      if (this.#bufLen >= this.#buf.length) {
        const before = this.#bufLen;
        this.#dropBefore(this.#end() - FORCE_SECONDS * SAMPLE_RATE);
        this.#dropped += before - this.#bufLen;
      }
    }
    const want = Math.min(this.#inboxSamples, this.#buf.length - this.#bufLen);
    const chunk = new Float32Array(want);
    let filled = 0;
    while (filled < want) {
      const head = this.#inbox[0] as Float32Array;
      const n = Math.min(head.length, want - filled);
      chunk.set(head.subarray(0, n), filled);
      filled += n;
      if (n === head.length) this.#inbox.shift();
      else this.#inbox[0] = head.subarray(n);
    }
    this.#inboxSamples -= want;
    this.#buf.set(chunk, this.#bufLen);
    this.#bufLen += want;
    this.#peakBuffer = Math.max(this.#peakBuffer, this.#bufLen);

    const probs = await this.#vadStream.push(chunk, this.#signal);
    await this.#onProbabilities(probs);
    if (this.#gate.speaking && this.#end() - this.#lastStep >= this.#minChunkSamples) await this.#step();
    if (!this.#gate.speaking) this.#keepPreRoll();
  }

  async #onProbabilities(probs: Float32Array): Promise<void> {
    for (const p of probs) this.#probs.push(p);
    for (const change of this.#gate.update(probs)) {
      if (change.type === 'start') {
        const gap = this.#speechEnd < 0 ? Infinity : (change.sample - this.#speechEnd) / SAMPLE_RATE;
        this.#speechEnd = -1;
        if (this.#holdsText() && gap <= MAX_GAP_SECONDS) continue; // the words before the pause stay as context
        this.#toPrompt(this.#committedInBuffer.length);
        const from = Math.max(this.#bufStart, change.sample - this.#padSamples);
        this.#dropBefore(from);
        this.#lastStep = Math.max(this.#lastStep, from);
      } else {
        this.#speechEnd = change.sample;
        await this.#commitUtterance(change.sample + this.#padSamples, 'pause');
      }
    }
  }

  /** The end of the audio looked at (a stream sample index). */
  #end(): number {
    return this.#bufStart + this.#bufLen;
  }

  async #finish(): Promise<void> {
    const probs = await this.#vadStream.flush(this.#signal);
    await this.#onProbabilities(probs);
    if (this.#gate.speaking || this.#agreement.tentative.length > 0) await this.#commitUtterance(this.#end(), 'end');
    await this.#close();
  }

  /** Decodes the buffer and commits what the hypotheses agree on. */
  async #step(): Promise<void> {
    if (this.#language === null && this.#bufLen < LANGUAGE_SECONDS * SAMPLE_RATE) return;
    const end = this.#end();
    const result = await this.#decode(this.#bufLen);
    this.#lastStep = end;
    // a loop: the hypotheses so far stand (the partial is unchanged) and the next step decodes more audio
    if (!result.repetitive) {
      const committed = this.#agreement.insert(this.#dropRepeats(result.words));
      this.#sendFinal(committed, 'agreement', result.temperature);
    }
    this.#trim();
    if (!result.repetitive) this.#sendPartial();
  }

  /**
   * The speaker paused (or the stream ends): the audio up to `endSample` is decoded once more and all of it is
   * committed. The audio stays in the buffer (with its words as the prefix) unless the pause grows long.
   */
  async #commitUtterance(endSample: number, reason: 'pause' | 'end'): Promise<void> {
    const end = Math.min(endSample, this.#end());
    if (end > this.#bufStart) {
      const result = await this.#decode(end - this.#bufStart);
      // a loop adds nothing: the words of the last hypothesis before it (shown as the partial) are committed as they are
      if (!result.repetitive) {
        this.#agreement.reset();
        this.#agreement.insert(this.#dropRepeats(result.words));
      }
      this.#sendFinal(this.#agreement.commit(this.#agreement.tentative.length), reason, result.temperature);
    } else {
      this.#sendFinal(this.#agreement.commit(this.#agreement.tentative.length), reason);
    }
    this.#agreement.reset();
    const last = this.#committedInBuffer[this.#committedInBuffer.length - 1];
    if (last !== undefined) this.#pauseEnds.add(last);
    this.#lastStep = Math.max(this.#lastStep, end);
    this.#sendPartial();
  }

  /** Whether the buffer holds words, committed or not. */
  #holdsText(): boolean {
    return this.#committedInBuffer.length > 0 || this.#agreement.tentative.length > 0;
  }

  async #decode(samples: number): Promise<StepResult> {
    const started = performance.now();
    const o = this.options.transcribe;
    let prompt = this.#promptTokens;
    if (o.carryInitialPrompt) {
      // openai/whisper transcribe.py carry_initial_prompt: the initial prompt first, the rest of the half context after
      const room = Math.floor(this.#model.config.nTextCtx / 2) - 1 - this.#initialPrompt.length;
      prompt = [...this.#initialPrompt, ...(room > 0 ? prompt.slice(-room) : [])];
    }
    const result = await decodeStep(this.#model, o, {
      audio: this.#buf.subarray(0, samples),
      offset: this.#bufStart / SAMPLE_RATE,
      language: this.#language,
      prompt,
      prefix: this.#committedInBuffer,
      seed: o.seed + this.#steps,
      windowPadding: this.options.stream.windowPaddingSeconds,
      draft: this.#draft(),
      signal: this.#signal,
    });
    this.#lastHypothesis = result.repetitive
      ? undefined
      : { tokens: result.tokens, text: result.words.map((w) => w.word).join(''), bufStart: this.#bufStart };
    this.#steps++;
    if (result.repetitive) this.#repetitive++;
    this.#stepSeconds += (performance.now() - started) / 1000;
    this.#language ??= result.language;
    if (!this.#languageSent) {
      this.#languageSent = true;
      this.#emit({
        type: 'language',
        language: result.language,
        probability: result.languageProbability,
        audioEnd: this.#end() / SAMPLE_RATE,
      });
    }
    return result;
  }

  /**
   * The last hypothesis after the words committed since (its uncommitted words): consecutive steps mostly agree, so
   * the decoder checks these tokens in one run instead of producing them one run each (decoding/decode.ts `draft`).
   */
  #draft(): number[] | undefined {
    const last = this.#lastHypothesis;
    if (last === undefined) return undefined;
    const tentative = this.#agreement.tentative.map((w) => w.word).join('');
    if (!last.text.endsWith(tentative)) return undefined;
    const shift = Math.round((this.#bufStart - last.bufStart) / SAMPLE_RATE / 0.02);
    return draftAfter(this.#model.tokenizer, last.tokens, last.text.length - tentative.length, shift);
  }

  /**
   * After a cut, the audio may still hold the end of the last committed word(s) and the model may write them again:
   * a run of 1–5 words at the start of the hypothesis equal to the last committed ones, starting within a second of
   * them, is dropped (whisper_online.py HypothesisBuffer.insert does the same with its n-grams).
   */
  #dropRepeats(words: TimedWord[]): TimedWord[] {
    if (!this.#afterCut || this.#committedInBuffer.length > 0) return words;
    const last = this.#recent[this.#recent.length - 1];
    const first = words[0];
    if (last === undefined || first === undefined || first.start > last.end + 1) return words;
    for (let k = Math.min(RECENT_WORDS, this.#recent.length, words.length); k >= 1; k--) {
      const tail = this.#recent.slice(-k).map((w) => comparable(w.word));
      const head = words.slice(0, k).map((w) => comparable(w.word));
      if (tail.every((w, i) => w === head[i])) return words.slice(k);
    }
    return words;
  }

  #sendFinal(words: TimedWord[], reason: StreamFinalEvent['reason'], temperature = 0): void {
    if (words.length === 0) return;
    this.#afterCut = false;
    // finals never go back in time
    const timed: Word[] = words.map((w) => {
      const start = Math.max(w.start, this.#lastFinalEnd);
      const end = Math.max(w.end, start);
      this.#lastFinalEnd = end;
      return { ...w, start, end };
    });
    this.#committedInBuffer.push(...timed);
    this.#recent = [...this.#recent, ...timed].slice(-RECENT_WORDS);
    this.#finals++;
    const first = timed[0] as Word;
    const last = timed[timed.length - 1] as Word;
    this.#emit({
      type: 'final',
      id: this.#nextId++,
      text: timed.map((w) => w.word).join(''),
      start: first.start,
      end: last.end,
      words: timed,
      reason,
      audioEnd: this.#end() / SAMPLE_RATE,
    });
    this.#lastPartial = '\u0000'; // a partial always follows a final
    // openai/whisper transcribe.py: text decoded at a high temperature does not condition what follows
    if (temperature > this.options.transcribe.promptResetOnTemperature) this.#promptTokens = [];
  }

  #sendPartial(): void {
    const words = this.#agreement.tentative.map((w) => ({ ...w }));
    const text = words.map((w) => w.word).join('');
    if (text === this.#lastPartial) return;
    this.#lastPartial = text;
    const audioEnd = this.#end() / SAMPLE_RATE;
    this.#emit({
      type: 'partial',
      text,
      start: words[0]?.start ?? audioEnd,
      end: words[words.length - 1]?.end ?? audioEnd,
      words,
      audioEnd,
    });
  }

  /**
   * Cuts the buffer once it is longer than `bufferTrimSeconds`: at the first committed sentence end (or pause) that
   * leaves at most half that length, else at the last one (see the constants for what happens without any).
   */
  #trim(): void {
    const seconds = this.#bufLen / SAMPLE_RATE;
    const trimAt = this.options.stream.bufferTrimSeconds;
    if (seconds <= trimAt) return;
    const inBuffer = this.#committedInBuffer;
    const end = this.#end() / SAMPLE_RATE;
    const boundary = (w: TimedWord): boolean => this.#pauseEnds.has(w) || SENTENCE_END.test(w.word.trim());
    let i = inBuffer.findIndex((w) => boundary(w) && end - w.end <= trimAt / 2);
    if (i < 0) i = inBuffer.findLastIndex(boundary);
    if (i < 0 && seconds > Math.min(trimAt + ANY_WORD_TRIM_EXTRA, FORCE_SECONDS)) i = inBuffer.length - 1;
    if (i < 0 && seconds > FORCE_SECONDS) {
      // nothing committed to cut at: commit the newest hypothesis's words that end well before the buffer's end
      const limit = this.#end() / SAMPLE_RATE - 2;
      const count = this.#agreement.tentative.findIndex((w) => w.end > limit);
      const forced = this.#agreement.commit(count < 0 ? this.#agreement.tentative.length : count);
      this.#sendFinal(forced, 'trim');
      i = inBuffer.length - 1;
      if (i < 0) {
        // no words at all in 26 s the VAD calls speech: let the oldest audio go
        this.#dropBefore(this.#end() - (FORCE_SECONDS - 6) * SAMPLE_RATE);
        return;
      }
    }
    if (i < 0) return;
    const word = inBuffer[i] as TimedWord;
    const next = inBuffer[i + 1] ?? this.#agreement.tentative[0];
    const cut = this.#quietestPoint(word.end - 0.15, Math.max(word.end, Math.min(word.end + 0.35, next?.start ?? Infinity)));
    this.#toPrompt(i + 1);
    this.#dropBefore(Math.max(this.#bufStart, Math.min(cut, this.#end())));
    this.#afterCut = true;
  }

  /** The start (stream sample) of the VAD window with the lowest speech probability between two times (seconds). */
  #quietestPoint(from: number, to: number): number {
    const first = Math.max(this.#probStart, Math.floor((from * SAMPLE_RATE) / VAD_WINDOW_SAMPLES));
    const last = Math.min(this.#probStart + this.#probs.length - 1, Math.floor((to * SAMPLE_RATE) / VAD_WINDOW_SAMPLES));
    let best = Math.round(Math.max(from, 0) * SAMPLE_RATE);
    let bestP = Infinity;
    for (let w = first; w <= last; w++) {
      const p = this.#probs[w - this.#probStart] as number;
      if (p < bestP) {
        bestP = p;
        best = w * VAD_WINDOW_SAMPLES;
      }
    }
    return best;
  }

  /** Moves the first `count` committed words of the buffer into the prompt. */
  #toPrompt(count: number): void {
    const moved = this.#committedInBuffer.splice(0, count);
    if (moved.length === 0 || !this.options.transcribe.conditionOnPreviousText) return;
    const tokens = this.#model.tokenizer.encode(moved.map((w) => w.word).join(''));
    // the decoder keeps the last half of its context for the prompt (decoding/decode.ts initialTokens)
    const keep = Math.floor(this.#model.config.nTextCtx / 2);
    this.#promptTokens = [...this.#promptTokens, ...tokens].slice(-keep);
  }

  /** Drops the buffer's audio before stream sample `sample` (and the VAD probabilities before it). */
  #dropBefore(sample: number): void {
    const n = Math.min(this.#bufLen, Math.max(0, Math.floor(sample) - this.#bufStart));
    if (n === 0) return;
    this.#buf.copyWithin(0, n, this.#bufLen);
    this.#bufLen -= n;
    this.#bufStart += n;
    const firstWindow = Math.floor(this.#bufStart / VAD_WINDOW_SAMPLES);
    if (firstWindow > this.#probStart) {
      this.#probs.splice(0, Math.min(this.#probs.length, firstWindow - this.#probStart));
      this.#probStart = firstWindow;
    }
  }

  /**
   * Between utterances: a buffer without words keeps only the last `speechPadMs` of audio, to start the next utterance
   * with; one with words keeps them as context until the pause is longer than MAX_GAP_SECONDS.
   */
  #keepPreRoll(): void {
    if (this.#holdsText()) {
      if (this.#speechEnd < 0 || this.#end() - this.#speechEnd <= MAX_GAP_SECONDS * SAMPLE_RATE) return;
      this.#toPrompt(this.#committedInBuffer.length);
    }
    this.#dropBefore(this.#end() - this.#padSamples);
  }
}
