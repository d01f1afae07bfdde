/**
 * whisper-ts: Whisper speech recognition on ONNX Runtime. The curated public API.
 */
import { resolveModelSource, type PullProgressEvent } from './hub/index.js';
import { WhisperModel } from './model/whisper-model.js';
import { resolveLoadOptions, type LoadOptions, type OptionalInput } from './options.js';
import { Whisper } from './whisper.js';
import { optimizeDecoder, optimizeEncoder } from './runtime/optimize.js';
import { assertDeviceAvailable } from './runtime/session.js';
export { assertDeviceAvailable } from './runtime/session.js';

export {
  Whisper,
  type AudioInput,
  type CallOptions,
  type Transcription,
  type TranscribeProgress,
  type FileOutcome,
  type ManyCallOptions,
  type ManyProgress,
  type ManySummary,
  type ModelProfile,
  type ProfileOptions,
} from './whisper.js';
export { WhisperError, isWhisperError, type WhisperErrorCode } from './errors.js';
export {
  ACTIVATIONS,
  DEFAULTS,
  OPTION_SPECS,
  resolveTranscribeOptions,
  resolveLoadOptions,
  type TranscribeOptions,
  type TranscribeOptionsInput,
  type OptionalInput,
  type LoadOptions,
  type AllOptions,
  type OptionSpec,
  type Task,
  type Device,
  type Activations,
  type ZhScript,
} from './options.js';
export type {
  Segment,
  Word,
  TranscriptionInfo,
  TranscriptionResult,
  StreamEvent,
  StreamPartialEvent,
  StreamFinalEvent,
  StreamLanguageEvent,
} from './types.js';
export {
  createStream,
  LiveTranscriber,
  STREAM_DEFAULTS,
  STREAM_OPTION_SPECS,
  VAD_STREAM_DEFAULTS,
  resolveStreamOptions,
  type ResolvedStreamOptions,
  type StreamContext,
  type StreamOptions,
  type StreamSettings,
  type StreamStats,
} from './stream/index.js';
export { DTYPES, DTYPE_SUFFIX, type Dtype } from './dtypes.js';
// the types public signatures name (Whisper.model, Whisper.config, createStream's first argument)
export type { WhisperModel } from './model/whisper-model.js';
export type { WhisperConfig } from './model/config.js';
export { LANGUAGE_NAMES, toLanguageCode } from './languages.js';
export { decodeAudio, SAMPLE_RATE, type DecodeAudioOptions } from './audio/index.js';
export {
  pullModel,
  resolveModelId,
  resolveModelSource,
  listCachedModels,
  removeCachedModel,
  modelInfo,
  findCachedModel,
  defaultCacheDir,
  MODEL_NAMES,
  type CachedModel,
  type HubOptions,
  type ModelInfo,
  type PullOptions,
  type PullProgressEvent,
  type RemovedModel,
} from './hub/index.js';
export {
  loadVad,
  VadModel,
  getSpeechTimestamps,
  collectChunks,
  SpeechTimeMap,
  VAD_DEFAULTS,
  VAD_BATCHED_DEFAULTS,
  planChunks,
  spansToSeconds,
  type VadOptions,
  type SpeechSpan,
} from './vad/index.js';
export {
  OUTPUT_FORMATS,
  formatResult,
  formatTimestamp,
  isOutputFormat,
  toVerboseJson,
  toSrt,
  toVtt,
  subtitleCues,
  type OutputFormat,
  type SubtitleOptions,
  type VerboseJson,
} from './format/index.js';

export interface LoadModelOptions extends OptionalInput<Omit<LoadOptions, 'model'>> {
  /** Where rewritten decoder graphs are cached (default ~/.cache/whisper-ts/graphs). */
  graphCacheDir?: string | undefined;
  /** Rewrite the graphs (the quantized decoder's tied output projection, float activations …; default true). */
  optimizeDecoder?: boolean | undefined;
  /** Reports a download when the model is pulled from the Hub on first use. */
  onDownload?: ((event: PullProgressEvent) => void) | undefined;
  /** Hub endpoint (default $HF_ENDPOINT or https://huggingface.co) and cache folder (default the HF cache). */
  endpoint?: string | undefined;
  cacheDir?: string | undefined;
  /** Use only the local cache (default $HF_HUB_OFFLINE). */
  offline?: boolean | undefined;
  revision?: string | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * Loads a Whisper model from a folder in the onnx-community layout (or, through the hub client, a size name or a
 * Hub repo id). The result is immutable and can serve many calls at once.
 */
export async function loadModel(model: string, options: LoadModelOptions = {}): Promise<Whisper> {
  const { graphCacheDir, optimizeDecoder: optimize, onDownload, endpoint, cacheDir, offline, revision, signal, ...rest } =
    options;
  const o = resolveLoadOptions({ ...stripUndefined(rest), model });
  assertDeviceAvailable(o.device); // before a download
  const dir = await resolveModelSource(o.model, {
    ...(o.dtype ? { dtype: o.dtype } : {}),
    ...(o.encoderDtype ? { encoderDtype: o.encoderDtype } : {}),
    ...(o.decoderDtype ? { decoderDtype: o.decoderDtype } : {}),
    ...(onDownload ? { onProgress: onDownload } : {}),
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(cacheDir !== undefined ? { cacheDir } : {}),
    ...(offline !== undefined ? { offline } : {}),
    ...(revision !== undefined ? { revision } : {}),
    ...(signal ? { signal } : {}),
  });
  const m = await WhisperModel.load(dir, {
    ...(o.dtype ? { dtype: o.dtype } : {}),
    ...(o.encoderDtype ? { encoderDtype: o.encoderDtype } : {}),
    ...(o.decoderDtype ? { decoderDtype: o.decoderDtype } : {}),
    threads: o.threads,
    device: o.device,
    optimizeDecoder: optimize !== false,
    activations: o.activations,
    ...(graphCacheDir !== undefined ? { graphCacheDir } : {}),
    graphRewriter: async (path, { role, floatActivations, rowActivations, integerProjection, blockQuantizedSteps, cacheDir: dir }) => {
      const options = {
        floatActivations,
        rowActivations,
        integerProjection,
        blockQuantizedSteps,
        ...(dir !== undefined ? { cacheDir: dir } : {}),
      };
      return (role === 'encoder' ? await optimizeEncoder(path, options) : await optimizeDecoder(path, options)).path;
    },
  });
  return new Whisper(m, { batchConcurrentCalls: o.batchConcurrentCalls });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
