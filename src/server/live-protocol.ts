/**
 * Messages between the server's event loop and the live-transcription worker (live-worker.ts). Streams are numbered
 * by the server; one worker runs many.
 */
import type { StreamEvent, StreamStats } from '../index.js';
import type { SerializedError } from './protocol.js';

export type LiveToWorker =
  | { type: 'open'; id: number; /** Stream options (validated by the server first). */ options: Record<string, unknown> }
  | { type: 'audio'; id: number; /** 16 kHz mono samples (transferred). */ samples: Float32Array }
  /** The audio is over: flush the tail as final, then report `closed`. */
  | { type: 'end'; id: number }
  /** The client went away: stop now (the last hypothesis is flushed as final), then report `closed`. */
  | { type: 'abort'; id: number };

export type LiveFromWorker =
  | { type: 'ready' }
  | { type: 'fatal'; error: SerializedError }
  | { type: 'opened'; id: number }
  | { type: 'event'; id: number; event: StreamEvent }
  | { type: 'closed'; id: number; stats: StreamStats }
  | { type: 'error'; id: number; error: SerializedError };
