/**
 * Prometheus metrics of one server (prom-client, a registry of its own so that two servers in one process do not
 * share counters). Gauges of the queue are read from the pool when scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobEnd } from './pool.js';

export interface PoolGauges {
  readonly waiting: number;
  readonly running: number;
  readonly readyWorkers: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly audioSeconds: Counter;
  private readonly processingSeconds: Counter;
  private readonly jobs: Counter<'outcome'>;
  private readonly rtf: Histogram;
  private readonly requests: Counter<'route' | 'status'>;
  private pool: PoolGauges | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const pool = (): PoolGauges | undefined => this.pool;
    new Gauge({
      name: 'whisper_queue_depth',
      help: 'Transcription jobs waiting for a worker',
      registers,
      collect() {
        this.set(pool()?.waiting ?? 0);
      },
    });
    new Gauge({
      name: 'whisper_jobs_in_flight',
      help: 'Transcription jobs running on a worker',
      registers,
      collect() {
        this.set(pool()?.running ?? 0);
      },
    });
    new Gauge({
      name: 'whisper_workers_ready',
      help: 'Inference worker threads with a loaded model',
      registers,
      collect() {
        this.set(pool()?.readyWorkers ?? 0);
      },
    });
    this.audioSeconds = new Counter({
      name: 'whisper_audio_seconds_total',
      help: 'Seconds of audio transcribed by completed jobs',
      registers,
    });
    this.processingSeconds = new Counter({
      name: 'whisper_processing_seconds_total',
      help: 'Worker seconds spent on completed jobs (the ratio to whisper_audio_seconds_total is the real-time factor)',
      registers,
    });
    this.rtf = new Histogram({
      name: 'whisper_real_time_factor',
      help: 'Processing time divided by audio duration, per completed job (below 1: faster than real time)',
      buckets: [0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5],
      registers,
    });
    this.jobs = new Counter({
      name: 'whisper_jobs_total',
      help: 'Transcription jobs by outcome (completed, failed, cancelled: the client went away)',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['completed', 'failed', 'cancelled']) this.jobs.inc({ outcome }, 0);
    this.requests = new Counter({
      name: 'whisper_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['route', 'status'],
      registers,
    });
  }

  attach(pool: PoolGauges): void {
    this.pool = pool;
  }

  jobEnded(end: JobEnd): void {
    this.jobs.inc({ outcome: end.outcome });
    if (end.outcome !== 'completed') return;
    this.audioSeconds.inc(end.audioS);
    this.processingSeconds.inc(end.processingS);
    if (end.audioS > 0) this.rtf.observe(end.processingS / end.audioS);
  }

  request(route: string, status: number): void {
    this.requests.inc({ route, status: String(status) });
  }
}
