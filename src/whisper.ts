import { decodeAudio } from './audio/index.js';
import { WhisperError, throwIfAborted } from './errors.js';
import type { WhisperModel } from './model/whisper-model.js';
import { WindowBatcher, type WindowBatcherStats } from './decoding/window-batcher.js';
import { resolveTranscribeOptions, type Activations, type TranscribeOptionsInput } from './options.js';
import { transcribeSequential, type Transcription, type TranscribeProgress } from './transcribe/sequential.js';
import { transcribeBatched } from './transcribe/batched.js';
import {
  transcribeMany,
  type FileOutcome,
  type ManyCallOptions,
  type ManyProgress,
  type ManySummary,
} from './transcribe/many.js';
import { transcribeWithVad } from './transcribe/vad-filter.js';
import { loadVad, type VadModel } from './vad/index.js';
import { profileModel, type ModelProfile, type ProfileOptions } from './model/profile.js';
import type { ResolvedTranscribeOptions } from './options.js';
import type { Segment, TranscriptionInfo, TranscriptionResult } from './types.js';
import type { WhisperConfig } from './model/config.js';
import type { Dtype } from './dtypes.js';

/** Audio a call accepts: a file path, encoded bytes (any format ffmpeg reads, WAV natively), or 16 kHz mono samples. */
export type AudioInput = string | Uint8Array | ArrayBuffer | Float32Array;

export interface CallOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: TranscribeProgress) => void) | undefined;
}

export type {
  Transcription,
  TranscribeProgress,
  FileOutcome,
  ManyCallOptions,
  ManyProgress,
  ManySummary,
  ModelProfile,
  ProfileOptions,
};

/**
 * A loaded Whisper model. Immutable and shareable: concurrent calls each get their own decoder cache and state.
 */
export class Whisper {
  #vad: Promise<VadModel> | undefined;

  /** Shares decoder batches between concurrent calls (load option `batchConcurrentCalls`). */
  readonly #batcher: WindowBatcher | undefined;

  /** @internal */
  constructor(
    readonly model: WhisperModel,
    options: { batchConcurrentCalls?: boolean } = {},
  ) {
    this.#batcher = options.batchConcurrentCalls === true ? new WindowBatcher(model) : undefined;
  }

  /** How many windows concurrent calls decoded in shared batches (all zeros without `batchConcurrentCalls`). */
  get batchStats(): Readonly<WindowBatcherStats> {
    return { ...(this.#batcher?.stats ?? { windows: 0, batches: 0, batchedWindows: 0, largestBatch: 0 }) };
  }

  /** The Silero VAD that `vadFilter` and the batched pipeline use: loaded on first use, released by `dispose`. */
  #loadVad(): Promise<VadModel> {
    if (this.#vad === undefined) {
      const loading = loadVad();
      loading.catch(() => {
        if (this.#vad === loading) this.#vad = undefined; // let a later call try again
      });
      this.#vad = loading;
    }
    return this.#vad;
  }

  /** Picks the pipeline: batched (batchSize > 1), sequential behind the VAD stage (vadFilter), or sequential. */
  async #run(audio: Float32Array, o: ResolvedTranscribeOptions, call: CallOptions): Promise<Transcription> {
    this.model.assertUsable(); // before loading a VAD that nothing would release
    const ctx = { signal: call.signal, onProgress: call.onProgress, windowDecoder: this.#batcher?.decode };
    if (o.batchSize > 1) return transcribeBatched(this.model, o.vadFilter ? await this.#loadVad() : null, audio, o, ctx);
    if (o.vadFilter) return transcribeWithVad(this.model, await this.#loadVad(), audio, o, ctx, transcribeSequential);
    return transcribeSequential(this.model, audio, o, ctx);
  }

  get config(): WhisperConfig {
    return this.model.config;
  }
  get isMultilingual(): boolean {
    return this.model.isMultilingual;
  }
  get dtypes(): { encoder: Dtype; decoder: Dtype } {
    return { encoder: this.model.files.encoderDtype, decoder: this.model.files.decoderDtype };
  }
  /** How the 8-bit matrix products compute: the load option `activations`, with `auto` decided for this machine. */
  get activations(): Exclude<Activations, 'auto'> {
    return this.model.activations;
  }
  /** Word timestamps need a decoder that outputs cross-attentions (the `_timestamped` exports). */
  get supportsWordTimestamps(): boolean {
    return this.model.hasCrossAttentions;
  }

  /**
   * Transcribes (or translates) audio. Resolves once the language is known, with the info and an async iterator that
   * yields segments as they are decoded.
   */
  async transcribe(
    input: AudioInput,
    options: TranscribeOptionsInput = {},
    call: CallOptions = {},
  ): Promise<Transcription> {
    const o = resolveTranscribeOptions(options);
    throwIfAborted(call.signal);
    const audio = await toSamples(input, call.signal);
    return this.#run(audio, o, call);
  }

  /**
   * Transcribes many inputs with this model, one after another (or, with `batchSize` > 1, their speech chunks in
   * shared batches), decoding the next input's audio while the model works. An input that fails is reported in its
   * outcome and never stops the others; `onFile` gets each outcome in input order. Resolves with a summary.
   */
  async transcribeMany<I extends AudioInput>(
    // a string is an iterable of its characters: `& { charAt?: never }` keeps one path from type-checking as a list
    inputs: (Iterable<I> | AsyncIterable<I>) & { charAt?: never },
    options: TranscribeOptionsInput = {},
    call: ManyCallOptions<I> = {},
  ): Promise<ManySummary> {
    if (typeof inputs === 'string' || inputs instanceof Uint8Array || inputs instanceof Float32Array) {
      throw new WhisperError('E_OPTIONS', 'transcribeMany takes a list of inputs (paths, bytes or samples); for one input, call transcribe');
    }
    const o = resolveTranscribeOptions(options);
    throwIfAborted(call.signal);
    return transcribeMany(
      {
        model: this.model,
        vad: () => this.#loadVad(),
        decode: (input, signal) => toSamples(input, signal),
        transcribe: (audio, resolved, ctx) =>
          this.#run(audio, resolved, { ...(ctx.signal ? { signal: ctx.signal } : {}), ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}) }),
      },
      inputs,
      o,
      call,
    );
  }

  /** Transcribes and collects every segment. */
  async transcribeAll(
    input: AudioInput,
    options: TranscribeOptionsInput = {},
    call: CallOptions = {},
  ): Promise<TranscriptionResult> {
    const { info, segments } = await this.transcribe(input, options, call);
    const all: Segment[] = [];
    for await (const s of segments) all.push(s);
    return { info, segments: all, text: all.map((s) => s.text).join('') };
  }

  /**
   * Encoder milliseconds per 30-s window and decoder milliseconds per token on this machine (the guide's hardware
   * table), measured on the first 30 s of `input`.
   */
  async profile(input: AudioInput, options: ProfileOptions = {}): Promise<ModelProfile> {
    return profileModel(this.model, await toSamples(input, options.signal), options);
  }

  async dispose(): Promise<void> {
    const vad = this.#vad;
    this.#vad = undefined;
    await Promise.all([this.model.dispose(), vad?.then((v) => v.dispose(), () => undefined)]);
  }
}

export async function toSamples(input: AudioInput, signal?: AbortSignal): Promise<Float32Array> {
  if (input instanceof Float32Array) {
    if (input.length === 0) throw new WhisperError('E_AUDIO_DECODE', 'the audio has no samples');
    for (let i = 0; i < input.length; i++) {
      if (!Number.isFinite(input[i])) {
        throw new WhisperError('E_AUDIO_DECODE', `the audio has a non-finite sample (NaN or Inf) at index ${i}`);
      }
    }
    return input;
  }
  return decodeAudio(input, signal ? { signal } : {});
}

export type { TranscriptionInfo };
