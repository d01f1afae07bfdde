import { SAMPLE_RATE } from '../audio/index.js';
import { WhisperError, throwIfAborted } from '../errors.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ResolvedTranscribeOptions } from '../options.js';
import type { Segment, TranscriptionInfo, TranscriptionResult } from '../types.js';
import type { VadModel } from '../vad/index.js';
import {
  BatchRunner,
  BatchedInput,
  checkBatchedModel,
  chunkAudio,
  fixedLanguage,
  languageOfAudio,
  type BatchChunk,
  type ChunkTag,
  type LanguageSlot,
} from './batched.js';
import type { CallContext, Transcription } from './sequential.js';
import { zhScriptConverter } from './zh-script.js';

/** What became of one input of a many-file call. */
export interface FileOutcome<I> {
  /** Position of the input in the iterable. */
  index: number;
  input: I;
  /** The transcript, when the input succeeded. */
  result?: TranscriptionResult;
  /** Why the input failed (it never stops the others). */
  error?: WhisperError;
  /** Seconds of audio in the input (0 when it could not be decoded). */
  audioSeconds: number;
  /** Seconds from the start of its transcription to its end (batched: while sharing batches with its neighbours). */
  seconds: number;
}

export interface ManyProgress {
  /** Inputs in all, when the iterable has a length. */
  files: number | undefined;
  /** Inputs finished (succeeded or failed). */
  filesDone: number;
  /** The input being transcribed: its index and how far it is, in seconds of its audio. */
  index: number;
  done: number;
  total: number;
}

export interface ManySummary {
  files: number;
  succeeded: number;
  failed: number;
  /** Seconds of audio of the inputs that were decoded. */
  audioSeconds: number;
  /** Wall-clock seconds of the whole call. */
  seconds: number;
  /** Audio seconds per wall-clock second. */
  realTimeFactor: number;
  failures: { index: number; error: WhisperError }[];
}

export interface ManyCallOptions<I> {
  signal?: AbortSignal | undefined;
  /** Called with each input's outcome, in input order; awaited before the next outcome is reported. */
  onFile?: ((outcome: FileOutcome<I>) => void | Promise<void>) | undefined;
  onProgress?: ((progress: ManyProgress) => void) | undefined;
  /** Called with each segment as it is decoded (in time order within an input), with its input's index and info. */
  onSegment?: ((index: number, segment: Segment, info: TranscriptionInfo) => void) | undefined;
  /** Inputs whose audio is decoded ahead of the model (default 1). */
  prefetch?: number | undefined;
}

/** What the many-file runner needs from the model object. */
export interface ManyEngine<I> {
  model: WhisperModel;
  vad: () => Promise<VadModel>;
  /** Decodes one input to 16 kHz mono samples. */
  decode: (input: I, signal?: AbortSignal) => Promise<Float32Array>;
  /** Transcribes samples one input at a time (the sequential loop, with or without the VAD stage). */
  transcribe: (audio: Float32Array, o: ResolvedTranscribeOptions, ctx: CallContext) => Promise<Transcription>;
}

function asWhisperError(err: unknown): WhisperError {
  if (err instanceof WhisperError) return err;
  return new WhisperError('E_INFERENCE', err instanceof Error ? err.message : String(err), { cause: err });
}

type Decoded = { audio: Float32Array } | { error: WhisperError };

/**
 * Inputs paired with their decoded audio, `prefetch` inputs ahead: the next input is decoded (ffmpeg runs in its own
 * process) while the model works on the current one.
 */
async function* prefetched<I>(
  inputs: Iterable<I> | AsyncIterable<I>,
  decode: (input: I, signal?: AbortSignal) => Promise<Float32Array>,
  ahead: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<{ index: number; input: I; decoded: Promise<Decoded> }> {
  const queue: { index: number; input: I; decoded: Promise<Decoded> }[] = [];
  let index = 0;
  const start = (input: I): void => {
    const decoded = decode(input, signal).then(
      (audio): Decoded => ({ audio }),
      (err: unknown): Decoded => ({ error: asWhisperError(err) }),
    );
    queue.push({ index: index++, input, decoded });
  };
  for await (const input of inputs) {
    start(input);
    while (queue.length > ahead) yield queue.shift() as (typeof queue)[number];
  }
  while (queue.length > 0) yield queue.shift() as (typeof queue)[number];
}

/**
 * Transcribes many inputs with one loaded model (the guide's batch processing): audio is decoded ahead of the model,
 * an input that fails (cannot be decoded, no such file, …) is reported and the others go on, and every outcome is
 * handed to `onFile` in input order. With `batchSize` > 1 the speech chunks of consecutive inputs share batches, so
 * many short files fill the batch as well as one long one. An abort (`E_ABORTED`) and an options error the model
 * raises (`E_OPTIONS`: it would fail every input alike) end the call by throwing.
 */
export async function transcribeMany<I>(
  engine: ManyEngine<I>,
  inputs: Iterable<I> | AsyncIterable<I>,
  o: ResolvedTranscribeOptions,
  call: ManyCallOptions<I> = {},
): Promise<ManySummary> {
  const t0 = performance.now();
  const files = Array.isArray(inputs) ? inputs.length : undefined;
  const summary: ManySummary = {
    files: 0,
    succeeded: 0,
    failed: 0,
    audioSeconds: 0,
    seconds: 0,
    realTimeFactor: 0,
    failures: [],
  };
  const report = async (outcome: FileOutcome<I>): Promise<void> => {
    summary.files++;
    summary.audioSeconds += outcome.audioSeconds;
    if (outcome.error) {
      summary.failed++;
      summary.failures.push({ index: outcome.index, error: outcome.error });
    } else summary.succeeded++;
    await call.onFile?.(outcome);
  };
  const prefetch = call.prefetch ?? 1;
  if (!Number.isInteger(prefetch) || prefetch < 0) {
    throw new WhisperError('E_OPTIONS', `prefetch must be a whole number of inputs ≥ 0, not ${String(prefetch)}`);
  }
  const queue = prefetched(inputs, engine.decode, prefetch, call.signal);
  if (o.batchSize > 1) await runBatched(engine, queue, o, call, files, report);
  else await runSequential(engine, queue, o, call, files, report);
  summary.seconds = (performance.now() - t0) / 1000;
  summary.realTimeFactor = summary.seconds > 0 ? summary.audioSeconds / summary.seconds : 0;
  return summary;
}

type Queue<I> = AsyncGenerator<{ index: number; input: I; decoded: Promise<Decoded> }>;

/**
 * Errors that end the whole call: an abort, and an options error (options the model cannot serve, e.g. a language
 * an English-only model lacks, fail every input alike).
 */
function rethrowFatal(err: WhisperError, signal: AbortSignal | undefined): void {
  if (signal?.aborted && err.code !== 'E_ABORTED') throw new WhisperError('E_ABORTED', 'aborted', { cause: err });
  if (err.code === 'E_ABORTED' || err.code === 'E_OPTIONS') throw err;
}

async function runSequential<I>(
  engine: ManyEngine<I>,
  queue: Queue<I>,
  o: ResolvedTranscribeOptions,
  call: ManyCallOptions<I>,
  files: number | undefined,
  report: (outcome: FileOutcome<I>) => Promise<void>,
): Promise<void> {
  let filesDone = 0;
  for await (const { index, input, decoded } of queue) {
    throwIfAborted(call.signal);
    const d = await decoded;
    const t = performance.now();
    let outcome: FileOutcome<I>;
    if ('error' in d) {
      rethrowFatal(d.error, call.signal);
      outcome = { index, input, error: d.error, audioSeconds: 0, seconds: 0 };
    } else {
      const audioSeconds = d.audio.length / SAMPLE_RATE;
      try {
        const { info, segments } = await engine.transcribe(d.audio, o, {
          signal: call.signal,
          onProgress: (p) => call.onProgress?.({ files, filesDone, index, done: p.done, total: p.total }),
        });
        const all: Segment[] = [];
        for await (const s of segments) {
          all.push(s);
          call.onSegment?.(index, s, info);
        }
        const result = { info, segments: all, text: all.map((s) => s.text).join('') };
        outcome = { index, input, result, audioSeconds, seconds: (performance.now() - t) / 1000 };
      } catch (err) {
        const e = asWhisperError(err);
        rethrowFatal(e, call.signal);
        outcome = { index, input, error: e, audioSeconds, seconds: (performance.now() - t) / 1000 };
      }
    }
    filesDone++;
    await report(outcome);
  }
}

/** One input of the batched many-file run, from its decode until its last chunk is decoded. */
interface FileRecord<I> {
  index: number;
  input: I;
  started: number;
  audioSeconds: number;
  batched?: BatchedInput<FileRecord<I>>;
  /** The language of an input without speech (detected on its first 30 s). */
  silentSlot?: LanguageSlot;
  /** All its chunks were handed to the runner (or it has none, or it failed). */
  queued: boolean;
  segments: Segment[];
  error?: WhisperError;
}

async function runBatched<I>(
  engine: ManyEngine<I>,
  queue: Queue<I>,
  o: ResolvedTranscribeOptions,
  call: ManyCallOptions<I>,
  files: number | undefined,
  report: (outcome: FileOutcome<I>) => Promise<void>,
): Promise<void> {
  const { model } = engine;
  checkBatchedModel(model, o);
  const fixed = fixedLanguage(model, o.language);
  const vad = o.vadFilter ? await engine.vad() : null;
  const tk = model.tokenizer;
  const decodeText = (t: readonly number[]): string => tk.decode(t);
  const toScript = await zhScriptConverter(o.zhScript);
  const records: FileRecord<I>[] = [];
  let reported = 0;

  // the inputs' chunks, input after input: the runner fills each batch with the chunks of as many inputs as it takes
  async function* chunks(): AsyncGenerator<BatchChunk<ChunkTag<FileRecord<I>>>> {
    for await (const { index, input, decoded } of queue) {
      throwIfAborted(call.signal);
      const record: FileRecord<I> = { index, input, started: performance.now(), audioSeconds: 0, queued: false, segments: [] };
      records.push(record);
      const d = await decoded;
      if ('error' in d) {
        rethrowFatal(d.error, call.signal);
        record.error = d.error;
        record.queued = true;
        continue;
      }
      const audio = d.audio;
      record.audioSeconds = audio.length / SAMPLE_RATE;
      try {
        const chunked = await chunkAudio(vad, audio, o, call.signal);
        record.batched = new BatchedInput(record, chunked, fixed, o, decodeText, toScript);
        if (chunked.plans.length === 0) record.silentSlot = await languageOfAudio(model, audio, o.language, call.signal);
      } catch (err) {
        const e = asWhisperError(err);
        rethrowFatal(e, call.signal);
        record.error = e;
        record.queued = true;
        continue;
      }
      yield* record.batched.chunks(audio);
      record.queued = true;
    }
  }

  const finished = (r: FileRecord<I>): boolean => r.queued && (r.error !== undefined || r.batched?.finished === true);
  const flush = async (): Promise<void> => {
    while (reported < records.length && finished(records[reported] as FileRecord<I>)) {
      const r = records[reported++] as FileRecord<I>;
      const seconds = (performance.now() - r.started) / 1000;
      if (r.error || !r.batched) {
        const error = r.error ?? new WhisperError('E_INFERENCE', 'the input was not transcribed');
        await report({ index: r.index, input: r.input, error, audioSeconds: r.audioSeconds, seconds });
        continue;
      }
      const info = r.batched.info(r.silentSlot);
      const result = { info, segments: r.segments, text: r.segments.map((s) => s.text).join('') };
      await report({ index: r.index, input: r.input, result, audioSeconds: r.audioSeconds, seconds });
    }
  };

  const runner = new BatchRunner(model, o, chunks(), call.signal);
  for await (const outcome of runner.run()) {
    const batched = outcome.chunk.tag.input;
    const record = batched.owner;
    for (const segment of batched.add(outcome)) {
      record.segments.push(segment);
      call.onSegment?.(record.index, segment, batched.info());
    }
    const current = records[reported];
    const plans = current?.batched?.chunked.plans.length ?? 0;
    if (current) {
      call.onProgress?.({
        files,
        filesDone: reported,
        index: current.index,
        done: plans > 0 ? ((current.batched?.chunksDone ?? 0) / plans) * current.audioSeconds : 0,
        total: current.audioSeconds,
      });
    }
    await flush();
  }
  await flush();
}
