/**
 * whisper-ts serve: an OpenAI-compatible transcription server. Inference runs in worker threads (one model load per
 * worker), never on the event loop; the HTTP side reads uploads, queues jobs and streams results. Uses only the
 * public API of whisper-ts.
 */
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { assertDeviceAvailable, resolveModelSource, type LoadModelOptions, type PullProgressEvent, type TranscribeOptions } from '../index.js';
import { buildApp } from './app.js';
import { LiveHub } from './live.js';
import { ServerMetrics } from './metrics.js';
import { WorkerPool } from './pool.js';
import type { ServedModel } from './request.js';

export interface ServerOptions {
  host: string;
  /** 0 picks a free port (see `url`). */
  port: number;
  /** A model folder, a size name or a Hub repo id (pulled once, before the workers start). */
  model: string;
  /** Load options for every worker (dtype, device, threads per worker …). */
  load: Omit<LoadModelOptions, 'signal' | 'onDownload'>;
  /** Worker threads, each with its own model sessions. */
  concurrency: number;
  /**
   * Jobs one worker runs at once. Above 1, their greedy windows share the worker's decoder batches (the model is
   * loaded with `batchConcurrentCalls` unless `load` says otherwise): more throughput on few cores.
   */
  jobsPerWorker: number;
  /** Jobs that may wait for a worker; one more gets 429 with Retry-After. */
  maxQueue: number;
  /** Live streams (WebSocket /v1/realtime) at once, all in one worker thread of their own; 0: /v1/realtime answers 503. */
  maxStreams: number;
  /** Seconds a live stream may send nothing before it is closed (1008, E_IDLE_TIMEOUT). */
  liveIdleTimeoutS: number;
  /** Largest upload in MiB (413 above). */
  maxUploadMb: number;
  /** Longest decoded audio in seconds (413 above); null: no limit. */
  maxDurationS: number | null;
  /** Bearer key the /v1/ routes require; null: open. */
  apiKey: string | null;
  /** Server-wide transcription defaults a request's fields override. */
  defaults: Partial<TranscribeOptions>;
  /** fastify request logging (JSON lines on stdout). */
  logger: boolean;
  /** Download progress, when the model is pulled from the Hub first. */
  onDownload?: (event: PullProgressEvent) => void;
  /** Cancels the model pull and start-up. */
  signal?: AbortSignal;
}

export const SERVER_DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 8000,
  model: 'base',
  // two workers of half the cores each, four jobs each in shared decoder batches: on the 2-core development box
  // 8 concurrent 1-minute requests ran at 37 audio s/s this way, against 20-24 for one worker of 2 threads taking
  // one job at a time (bench/server.mjs); every worker holds its own copy of the model
  concurrency: Math.min(2, availableParallelism()),
  jobsPerWorker: 4,
  maxQueue: 8,
  maxStreams: 4,
  liveIdleTimeoutS: 30,
  maxUploadMb: 25,
  maxDurationS: 3 * 3600,
  apiKey: null,
  logger: false,
} satisfies Partial<ServerOptions>);

export interface WhisperServer {
  /** http://host:port of the listening server. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly pool: WorkerPool;
  readonly served: ServedModel;
  /** Stops accepting, cancels waiting and running jobs, stops the workers. */
  close(): Promise<void>;
}

/** Threads per worker when not given: the cores shared out among the workers (ONNX Runtime's own choice is all). */
export function threadsPerWorker(concurrency: number, cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, concurrency)));
}

/** Starts the workers (each loads the model), then listens. Rejects with the engine's error if the model fails. */
export async function startServer(options: Partial<ServerOptions> = {}): Promise<WhisperServer> {
  const o = { ...SERVER_DEFAULTS, load: {}, defaults: {}, ...options };
  const load = {
    ...o.load,
    threads: o.load.threads || threadsPerWorker(o.concurrency),
    batchConcurrentCalls: o.load.batchConcurrentCalls ?? o.jobsPerWorker > 1,
  };
  assertDeviceAvailable(load.device); // before a download
  const modelDir = await resolveModelSource(o.model, {
    ...(load.dtype ? { dtype: load.dtype } : {}),
    ...(load.encoderDtype ? { encoderDtype: load.encoderDtype } : {}),
    ...(load.decoderDtype ? { decoderDtype: load.decoderDtype } : {}),
    ...(o.onDownload ? { onProgress: o.onDownload } : {}),
    ...(load.endpoint !== undefined ? { endpoint: load.endpoint } : {}),
    ...(load.cacheDir !== undefined ? { cacheDir: load.cacheDir } : {}),
    ...(load.offline !== undefined ? { offline: load.offline } : {}),
    ...(load.revision !== undefined ? { revision: load.revision } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const metrics = new ServerMetrics();
  const maxUploadBytes = Math.round(o.maxUploadMb * 1024 * 1024);
  const pool = await WorkerPool.start({
    worker: { modelDir, load, maxDurationS: o.maxDurationS },
    concurrency: o.concurrency,
    jobsPerWorker: o.jobsPerWorker,
    maxQueue: o.maxQueue,
    onJobEnd: (end) => metrics.jobEnded(end),
  });
  metrics.attach(pool);
  // a folder is named by its last component (its path stays private); a Hub name by itself
  const isFolder = o.model === modelDir;
  const id = isFolder ? basename(modelDir.replace(/[/\\]+$/, '')) : o.model;
  const served: ServedModel = {
    id,
    aliases: new Set([id, 'whisper-1']),
    multilingual: pool.model.multilingual,
    wordTimestamps: pool.model.wordTimestamps,
  };
  // the live worker loads its model on the first stream (a server that serves no stream pays nothing)
  const live = o.maxStreams > 0 ? new LiveHub({ worker: { modelDir, load, maxDurationS: o.maxDurationS }, maxStreams: o.maxStreams }) : undefined;
  let app: FastifyInstance;
  try {
    app = await buildApp({
      ...(live ? { live } : {}),
      pool,
      metrics,
      served,
      defaults: o.defaults,
      maxUploadBytes,
      maxDurationS: o.maxDurationS,
      liveIdleTimeoutS: o.liveIdleTimeoutS,
      apiKey: o.apiKey,
      logger: o.logger,
    });
    await app.listen({ host: o.host, port: o.port });
  } catch (err) {
    await Promise.all([pool.close(), live?.close()]);
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}`,
    app,
    pool,
    served,
    close: () =>
      (closing ??= (async () => {
        await Promise.all([pool.close(), live?.close()]);
        await app.close();
      })()),
  };
}

export { WorkerPool } from './pool.js';
export { HttpError, type ErrorCode, type ServerErrorCode, type OpenAIErrorBody } from './errors.js';
export { RESPONSE_FORMATS, type ResponseFormat, type ServedModel } from './request.js';
