/**
 * The hub client: Whisper models by short name or repo id from the Hugging Face Hub (or a mirror: `HF_ENDPOINT`)
 * into the cache huggingface_hub uses, so Python and whisper-ts share every download.
 */
import { stat } from 'node:fs/promises';
import { WhisperError } from '../errors.js';
import { pullModel } from './pull.js';
import type { HubOptions } from './types.js';

export { pullModel, findCachedModel, SIDE_FILES } from './pull.js';
export { modelInfo } from './info.js';
export { listCachedModels, removeCachedModel, repoFolderName } from './cache.js';
export { resolveModelId, MODEL_NAMES, MODEL_SIZES } from './names.js';
export { defaultCacheDir, resolveCacheConfig, resolveHubConfig, DEFAULT_ENDPOINT, DEFAULT_REVISION } from './config.js';
export { DTYPE_SUFFIX, DTYPES, DEFAULT_PULL_DTYPE, isDtype, onnxFilesFor, type Dtype } from './dtypes.js';
export type {
  CachedModel,
  CachedRevision,
  HubFileInfo,
  HubOptions,
  HubRetry,
  HubTimeouts,
  ModelInfo,
  PullOptions,
  PullProgressEvent,
  RemovedModel,
} from './types.js';

/** A string the user meant as a path rather than a repo id: `./x`, `/x`, `~/x`, `C:\x`, `a/b/c`. */
function looksLikePath(value: string): boolean {
  return (
    value.startsWith('.') ||
    value.startsWith('/') ||
    value.startsWith('~') ||
    value.includes('\\') ||
    /^[A-Za-z]:/.test(value) ||
    value.split('/').length > 2
  );
}

/**
 * What `loadModel` calls: an existing local folder is returned unchanged; anything else is a short name or repo id,
 * pulled into the cache (or, offline, found there) and its snapshot folder returned.
 */
export async function resolveModelSource(idOrPath: string, options: HubOptions = {}): Promise<string> {
  try {
    if ((await stat(idOrPath)).isDirectory()) return idOrPath;
  } catch {
    // not a local path
  }
  if (looksLikePath(idOrPath)) {
    throw new WhisperError('E_MODEL_FILE_MISSING', `the model folder ${idOrPath} does not exist`);
  }
  return pullModel(idOrPath, options);
}
