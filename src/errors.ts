/**
 * The one error class of whisper-ts. Every failure the library reports is a `WhisperError` with a stable `code`;
 * the original error, where there is one, is kept as `cause`.
 */
export type WhisperErrorCode =
  | 'E_AUDIO_DECODE' // the input is not audio we can decode (empty, truncated, not audio, NaN/Inf samples)
  | 'E_AUDIO_NOT_FOUND' // the input path does not exist
  | 'E_FFMPEG_MISSING' // a non-WAV input needs ffmpeg and none is on PATH
  | 'E_MODEL_FILE_MISSING' // a model folder lacks a required file
  | 'E_MODEL_INVALID' // a model file exists but cannot be read or is inconsistent
  | 'E_MODEL_LOAD' // ONNX Runtime failed to create a session
  | 'E_INFERENCE' // ONNX Runtime failed while running
  | 'E_OPTIONS' // an unknown option, a bad value or an unsupported combination
  | 'E_ABORTED' // the caller's AbortSignal fired
  | 'E_DISPOSED' // the model was used after dispose()
  | 'E_HUB_NOT_FOUND' // repo, revision or file unknown to the Hub
  | 'E_HUB_UNAUTHORIZED' // 401/403: gated or private repo without a (valid) token
  | 'E_HUB_NETWORK' // connection failures, timeouts, 5xx after retries
  | 'E_HUB_INTEGRITY' // downloaded bytes do not match the expected hash or size
  | 'E_HUB_OFFLINE' // HF_HUB_OFFLINE=1 and the file is not in the cache
  | 'E_HUB_INVALID_ID' // a repo id, revision or path that is refused before any request
  | 'E_VAD' // the voice-activity detector failed
  | 'E_IO'; // reading or writing a local file failed

export interface WhisperErrorOptions {
  cause?: unknown;
}

export class WhisperError extends Error {
  override readonly name = 'WhisperError';
  readonly code: WhisperErrorCode;

  constructor(code: WhisperErrorCode, message: string, options: WhisperErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export function isWhisperError(value: unknown): value is WhisperError {
  return value instanceof WhisperError;
}

/** Throws `E_ABORTED` if the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new WhisperError('E_ABORTED', 'the operation was aborted', { cause: signal.reason });
  }
}
