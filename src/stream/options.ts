/**
 * Options of the live transcriber: the per-call options of the one table (src/options.ts: language, task, decoding,
 * prompt, word timestamps, VAD parameters) plus the few settings only a stream has, in a small table of their own
 * (`STREAM_OPTION_SPECS`, the same spec form, so the CLI and the server derive flags and fields from it).
 */
import { WhisperError } from '../errors.js';
import {
  DEFAULTS,
  TRANSCRIBE_KEYS,
  coerceWith,
  resolveTranscribeOptions,
  type OptionSpec,
  type ResolvedTranscribeOptions,
  type OptionalInput,
  type TranscribeOptionsInput,
} from '../options.js';
import { VAD_DEFAULTS, resolveVadOptions, type ResolvedVadOptions, type VadOptions } from '../vad/options.js';

/** Settings only a stream has. */
export interface StreamSettings {
  /**
   * Seconds of new audio between two decoding steps. Smaller: partials follow the voice more closely and words turn
   * final sooner, at more decoding per second of audio (each step re-decodes the buffer).
   */
  minChunkSeconds: number;
  /**
   * How many consecutive hypotheses must agree on a word before it is final (LocalAgreement-n; 2 is
   * whisper_streaming's policy). 1: every hypothesis is final at once (lowest latency, least stable); 3: steadier
   * text, a step more delay.
   */
  agreement: number;
  /**
   * Once the buffer is longer than this, it is cut at the end of the last committed sentence (seconds). Longer:
   * more context for the decoder, more work per step.
   */
  bufferTrimSeconds: number;
  /**
   * Seconds of silence after the buffer in the window each step encodes (30: the whole 30-s window, as openai/whisper
   * pads every window). Whisper is trained on 30-s windows; with a few seconds of padding left a window decodes about
   * as well, and the encoder's work falls with the square of the window (a 10-s buffer with 10 s of padding: half the
   * work). With less than about 10 s consecutive hypotheses agree less often, and words wait longer to become final
   * (longform_en with tiny.en, steps every 0.5 s: WER 22.9 / 24.7 % with 5 s against 19.6 % with 10 s). Models whose
   * encoder takes whole windows only (fp32, fp16 files) always use 30.
   */
  windowPaddingSeconds: number;
}

export type StreamOptions = TranscribeOptionsInput & OptionalInput<StreamSettings>;

export const STREAM_DEFAULTS: Readonly<StreamSettings> = Object.freeze({
  minChunkSeconds: 0.3,
  agreement: 2,
  bufferTrimSeconds: 12,
  windowPaddingSeconds: 10,
});

export const STREAM_OPTION_SPECS: { readonly [K in keyof StreamSettings]: OptionSpec } = {
  minChunkSeconds: { kind: 'number', flag: 'min-chunk', scope: 'call', min: 0.1, max: 10, description: 'seconds of new audio between decoding steps (smaller: lower latency, more work)' },
  agreement: { kind: 'int', flag: 'agreement', scope: 'call', min: 1, max: 5, description: 'consecutive hypotheses that must agree before words are final (2: LocalAgreement-2)' },
  bufferTrimSeconds: { kind: 'number', flag: 'buffer-trim', scope: 'call', min: 2, max: 25, description: 'cut the audio buffer at a committed sentence end once it is longer than this (s)' },
  windowPaddingSeconds: { kind: 'number', flag: 'window-padding', scope: 'call', min: 1, max: 30, description: 'seconds of silence after the buffer in each encoded window (30: the whole 30-s window; less: a faster encoder)' },
};

/**
 * The VAD parameters of a stream, laid under the caller's `vadOptions`: a pause of 500 ms ends an utterance (and
 * commits it), and 300 ms of audio are kept on each side of speech.
 */
export const VAD_STREAM_DEFAULTS: Readonly<VadOptions> = Object.freeze({
  ...VAD_DEFAULTS,
  minSilenceDurationMs: 500,
  speechPadMs: 300,
});

export interface ResolvedStreamOptions {
  transcribe: ResolvedTranscribeOptions;
  stream: Readonly<StreamSettings>;
  vad: ResolvedVadOptions;
}

const STREAM_KEYS = Object.keys(STREAM_OPTION_SPECS) as (keyof StreamSettings)[];

function bad(message: string): WhisperError {
  return new WhisperError('E_OPTIONS', `stream option ${message}`);
}

/**
 * Validates stream options (unknown keys and bad values throw E_OPTIONS) and fills the defaults. Options of the table
 * that a stream cannot honour are refused rather than ignored: batchSize > 1, vadFilter: false (a stream always
 * runs the VAD), withoutTimestamps, clipTimestamps, prefix, languageDetection 'window', hallucinationSilenceThreshold,
 * and the VAD fields that need the future (minSpeechDurationMs, maxSpeechDurationS).
 */
export function resolveStreamOptions(input?: unknown): ResolvedStreamOptions {
  if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
    throw new WhisperError('E_OPTIONS', 'stream options must be an object');
  }
  const given = (input ?? {}) as Record<string, unknown>;
  const call: Record<string, unknown> = {};
  const stream: Record<string, unknown> = { ...STREAM_DEFAULTS };
  for (const [key, value] of Object.entries(given)) {
    if ((STREAM_KEYS as string[]).includes(key)) {
      if (value !== undefined) stream[key] = coerceWith(key, STREAM_OPTION_SPECS[key as keyof StreamSettings], value);
    } else if ((TRANSCRIBE_KEYS as string[]).includes(key)) {
      call[key] = value;
    } else {
      throw new WhisperError('E_OPTIONS', `unknown stream option "${key}"`);
    }
  }
  const vadGiven = (call.vadOptions ?? {}) as Record<string, unknown>;
  const o = resolveTranscribeOptions(call);
  const refuse: [boolean, string][] = [
    [o.batchSize !== 1, 'batchSize: a stream decodes one buffer at a time'],
    [given.vadFilter === false, 'vadFilter: a stream always runs the VAD (it finds the pauses that commit text)'],
    [o.withoutTimestamps, 'withoutTimestamps: a stream needs timestamp tokens for its word times'],
    [o.clipTimestamps.length !== 1 || o.clipTimestamps[0] !== 0, 'clipTimestamps: a stream has no clips'],
    [o.prefix !== null, 'prefix: a stream forces its committed words as the prefix'],
    [o.languageDetection !== DEFAULTS.languageDetection, "languageDetection: a stream detects the language once"],
    [o.hallucinationSilenceThreshold !== null, 'hallucinationSilenceThreshold: not supported in a stream'],
    [vadGiven.minSpeechDurationMs !== undefined, 'vadOptions.minSpeechDurationMs: not supported in a stream'],
    [vadGiven.maxSpeechDurationS !== undefined, 'vadOptions.maxSpeechDurationS: not supported in a stream'],
  ];
  for (const [refused, message] of refuse) if (refused) throw bad(message);
  const vad = resolveVadOptions({ ...VAD_STREAM_DEFAULTS, ...o.vadOptions });
  return Object.freeze({ transcribe: o, stream: Object.freeze(stream as unknown as StreamSettings), vad });
}
