/**
 * Live transcription over a WebSocket: `GET /v1/realtime` (upgrade). Streams run in one worker thread of their own
 * (live-worker.ts, started on the first stream), never on the event loop and never in the batch pool's workers, so a
 * long stream does not hold a batch job's place; `maxStreams` bounds how many run at once.
 *
 * Protocol (JSON text frames, audio in binary frames):
 *   client → server  {"type":"start","options":{…},"format":"pcm16"|"f32","sample_rate":16000,"model":"…"}
 *                    the options are the library's stream options (language, task, minChunkSeconds, agreement, …);
 *                    format: little-endian 16-bit PCM (default) or 32-bit float; mono, 16 kHz only
 *                    binary frames: audio, any size (up to EARLY_AUDIO_S of it may come before "ready")
 *                    {"type":"end"}: no more audio; the tail is committed, then "done"; what comes after is ignored
 *   server → client  {"type":"ready","model","sample_rate","format"} once the stream runs
 *                    {"type":"language"|"partial"|"final",…}: the StreamEvent objects of the library, as they happen
 *                    {"type":"done","stats":{…}} after "end", then the socket closes (1000)
 *                    {"type":"error","code","message"}, then the socket closes (1008 the client's fault, 1009 too
 *                    much audio before "ready", 1013 busy, 1011 the server's)
 * Closing the socket early stops the stream; a socket that sends nothing for LIVE_IDLE_TIMEOUT_S (30 s) is closed. With an API key, send `Authorization: Bearer <key>` or, from a
 * browser, offer the subprotocol `openai-insecure-api-key.<key>` (as OpenAI's Realtime API takes it).
 */
import { Worker } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RawData, WebSocket } from 'ws';
import { isWhisperError, resolveStreamOptions, type StreamEvent, type StreamStats } from '../index.js';
import { HttpError, MESSAGE_CHARS, shorten } from './errors.js';
import type { LiveFromWorker, LiveToWorker } from './live-protocol.js';
import type { SerializedError, WorkerConfig } from './protocol.js';
import { languageProblem, type ServedModel } from './request.js';

const SAMPLE_RATE = 16_000;
export const LIVE_PATH = '/v1/realtime';
/**
 * Seconds of audio a stream holds while it starts (the first stream waits for the live worker to load the model);
 * more is refused with 1009, the close code of an oversized frame.
 */
export const EARLY_AUDIO_S = 60;
/**
 * A stream whose client sends nothing (no start, audio or end) for this long is closed (1008, E_IDLE_TIMEOUT), so a
 * client that went silent without closing cannot hold one of the `maxStreams` places. A microphone sends audio
 * several times a second.
 */
export const LIVE_IDLE_TIMEOUT_S = 30;
/** The subprotocol prefix that carries the API key from a browser (which cannot set headers on a WebSocket). */
export const KEY_SUBPROTOCOL = 'openai-insecure-api-key.';

export interface LiveHubOptions {
  worker: WorkerConfig;
  /** Streams at once; one more is refused (1013). 0: every stream is refused (1013, E_UNAVAILABLE). */
  maxStreams: number;
  /** The worker script; default live-worker.js beside this module. */
  workerUrl?: URL;
}

export interface LiveCallbacks {
  onEvent(event: StreamEvent): void;
  onClosed(stats: StreamStats): void;
  onError(error: SerializedError): void;
}

export interface LiveHandle {
  push(samples: Float32Array): void;
  /** The audio is over: the worker commits the tail and reports onClosed. */
  end(): void;
  /** The client went away. */
  abort(): void;
}

interface Pending {
  callbacks: LiveCallbacks;
  opened?: (ok: SerializedError | null) => void;
}

/** The live worker and its streams. */
export class LiveHub {
  #worker: Worker | undefined;
  #ready: Promise<void> | undefined;
  readonly #streams = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(readonly options: LiveHubOptions) {}

  /** Streams running now. */
  get active(): number {
    return this.#streams.size;
  }

  #start(): Promise<void> {
    if (this.#ready) return this.#ready;
    const worker = new Worker(this.options.workerUrl ?? new URL('./live-worker.js', import.meta.url), {
      workerData: this.options.worker,
    });
    this.#worker = worker;
    this.#ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: LiveFromWorker) => {
        if (m.type === 'ready') return resolve();
        if (m.type === 'fatal') return reject(new HttpError(503, 'E_UNAVAILABLE', `the live worker failed: ${m.error.message}`));
        const s = this.#streams.get(m.id);
        if (s === undefined) return;
        if (m.type === 'opened') s.opened?.(null);
        else if (m.type === 'event') s.callbacks.onEvent(m.event);
        else if (m.type === 'closed') {
          this.#streams.delete(m.id);
          s.callbacks.onClosed(m.stats);
        } else {
          this.#streams.delete(m.id);
          if (s.opened) s.opened(m.error);
          else s.callbacks.onError(m.error);
        }
      });
      worker.once('error', reject);
      worker.once('exit', (code) => {
        reject(new HttpError(503, 'E_UNAVAILABLE', `the live worker exited (code ${code})`));
        this.#worker = undefined;
        this.#ready = undefined;
        const lost = [...this.#streams.values()];
        this.#streams.clear();
        const error = { code: 'E_INTERNAL', message: `the live worker died (exit code ${code}); the stream was lost` };
        for (const s of lost) (s.opened ?? s.callbacks.onError)(error);
      });
    });
    this.#ready.catch(() => undefined);
    return this.#ready;
  }

  /**
   * Opens a stream with validated options. Rejects with 503 E_QUEUE_FULL when `maxStreams` run already, with the
   * engine's error (E_OPTIONS …) when the worker refuses the options.
   */
  async open(options: Record<string, unknown>, callbacks: LiveCallbacks): Promise<LiveHandle> {
    if (this.#closed || this.options.maxStreams === 0) {
      throw new HttpError(503, 'E_UNAVAILABLE', 'live transcription is not available on this server');
    }
    if (this.#streams.size >= this.options.maxStreams) {
      throw new HttpError(503, 'E_QUEUE_FULL', `${this.options.maxStreams} live stream(s) are running; try again later`, null, 5);
    }
    const id = this.#nextId++;
    const pending: Pending = { callbacks };
    this.#streams.set(id, pending);
    try {
      await this.#start();
    } catch (err) {
      this.#streams.delete(id);
      throw err;
    }
    const worker = this.#worker as Worker;
    const post = (m: LiveToWorker, transfer: ArrayBuffer[] = []): void => {
      if (this.#worker === worker) worker.postMessage(m, transfer);
    };
    const refused = await new Promise<SerializedError | null>((resolve) => {
      pending.opened = resolve;
      post({ type: 'open', id, options });
    });
    delete pending.opened;
    if (refused !== null) throw toError(refused);
    return {
      push: (samples) => post({ type: 'audio', id, samples }, [samples.buffer as ArrayBuffer]),
      end: () => post({ type: 'end', id }),
      abort: () => post({ type: 'abort', id }),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    this.#ready = undefined;
    if (worker) await worker.terminate();
  }
}

function toError(e: SerializedError): Error {
  const status = e.code === 'E_OPTIONS' ? 400 : 500;
  return new HttpError(status, e.code as HttpError['code'], e.message);
}

interface StartMessage {
  type: 'start';
  options?: Record<string, unknown>;
  format?: 'pcm16' | 'f32';
  sample_rate?: number;
  model?: string;
}

/** A client's value quoted in a message: its JSON, shortened. */
function quote(value: unknown): string {
  return shorten(JSON.stringify(value) ?? String(value));
}

/** A client error: sent as an error message, then the socket closes with 1008. */
class ClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function parseStart(text: string, served: ServedModel): Required<Pick<StartMessage, 'format'>> & { options: Record<string, unknown> } {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw new ClientError('E_BAD_REQUEST', 'the first message must be JSON: {"type":"start", …}');
  }
  if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'start') {
    throw new ClientError('E_BAD_REQUEST', 'the first message must be {"type":"start", "options": {…}}');
  }
  const start = m as StartMessage;
  const known = new Set(['type', 'options', 'format', 'sample_rate', 'model']);
  for (const key of Object.keys(start)) {
    if (!known.has(key)) throw new ClientError('E_BAD_REQUEST', `unknown field ${quote(key)} in the start message`);
  }
  const format = start.format ?? 'pcm16';
  if (format !== 'pcm16' && format !== 'f32') {
    throw new ClientError('E_BAD_REQUEST', `format must be "pcm16" or "f32", not ${quote(start.format)}`);
  }
  if ((start.sample_rate ?? SAMPLE_RATE) !== SAMPLE_RATE) {
    throw new ClientError('E_BAD_REQUEST', `sample_rate must be the number 16000 (mono), not ${quote(start.sample_rate)}`);
  }
  if (start.model !== undefined && !served.aliases.has(start.model)) {
    throw new ClientError('E_MODEL_NOT_SERVED', `this server does not serve ${quote(start.model)}`);
  }
  const given: unknown = start.options ?? {};
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new ClientError('E_OPTIONS', `options must be an object, such as {"language": "en"}, not ${quote(given)}`);
  }
  const options: Record<string, unknown> = { ...given };
  // an empty language is "not given", as the HTTP endpoints take it (a form's empty field)
  if (typeof options.language === 'string' && options.language.trim() === '') delete options.language;
  try {
    const resolved = resolveStreamOptions(options);
    // checked here against what the server serves (the worker's own error would name the model's folder)
    const problem = languageProblem(resolved.transcribe.language, served);
    if (problem !== null) throw new ClientError('E_OPTIONS', problem);
    if (resolved.transcribe.wordTimestamps && !served.wordTimestamps) {
      throw new ClientError(
        'E_OPTIONS',
        `wordTimestamps needs a model whose decoder outputs cross-attentions (a "_timestamped" export); the served model ${served.id} has none`,
      );
    }
    if (!served.multilingual && resolved.transcribe.task === 'translate') {
      throw new ClientError('E_OPTIONS', `the served model ${served.id} is English-only and cannot translate`);
    }
  } catch (err) {
    if (err instanceof ClientError) throw err;
    if (isWhisperError(err)) throw new ClientError(err.code, shorten(err.message, MESSAGE_CHARS));
    throw err;
  }
  return { format, options };
}

/** Samples of binary frames; a frame may end inside a sample, whose bytes wait for the next frame. */
function createDecoder(format: 'pcm16' | 'f32'): (data: Buffer) => Float32Array {
  const width = format === 'pcm16' ? 2 : 4;
  let rest = Buffer.alloc(0);
  return (data) => {
    const bytes = rest.length > 0 ? Buffer.concat([rest, data]) : data;
    const usable = bytes.length - (bytes.length % width);
    rest = Buffer.from(bytes.subarray(usable));
    const out = new Float32Array(usable / width);
    if (format === 'pcm16') for (let i = 0; i < out.length; i++) out[i] = bytes.readInt16LE(i * 2) / 32768;
    else for (let i = 0; i < out.length; i++) out[i] = bytes.readFloatLE(i * 4);
    return out;
  };
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export interface LiveRouteConfig {
  hub: LiveHub;
  served: ServedModel;
  /** Longest stream in seconds of audio; null: no limit. */
  maxDurationS: number | null;
  registry: Registry;
  /** Seconds without a message from the client after which its stream is closed; default LIVE_IDLE_TIMEOUT_S. */
  idleTimeoutS?: number;
}

export function registerLiveRoutes(app: FastifyInstance, config: LiveRouteConfig): void {
  const { hub, served } = config;
  const registers = [config.registry];
  new Gauge({
    name: 'whisper_live_streams',
    help: 'Live transcription streams running now',
    registers,
    collect() {
      this.set(hub.active);
    },
  });
  const liveSeconds = new Counter({
    name: 'whisper_live_audio_seconds_total',
    help: 'Seconds of audio received by live streams',
    registers,
  });
  const maxSamples = config.maxDurationS === null ? Infinity : config.maxDurationS * SAMPLE_RATE;

  app.route({
    method: 'GET',
    url: LIVE_PATH,
    // a plain GET (no upgrade) gets an answer that says what the route is, in the API's error shape
    handler: async (_request, reply) => {
      void reply.header('upgrade', 'websocket');
      throw new HttpError(426, 'E_UPGRADE_REQUIRED', 'GET /v1/realtime is a WebSocket: connect with an Upgrade: websocket request (ws://…/v1/realtime)');
    },
    wsHandler: (socket: WebSocket) => {
      let state: 'waiting' | 'starting' | 'running' | 'ending' | 'closed' = 'waiting';
      let handle: LiveHandle | undefined;
      let decode: ((data: Buffer) => Float32Array) | undefined;
      // audio that comes while the stream starts, fed to it once it runs
      const early: Buffer[] = [];
      let earlyBytes = 0;
      let earlyLimit = 0;
      let samples = 0;
      let endRequested = false;

      const send = (message: object): void => {
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
      };
      let idle: NodeJS.Timeout | undefined;
      const fail = (code: string, message: string, closeCode: number): void => {
        clearTimeout(idle);
        if (state === 'closed') return;
        if (handle && (state === 'running' || state === 'ending')) handle.abort();
        state = 'closed';
        send({ type: 'error', code, message });
        socket.close(closeCode, code);
      };
      const push = (data: Buffer): void => {
        if (!handle || !decode || state !== 'running') return;
        let chunk = decode(data);
        if (samples + chunk.length > maxSamples) {
          chunk = chunk.subarray(0, Math.max(0, maxSamples - samples));
          send({ type: 'error', code: 'E_AUDIO_TOO_LONG', message: `a stream may last ${config.maxDurationS} s (--max-duration-s); the rest is ignored` });
          if (chunk.length > 0) handle.push(Float32Array.from(chunk));
          samples = maxSamples;
          state = 'ending';
          handle.end();
          return;
        }
        samples += chunk.length;
        liveSeconds.inc(chunk.length / SAMPLE_RATE);
        if (chunk.length > 0) handle.push(chunk);
      };

      const idleAfter = config.idleTimeoutS ?? LIVE_IDLE_TIMEOUT_S;
      const watch = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => {
          if (state === 'waiting' || state === 'running') {
            fail('E_IDLE_TIMEOUT', `nothing received for ${idleAfter} s; the stream is closed`, 1008);
          }
        }, idleAfter * 1000);
        idle.unref();
      };
      watch();
      socket.on('message', (data: RawData, isBinary: boolean) => {
        // after "end" nothing counts, whether the stream runs already or still starts
        if (state === 'closed' || state === 'ending' || endRequested) return;
        watch();
        if (state === 'waiting') {
          if (isBinary) return fail('E_BAD_REQUEST', 'send {"type":"start", …} before audio', 1008);
          let start;
          try {
            start = parseStart(toBuffer(data).toString('utf8'), served);
          } catch (err) {
            if (err instanceof ClientError) return fail(err.code, err.message, 1008);
            throw err;
          }
          state = 'starting';
          decode = createDecoder(start.format);
          earlyLimit = EARLY_AUDIO_S * SAMPLE_RATE * (start.format === 'pcm16' ? 2 : 4);
          hub
            .open(start.options, {
              onEvent: (event) => send(event),
              onClosed: (stats) => {
                if (state === 'closed') return;
                state = 'closed';
                send({ type: 'done', stats });
                socket.close(1000, 'done');
              },
              onError: (e) => fail(e.code, e.message, e.code === 'E_OPTIONS' ? 1008 : 1011),
            })
            .then(
              (h) => {
                if (state === 'closed') return h.abort(); // the client left while the stream was starting
                handle = h;
                state = 'running';
                send({ type: 'ready', model: served.id, sample_rate: SAMPLE_RATE, format: start.format });
                for (const b of early.splice(0)) push(b);
                if (endRequested && state === 'running') {
                  state = 'ending';
                  h.end();
                }
              },
              (err: unknown) => {
                const e = err instanceof HttpError ? err : new HttpError(500, 'E_INTERNAL', String(err));
                fail(e.code, e.message, e.code === 'E_QUEUE_FULL' || e.code === 'E_UNAVAILABLE' ? 1013 : e.status < 500 ? 1008 : 1011);
              },
            );
          return;
        }
        if (isBinary) {
          if (state !== 'starting') return push(toBuffer(data));
          const b = Buffer.from(toBuffer(data));
          earlyBytes += b.length;
          if (earlyBytes > earlyLimit) {
            early.length = 0;
            return fail('E_AUDIO_TOO_LONG', `more than ${EARLY_AUDIO_S} s of audio came before the stream was ready; wait for {"type":"ready"}`, 1009);
          }
          early.push(b);
          return;
        }
        let m: unknown;
        try {
          m = JSON.parse(toBuffer(data).toString('utf8'));
        } catch {
          return fail('E_BAD_REQUEST', 'text frames must be JSON', 1008);
        }
        if (typeof m !== 'object' || m === null || Array.isArray(m)) {
          return fail('E_BAD_REQUEST', `text frames must be JSON objects, not ${quote(m)}`, 1008);
        }
        const type = (m as { type?: unknown }).type;
        if (type !== 'end') return fail('E_BAD_REQUEST', `unknown message type ${quote(type)}`, 1008);
        if (state === 'starting') endRequested = true;
        else {
          state = 'ending';
          handle?.end();
        }
      });
      socket.on('close', () => {
        clearTimeout(idle);
        if (state === 'running' || state === 'ending') handle?.abort();
        state = 'closed';
      });
    },
  });
}
