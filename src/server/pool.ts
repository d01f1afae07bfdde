/**
 * Inference worker threads behind a bounded FIFO queue. Each worker loads the model once and runs up to
 * `jobsPerWorker` jobs at once (their greedy windows share decoder batches when the model is loaded with
 * `batchConcurrentCalls`); p-queue (concurrency = workers × jobs per worker) keeps the order, the counts and removes a
 * waiting job whose client went away; the pool adds the bound (429 with Retry-After when the wait list is full), the
 * worker bookkeeping and the segment-by-segment results. A worker that dies fails its jobs with a 500 and is replaced.
 */
import { Worker } from 'node:worker_threads';
import PQueue from 'p-queue';
import { WhisperError, isWhisperError, type Segment, type TranscriptionInfo, type WhisperErrorCode } from '../index.js';
import { HttpError } from './errors.js';
import type { FromWorker, ModelDescription, SerializedError, ToWorker, WorkerConfig } from './protocol.js';

export interface PoolOptions {
  worker: WorkerConfig;
  /** Worker threads, each with its own model sessions. */
  concurrency: number;
  /** Jobs one worker runs at once (default 1). */
  jobsPerWorker?: number;
  /** Jobs that may wait for a worker; one more gets 429. */
  maxQueue: number;
  /** The worker script; default worker.js beside this module. */
  workerUrl?: URL;
  /** Called when a job ends, for metrics. */
  onJobEnd?: (end: JobEnd) => void;
}

export type JobOutcome = 'completed' | 'failed' | 'cancelled';

export interface JobEnd {
  outcome: JobOutcome;
  /** Seconds of audio (0 when the job ended before decoding it). */
  audioS: number;
  /** Seconds the worker spent on the job (decode + transcribe). */
  processingS: number;
}

export interface JobCallbacks {
  /** Cancels the job, waiting or running. */
  signal?: AbortSignal;
  /** The audio is decoded and the language known (before the first segment). */
  onInfo?: (info: TranscriptionInfo) => void;
  onSegment?: (segment: Segment) => void;
}

export interface JobResult {
  info: TranscriptionInfo;
  segments: Segment[];
  processingS: number;
}

interface ActiveJob {
  id: number;
  handle(message: FromWorker): void;
  fail(err: Error): void;
}

class Slot {
  worker!: Worker;
  ready!: Promise<ModelDescription>;
  /** The jobs running on this worker, by id. */
  readonly jobs = new Map<number, ActiveJob>();
  /** The worker has loaded its model and is alive. */
  loaded = false;

  constructor(
    private readonly url: URL,
    private readonly config: WorkerConfig,
    private readonly respawn: () => boolean,
  ) {
    this.spawn();
  }

  private spawn(): void {
    const worker = new Worker(this.url, { workerData: this.config });
    this.worker = worker;
    this.loaded = false;
    this.ready = new Promise<ModelDescription>((resolve, reject) => {
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'ready') {
          this.loaded = true;
          resolve(message.model);
        } else if (message.type === 'fatal') reject(toError(message.error));
        else if ('id' in message) this.jobs.get(message.id)?.handle(message);
      });
      worker.once('error', (err) => reject(err));
      worker.once('exit', (code) => {
        reject(new Error(`the worker thread exited (code ${code}) before its model was loaded`));
        const wasLoaded = this.loaded;
        this.loaded = false;
        const lost = [...this.jobs.values()];
        this.jobs.clear();
        for (const job of lost) {
          job.fail(new HttpError(500, 'E_INTERNAL', `the inference worker died (exit code ${code}); the job was lost`));
        }
        // only a worker that had loaded its model is replaced: a model that fails to load would fail again
        if (wasLoaded && this.respawn()) this.spawn();
      });
    });
    // a rejection nobody awaits yet must not crash the process; acquire() awaits it
    this.ready.catch(() => undefined);
  }

  post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  async terminate(): Promise<void> {
    await this.worker.terminate();
  }
}

function toError(e: SerializedError): Error {
  if (e.code === 'E_AUDIO_TOO_LONG') return new HttpError(413, 'E_AUDIO_TOO_LONG', e.message, 'file');
  return new WhisperError(e.code as WhisperErrorCode, e.message);
}

export class WorkerPool {
  private readonly slots: Slot[];
  private readonly jobsPerWorker: number;
  private readonly queue: PQueue;
  private nextId = 1;
  /** Moving average of a job's processing time, for Retry-After; null until a job has finished (10 s is assumed). */
  private avgJobS: number | null = null;

  private constructor(
    private readonly options: PoolOptions,
    readonly model: ModelDescription,
    slots: Slot[],
    private readonly closing: AbortController,
  ) {
    this.slots = slots;
    this.jobsPerWorker = Math.max(1, options.jobsPerWorker ?? 1);
    this.queue = new PQueue({ concurrency: slots.length * this.jobsPerWorker });
  }

  /** Starts the workers and waits until every one has loaded the model (a load failure rejects, with its code). */
  static async start(options: PoolOptions): Promise<WorkerPool> {
    const url = options.workerUrl ?? new URL('./worker.js', import.meta.url);
    const closing = new AbortController();
    const slots = Array.from(
      { length: Math.max(1, options.concurrency) },
      () => new Slot(url, options.worker, () => !closing.signal.aborted),
    );
    let model: ModelDescription;
    try {
      [model] = (await Promise.all(slots.map((s) => s.ready))) as [ModelDescription];
    } catch (err) {
      closing.abort();
      await Promise.all(slots.map((s) => s.terminate()));
      throw err;
    }
    return new WorkerPool(options, model, slots, closing);
  }

  get closed(): boolean {
    return this.closing.signal.aborted;
  }
  /** Jobs waiting for a worker. */
  get waiting(): number {
    return this.queue.size;
  }
  /** Jobs on a worker now. */
  get running(): number {
    return this.queue.pending;
  }
  get workers(): number {
    return this.slots.length;
  }
  get maxQueue(): number {
    return this.options.maxQueue;
  }
  /** Workers with a loaded model. */
  get readyWorkers(): number {
    return this.slots.filter((s) => s.loaded).length;
  }

  /** Jobs that run at once: workers × jobs per worker. */
  get capacity(): number {
    return this.slots.length * this.jobsPerWorker;
  }

  /** Seconds a rejected client should wait before retrying: the expected time until a place frees up. */
  retryAfterS(): number {
    return Math.max(1, Math.ceil(((this.avgJobS ?? 10) * (this.waiting + 1)) / this.capacity));
  }

  /**
   * Queues a job. Rejects at once with 429 (E_QUEUE_FULL) when the wait list is full and 503 when the pool is closing;
   * later with the engine's WhisperError (E_AUDIO_DECODE, E_ABORTED …) or a 413 for audio over the duration limit.
   */
  run(audio: Uint8Array, options: Record<string, unknown>, cb: JobCallbacks = {}): Promise<JobResult> {
    if (this.closed) {
      return Promise.reject(new HttpError(503, 'E_UNAVAILABLE', 'the server is shutting down', null, 5));
    }
    if (this.queue.pending >= this.capacity && this.queue.size >= this.options.maxQueue) {
      return Promise.reject(
        new HttpError(
          429,
          'E_QUEUE_FULL',
          `all ${this.capacity} job place(s) are busy and ${this.queue.size} request(s) are waiting (--max-queue ${this.options.maxQueue}); retry later`,
          null,
          this.retryAfterS(),
        ),
      );
    }
    // the job stops when its client goes away or the pool closes (listeners, not AbortSignal.any: the pool's
    // signal lives as long as the server and must not collect one dependent signal per job)
    const job = new AbortController();
    const stop = (): void => job.abort(new Error(this.closed ? 'the server is shutting down' : 'the client went away'));
    const sources = [this.closing.signal, ...(cb.signal ? [cb.signal] : [])];
    for (const s of sources) s.addEventListener('abort', stop, { once: true });
    if (sources.some((s) => s.aborted)) stop();
    const signal = job.signal;
    // the bytes' buffer is transferred to the worker: a copy when they are a view into a larger one (Node's Buffer
    // pool; Buffer#slice would be a view too)
    const bytes = audio.byteOffset === 0 && audio.byteLength === audio.buffer.byteLength ? audio : new Uint8Array(audio);
    // p-queue's signal removes a waiting job; it would also settle a running one at once (racing it), while the
    // worker is still winding down: so p-queue gets a signal that follows the request's only until the job starts
    const whileWaiting = new AbortController();
    const forward = (): void => whileWaiting.abort(signal.reason);
    signal.addEventListener('abort', forward, { once: true });
    const started = (): void => signal.removeEventListener('abort', forward);
    return this.queue
      .add(
        () => {
          started();
          return this.execute(bytes, options, cb, signal);
        },
        { signal: whileWaiting.signal },
      )
      .catch((err: unknown) => {
        started();
        // p-queue rejects a job removed from the wait list with the signal's reason (a plain Error)
        const removed = whileWaiting.signal.aborted && !isWhisperError(err) && !(err instanceof HttpError);
        if (removed) this.options.onJobEnd?.({ outcome: 'cancelled', audioS: 0, processingS: 0 });
        const aborted = removed || (isWhisperError(err) && err.code === 'E_ABORTED');
        if (aborted && this.closed && !cb.signal?.aborted) {
          throw new HttpError(503, 'E_UNAVAILABLE', 'the server shut down before the job finished', null, 5);
        }
        if (removed) throw new WhisperError('E_ABORTED', 'the request was cancelled while waiting for a worker', { cause: err });
        throw err;
      })
      .finally(() => {
        for (const s of sources) s.removeEventListener('abort', stop);
      });
  }

  private async execute(
    audio: Uint8Array,
    options: Record<string, unknown>,
    cb: JobCallbacks,
    signal: AbortSignal,
  ): Promise<JobResult> {
    // the worker with the fewest jobs (p-queue starts a job only when there is room somewhere)
    const slot = this.slots.reduce<Slot | undefined>(
      (best, s) => (s.jobs.size < this.jobsPerWorker && (!best || s.jobs.size < best.jobs.size) ? s : best),
      undefined,
    );
    if (!slot) throw new HttpError(500, 'E_INTERNAL', 'no worker with room for a started job (pool bookkeeping)');
    const id = this.nextId++;
    // the place is taken now, before any await, so that the next job started in this turn goes elsewhere
    const placeholder: ActiveJob = { id, handle: () => undefined, fail: () => undefined };
    slot.jobs.set(id, placeholder);
    const started = performance.now();
    let audioS = 0;
    try {
      await slot.ready.catch(() => {
        throw new HttpError(503, 'E_UNAVAILABLE', 'the inference worker could not be restarted', null, 30);
      });
      if (signal.aborted) throw new WhisperError('E_ABORTED', 'the request was cancelled before it started');
      const result = await new Promise<JobResult>((resolve, reject) => {
        let info: TranscriptionInfo | undefined;
        const segments: Segment[] = [];
        const onAbort = (): void => slot.post({ type: 'abort', id });
        const settle = (): void => {
          signal.removeEventListener('abort', onAbort);
          slot.jobs.delete(id);
        };
        slot.jobs.set(id, {
          id,
          handle: (m) => {
            try {
              if (m.type === 'info') {
                info = m.info;
                audioS = m.info.duration;
                cb.onInfo?.(m.info);
              } else if (m.type === 'segment') {
                segments.push(m.segment);
                cb.onSegment?.(m.segment);
              } else if (m.type === 'done') {
                settle();
                if (!info) throw new HttpError(500, 'E_INTERNAL', 'the worker finished without reporting the audio');
                resolve({ info, segments, processingS: (performance.now() - started) / 1000 });
              } else if (m.type === 'error') {
                settle();
                reject(toError(m.error));
              }
            } catch (err) {
              // a callback (the HTTP side) failed: stop the worker's job and report
              onAbort();
              settle();
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          },
          fail: (err) => {
            settle();
            reject(err);
          },
        });
        signal.addEventListener('abort', onAbort, { once: true });
        slot.post({ type: 'job', id, audio, options }, [audio.buffer as ArrayBuffer]);
      });
      const processingS = (performance.now() - started) / 1000;
      this.avgJobS = this.avgJobS === null ? processingS : 0.8 * this.avgJobS + 0.2 * processingS;
      this.options.onJobEnd?.({ outcome: 'completed', audioS, processingS });
      return result;
    } catch (err) {
      const cancelled = isWhisperError(err) && err.code === 'E_ABORTED';
      this.options.onJobEnd?.({
        outcome: cancelled ? 'cancelled' : 'failed',
        audioS,
        processingS: (performance.now() - started) / 1000,
      });
      throw err;
    } finally {
      slot.jobs.delete(id);
    }
  }

  /** Cancels waiting and running jobs and stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing.abort(new Error('the server is shutting down'));
    await this.queue.onIdle();
    await Promise.all(this.slots.map((s) => s.terminate()));
  }
}
