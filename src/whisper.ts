import { decodeAudio } from './audio/index.js';
import { WhisperError, throwIfAborted } from './errors.js';
import type { WhisperModel } from './model/whisper-model.js';
import { resolveTranscribeOptions, type TranscribeOptions } from './options.js';
import { transcribeSequential, type Transcription, type TranscribeProgress } from './transcribe/sequential.js';
import type { Segment, TranscriptionInfo, TranscriptionResult } from './types.js';
import type { WhisperConfig } from './model/config.js';
import type { Dtype } from './dtypes.js';

/** Audio a call accepts: a file path, encoded bytes (any format ffmpeg reads, WAV natively), or 16 kHz mono samples. */
export type AudioInput = string | Uint8Array | ArrayBuffer | Float32Array;

export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: (progress: TranscribeProgress) => void;
}

export type { Transcription, TranscribeProgress };

/**
 * A loaded Whisper model. Immutable and shareable: concurrent calls each get their own decoder cache and state.
 */
export class Whisper {
  /** @internal */
  constructor(readonly model: WhisperModel) {}

  get config(): WhisperConfig {
    return this.model.config;
  }
  get isMultilingual(): boolean {
    return this.model.isMultilingual;
  }
  get dtypes(): { encoder: Dtype; decoder: Dtype } {
    return { encoder: this.model.files.encoderDtype, decoder: this.model.files.decoderDtype };
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
    options: Partial<TranscribeOptions> = {},
    call: CallOptions = {},
  ): Promise<Transcription> {
    const o = resolveTranscribeOptions(options);
    throwIfAborted(call.signal);
    const audio = await toSamples(input, call.signal);
    return transcribeSequential(this.model, audio, o, { signal: call.signal, onProgress: call.onProgress });
  }

  /** Transcribes and collects every segment. */
  async transcribeAll(
    input: AudioInput,
    options: Partial<TranscribeOptions> = {},
    call: CallOptions = {},
  ): Promise<TranscriptionResult> {
    const { info, segments } = await this.transcribe(input, options, call);
    const all: Segment[] = [];
    for await (const s of segments) all.push(s);
    return { info, segments: all, text: all.map((s) => s.text).join('') };
  }

  async dispose(): Promise<void> {
    await this.model.dispose();
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
