/**
 * The messages between the server's event loop and its inference worker threads. A worker may run several jobs at
 * once (the pool's jobsPerWorker); results flow back segment by segment, tagged with the job's id.
 */
import type { LoadModelOptions, Segment, TranscriptionInfo } from '../index.js';

/** `workerData` of an inference worker. */
export interface WorkerConfig {
  /** A model folder (the server resolves names through the hub before starting workers). */
  modelDir: string;
  /** loadModel options other than the model (dtype, threads, device …); no callbacks, they cannot cross threads. */
  load: Omit<LoadModelOptions, 'signal' | 'onDownload'>;
  /** Longest decoded audio a job may have, seconds; null: no limit. */
  maxDurationS: number | null;
}

/** What a worker reports once its model is loaded. */
export interface ModelDescription {
  multilingual: boolean;
  wordTimestamps: boolean;
  dtypes: { encoder: string; decoder: string };
}

export interface SerializedError {
  /** A WhisperError code, or E_AUDIO_TOO_LONG (the server's duration limit, checked in the worker after decoding). */
  code: string;
  message: string;
}

export type ToWorker =
  | {
      type: 'job';
      id: number;
      /** The uploaded file's bytes (transferred, not copied). */
      audio: Uint8Array;
      /** Resolved TranscribeOptions (plain object). */
      options: Record<string, unknown>;
    }
  | { type: 'abort'; id: number };

export type FromWorker =
  | { type: 'ready'; model: ModelDescription }
  | { type: 'fatal'; error: SerializedError }
  | { type: 'info'; id: number; info: TranscriptionInfo }
  | { type: 'segment'; id: number; segment: Segment }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; error: SerializedError };
