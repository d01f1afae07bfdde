/**
 * whisper-ts: Whisper speech recognition on ONNX Runtime. The curated public API.
 */
import { stat } from 'node:fs/promises';
import { WhisperError } from './errors.js';
import { WhisperModel } from './model/whisper-model.js';
import { resolveLoadOptions, type LoadOptions } from './options.js';
import { optimizeDecoder } from './runtime/optimize.js';
import { Whisper } from './whisper.js';

export { Whisper, type AudioInput, type CallOptions, type Transcription, type TranscribeProgress } from './whisper.js';
export { WhisperError, isWhisperError, type WhisperErrorCode } from './errors.js';
export {
  DEFAULTS,
  OPTION_SPECS,
  resolveTranscribeOptions,
  resolveLoadOptions,
  type TranscribeOptions,
  type LoadOptions,
  type AllOptions,
  type OptionSpec,
  type Task,
  type Device,
} from './options.js';
export type { Segment, Word, TranscriptionInfo, TranscriptionResult } from './types.js';
export { DTYPES, DTYPE_SUFFIX, type Dtype } from './dtypes.js';
export { LANGUAGE_NAMES, toLanguageCode } from './languages.js';
export { decodeAudio } from './audio/index.js';
export {
  OUTPUT_FORMATS,
  formatResult,
  formatTimestamp,
  isOutputFormat,
  toVerboseJson,
  type OutputFormat,
  type VerboseJson,
} from './format/index.js';

export interface LoadModelOptions extends Partial<Omit<LoadOptions, 'model'>> {
  /** Where rewritten decoder graphs are cached (default ~/.cache/whisper-ts/graphs). */
  graphCacheDir?: string;
  /** Rewrite the quantized decoder's tied output projection (default true). */
  optimizeDecoder?: boolean;
  /** Reports progress while a model is being downloaded. */
  onStatus?: (message: string) => void;
  signal?: AbortSignal;
}

/**
 * Loads a Whisper model from a folder in the onnx-community layout (or, through the hub client, a size name or a
 * Hub repo id). The result is immutable and can serve many calls at once.
 */
export async function loadModel(model: string, options: LoadModelOptions = {}): Promise<Whisper> {
  const { graphCacheDir, optimizeDecoder: optimize, onStatus: _onStatus, signal: _signal, ...rest } = options;
  const o = resolveLoadOptions({ ...stripUndefined(rest), model });
  const dir = await resolveModelDir(o.model);
  const m = await WhisperModel.load(dir, {
    ...(o.dtype ? { dtype: o.dtype } : {}),
    ...(o.encoderDtype ? { encoderDtype: o.encoderDtype } : {}),
    ...(o.decoderDtype ? { decoderDtype: o.decoderDtype } : {}),
    threads: o.threads,
    device: o.device,
    optimizeDecoder: optimize !== false,
    ...(graphCacheDir !== undefined ? { graphCacheDir } : {}),
    decoderRewriter: async (path, cacheDir) =>
      (await optimizeDecoder(path, cacheDir !== undefined ? { cacheDir } : {})).path,
  });
  return new Whisper(m);
}

async function resolveModelDir(model: string): Promise<string> {
  try {
    const s = await stat(model);
    if (s.isDirectory()) return model;
    throw new WhisperError('E_MODEL_FILE_MISSING', `${model} is not a model folder`);
  } catch (cause) {
    if (cause instanceof WhisperError) throw cause;
    throw new WhisperError('E_MODEL_FILE_MISSING', `the model folder ${model} does not exist`, { cause });
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
