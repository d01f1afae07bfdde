import { WhisperError } from '../errors.js';

/**
 * Options of the voice-activity detector, with the meaning of faster-whisper's `VadOptions`
 * (faster_whisper/vad.py, class VadOptions).
 */
export interface VadOptions {
  /** Speech probability at or above which a 512-sample window counts as speech. */
  threshold: number;
  /**
   * Probability below which a window always counts as silence (ends speech). `null`: `threshold − 0.15`, at least
   * 0.01, as faster-whisper derives it.
   */
  negThreshold: number | null;
  /** Speech spans shorter than this are dropped. */
  minSpeechDurationMs: number;
  /**
   * Spans longer than this are split at the last silence longer than 98 ms, or cut just before the limit when there
   * is none. `Infinity`: no limit.
   */
  maxSpeechDurationS: number;
  /** Silence that must follow speech before a span is closed. */
  minSilenceDurationMs: number;
  /** Padding added to each side of every span (half the gap each when two spans are closer than twice this). */
  speechPadMs: number;
}

/** `VadOptions` after validation, with `negThreshold` resolved to a number. */
export type ResolvedVadOptions = Readonly<Omit<VadOptions, 'negThreshold'> & { negThreshold: number }>;

/**
 * The defaults: faster-whisper 1.2.1's `VadOptions` (faster_whisper/vad.py), the values `WhisperModel.transcribe`
 * uses with `vad_filter=True`.
 */
export const VAD_DEFAULTS: Readonly<VadOptions> = Object.freeze({
  threshold: 0.5,
  negThreshold: null,
  minSpeechDurationMs: 0,
  maxSpeechDurationS: Infinity,
  minSilenceDurationMs: 2000,
  speechPadMs: 400,
});

/**
 * The defaults faster-whisper's batched pipeline uses (faster_whisper/transcribe.py,
 * BatchedInferencePipeline.transcribe): spans at most one 30 s window long, split at shorter silences.
 */
export const VAD_BATCHED_DEFAULTS: Readonly<VadOptions> = Object.freeze({
  ...VAD_DEFAULTS,
  maxSpeechDurationS: 30,
  minSilenceDurationMs: 160,
});

/** The sample rate the detector works at (Silero's 16 kHz mode). */
export const VAD_SAMPLE_RATE = 16_000;
/** Samples per Silero window at 16 kHz; one speech probability per window. */
export const VAD_WINDOW_SAMPLES = 512;

const KEYS = Object.keys(VAD_DEFAULTS) as (keyof VadOptions)[];

function bad(name: string, message: string): WhisperError {
  return new WhisperError('E_OPTIONS', `VAD option ${name} ${message}`);
}

function finiteInRange(options: Record<string, unknown>, name: keyof VadOptions, min: number, max: number): number {
  const value = options[name];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw bad(name, `must be a finite number, got ${String(value)}`);
  }
  if (value < min || value > max) {
    throw bad(name, `must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

/**
 * Merges `options` over `VAD_DEFAULTS`, checks every value and returns a frozen object. A key that is not a VAD
 * option, a value of the wrong type or out of range, or `negThreshold` above `threshold` throws `E_OPTIONS` naming
 * the option. Keys whose value is `undefined` count as not given.
 */
export function resolveVadOptions(options: Partial<VadOptions> = {}): ResolvedVadOptions {
  if (typeof options !== 'object' || options === null) {
    throw new WhisperError('E_OPTIONS', 'VAD options must be an object');
  }
  const merged: Record<string, unknown> = { ...VAD_DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (!(KEYS as string[]).includes(key)) {
      throw new WhisperError('E_OPTIONS', `unknown VAD option ${key} (known: ${KEYS.join(', ')})`);
    }
    if (value !== undefined) merged[key] = value;
  }

  const threshold = finiteInRange(merged, 'threshold', 0, 1);
  let negThreshold: number;
  if (merged['negThreshold'] === null) {
    // faster_whisper/vad.py, get_speech_timestamps: neg_threshold = max(threshold - 0.15, 0.01)
    negThreshold = Math.max(threshold - 0.15, 0.01);
  } else {
    negThreshold = finiteInRange(merged, 'negThreshold', 0, 1);
    if (negThreshold > threshold) {
      throw bad('negThreshold', `must not exceed threshold (${threshold}), got ${negThreshold}`);
    }
  }
  const minSpeechDurationMs = finiteInRange(merged, 'minSpeechDurationMs', 0, Number.MAX_SAFE_INTEGER);
  const minSilenceDurationMs = finiteInRange(merged, 'minSilenceDurationMs', 0, Number.MAX_SAFE_INTEGER);
  const speechPadMs = finiteInRange(merged, 'speechPadMs', 0, Number.MAX_SAFE_INTEGER);

  const maxSpeechDurationS = merged['maxSpeechDurationS'];
  if (typeof maxSpeechDurationS !== 'number' || Number.isNaN(maxSpeechDurationS)) {
    throw bad('maxSpeechDurationS', `must be a number (Infinity for no limit), got ${String(maxSpeechDurationS)}`);
  }
  // get_speech_timestamps splits spans longer than sr * max - window - 2 * pad samples; a limit that leaves no room
  // for one window would split every window.
  const minimumS = (VAD_WINDOW_SAMPLES + (2 * speechPadMs * VAD_SAMPLE_RATE) / 1000) / VAD_SAMPLE_RATE;
  if (!(maxSpeechDurationS > minimumS)) {
    throw bad(
      'maxSpeechDurationS',
      `must exceed ${minimumS} s (one 32 ms window plus twice speechPadMs), got ${maxSpeechDurationS}`,
    );
  }

  return Object.freeze({
    threshold,
    negThreshold,
    minSpeechDurationMs,
    maxSpeechDurationS,
    minSilenceDurationMs,
    speechPadMs,
  });
}
