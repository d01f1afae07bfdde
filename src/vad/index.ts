/**
 * Voice-activity detection: Silero VAD (v5, ONNX) and the speech-span tools of faster-whisper's vad.py.
 *
 *   const vad = await loadVad();
 *   const spans = await vad.speechTimestamps(samples, { minSilenceDurationMs: 500 }); // [{ start, end }] in samples
 *   const map = new SpeechTimeMap(spans); // times in the speech-only audio → original times
 */
import type { VadOptions } from './options.js';
import { loadVad, type VadModel } from './silero.js';
import type { SpeechSpan } from './timestamps.js';

export {
  VAD_BATCHED_DEFAULTS,
  VAD_DEFAULTS,
  VAD_SAMPLE_RATE,
  VAD_WINDOW_SAMPLES,
  resolveVadOptions,
  type ResolvedVadOptions,
  type VadOptions,
} from './options.js';
export {
  VadModel,
  loadVad,
  sileroModelPath,
  type LoadVadOptions,
  type SileroVersion,
  type VadEngine,
  type VadState,
} from './silero.js';
export { SpeechGate, VadStream, type SpeechChange } from './stream.js';
export {
  speechSpansFromProbabilities,
  spanToSeconds,
  spansToSeconds,
  type SpeechSpan,
  type SpeechSpanSeconds,
} from './timestamps.js';
export {
  SpeechTimeMap,
  chunkSamples,
  collectChunks,
  planChunks,
  speechSamples,
  type ChunkPlan,
  type SpeechChunk,
} from './chunks.js';

let shared: Promise<VadModel> | undefined;

/**
 * Speech spans of `samples` (16 kHz mono), in samples, with the semantics of faster-whisper's
 * `get_speech_timestamps` (faster_whisper/vad.py). Uses one Silero v5 model loaded on first use and kept for the
 * life of the process (as faster-whisper's `get_vad_model` cache); load your own with `loadVad` to control threads
 * and disposal.
 */
export async function getSpeechTimestamps(
  samples: Float32Array,
  options: Partial<VadOptions> = {},
  signal?: AbortSignal,
): Promise<SpeechSpan[]> {
  if (shared === undefined) {
    shared = loadVad();
    shared.catch(() => {
      shared = undefined; // let a later call try again
    });
  }
  const vad = await shared;
  return vad.speechTimestamps(samples, options, signal);
}
