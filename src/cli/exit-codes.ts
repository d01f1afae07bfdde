import { WhisperError, type WhisperErrorCode } from '../errors.js';

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** Some inputs failed; the others were done and written. */
  partial: 1,
  /** Bad command line or options. */
  usage: 2,
  /** The model could not be found, downloaded or loaded. */
  model: 3,
  /** Interrupted (SIGINT / abort). */
  aborted: 130,
} as const;

const MODEL_CODES: readonly WhisperErrorCode[] = [
  'E_MODEL_FILE_MISSING',
  'E_MODEL_INVALID',
  'E_MODEL_LOAD',
  'E_HUB_NOT_FOUND',
  'E_HUB_UNAUTHORIZED',
  'E_HUB_NETWORK',
  'E_HUB_INTEGRITY',
  'E_HUB_OFFLINE',
  'E_HUB_INVALID_ID',
];

/** Maps an error to an exit code and a one-line message, in one place. */
export function describeError(err: unknown): { code: number; message: string } {
  if (err instanceof WhisperError) {
    if (err.code === 'E_OPTIONS') return { code: EXIT.usage, message: `error: ${err.message}` };
    if (err.code === 'E_ABORTED') return { code: EXIT.aborted, message: 'aborted' };
    if (MODEL_CODES.includes(err.code)) return { code: EXIT.model, message: `error (${err.code}): ${err.message}` };
    return { code: EXIT.partial, message: `error (${err.code}): ${err.message}` };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: EXIT.partial, message: `error: ${message}` };
}
