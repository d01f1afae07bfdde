/** Short model names (`base`, `tiny.en`, `large-v3-turbo`, …) → Hub repo ids. */
import { WhisperError } from '../errors.js';
import { assertRepoId } from './validate.js';

/** The sizes a short name may use; `.en` exists for the four smallest (as in openai/whisper `_MODELS`). */
export const MODEL_SIZES = ['tiny', 'base', 'small', 'medium', 'large-v3', 'large-v3-turbo'] as const;
const ENGLISH_ONLY_SIZES: ReadonlySet<string> = new Set(['tiny', 'base', 'small', 'medium']);

/** Aliases as faster-whisper's utils.py `_MODELS` has them: `large` is large-v3, `turbo` is large-v3-turbo. */
const ALIASES: Readonly<Record<string, string>> = { large: 'large-v3', turbo: 'large-v3-turbo' };

/**
 * Distil-Whisper large-v3: the official repo carries the onnx/ folder in the same layout (there is no
 * onnx-community/whisper-distil-large-v3), so the name points there.
 */
const DISTIL: Readonly<Record<string, string>> = { 'distil-large-v3': 'distil-whisper/distil-large-v3' };

/** Every short name accepted, for help texts: sizes, their `.en` forms; each also takes `_timestamped`. */
export const MODEL_NAMES: readonly string[] = [
  ...MODEL_SIZES.flatMap((size) => (ENGLISH_ONLY_SIZES.has(size) ? [size, `${size}.en`] : [size])),
  ...Object.keys(DISTIL),
];

const SHORT_NAME = /^([a-z0-9-]+?)(\.en)?(_timestamped)?$/;

/**
 * Maps a short name to its repo id: `base` → `onnx-community/whisper-base`, `tiny.en_timestamped` →
 * `onnx-community/whisper-tiny.en_timestamped` (the variant whose decoder also outputs cross-attentions for word
 * timestamps). An `org/name` is returned as is after validation. Throws `E_HUB_INVALID_ID` otherwise.
 */
export function resolveModelId(name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new WhisperError('E_HUB_INVALID_ID', 'the model name is empty');
  }
  if (name.includes('/') || name.includes('\\')) {
    assertRepoId(name);
    return name;
  }
  const distil = DISTIL[name];
  if (distil !== undefined) return distil;
  const match = SHORT_NAME.exec(name);
  if (match !== null) {
    const size = ALIASES[match[1] ?? ''] ?? match[1] ?? '';
    const english = match[2] !== undefined;
    const timestamped = match[3] !== undefined;
    if ((MODEL_SIZES as readonly string[]).includes(size) && (!english || ENGLISH_ONLY_SIZES.has(size))) {
      return `onnx-community/whisper-${size}${english ? '.en' : ''}${timestamped ? '_timestamped' : ''}`;
    }
  }
  throw new WhisperError(
    'E_HUB_INVALID_ID',
    `unknown model name ${JSON.stringify(name)}: use one of ${MODEL_NAMES.join(', ')} ` +
      '(optionally with "_timestamped"), or a Hub repo id such as onnx-community/whisper-base',
  );
}
