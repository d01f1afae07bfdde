/**
 * The fastify application: auth, errors in the OpenAI shape, the audio endpoints, models, health, metrics and the
 * web page. Listening and the worker pool's life are in index.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import fastifyMultipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { TranscribeOptions } from '../index.js';
import { registerAudioRoutes } from './audio-routes.js';
import { HttpError, errorBody, shorten, toHttpError } from './errors.js';
import { KEY_SUBPROTOCOL, LIVE_PATH, registerLiveRoutes, type LiveHub } from './live.js';
import type { ServerMetrics } from './metrics.js';
import type { WorkerPool } from './pool.js';
import { FIELD_LIMIT_BYTES, type ServedModel } from './request.js';

export interface AppConfig {
  pool: WorkerPool;
  metrics: ServerMetrics;
  served: ServedModel;
  defaults: Partial<TranscribeOptions>;
  maxUploadBytes: number;
  maxDurationS: number | null;
  /** Seconds a live stream may send nothing before it is closed. */
  liveIdleTimeoutS?: number;
  apiKey: string | null;
  /** fastify's logger (pino, JSON lines on stdout). */
  logger: boolean;
  /** The web page's folder; default public/ beside this module (the build copies it to dist/server/public). */
  publicDir?: string;
  /** Live transcription streams (WebSocket /v1/realtime); without it the route answers 503. */
  live?: LiveHub;
}

export const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The client asked to switch protocols (Connection: upgrade plus an Upgrade header). */
function asksUpgrade(request: FastifyRequest): boolean {
  return request.headers.upgrade !== undefined && /(^|,)\s*upgrade\s*(,|$)/i.test(request.headers.connection ?? '');
}

/**
 * The request came through the server's 'upgrade' event (@fastify/websocket listens to it): Node's HTTP machinery
 * has let go of its socket, so nothing closes the socket after a refusal unless the server does.
 */
function upgradeEvent(request: FastifyRequest): boolean {
  return (request.raw as IncomingMessage & { upgrade?: boolean }).upgrade === true;
}

export async function buildApp(config: AppConfig): Promise<FastifyInstance> {
  const { pool, metrics, served } = config;
  // on close, idle keep-alive sockets go at once; answers in progress (a 503 to a job cut short) are still sent
  const app = Fastify({ logger: config.logger, forceCloseConnections: 'idle' });
  const limits = { maxUploadBytes: config.maxUploadBytes };

  app.setErrorHandler((err, _request, reply) => {
    const e = toHttpError(err, limits);
    if (e.retryAfterS !== null) void reply.header('retry-after', String(e.retryAfterS));
    if (e.status === 401) void reply.header('www-authenticate', 'Bearer');
    return reply.status(e.status).send(errorBody(e));
  });
  app.setNotFoundHandler((request, reply) => {
    const e = new HttpError(404, 'E_NOT_FOUND', `no route ${request.method} ${shorten(request.url)}`);
    return reply.status(404).send(errorBody(e));
  });
  // a request whose client went away is counted once, as 499 (nginx's "client closed request"), with or without a reply
  const counted = new WeakSet<object>();
  app.addHook('onRequest', (request, reply, done) => {
    if (upgradeEvent(request) && request.routeOptions.url !== LIVE_PATH) {
      // @fastify/websocket would switch protocols on any GET route and then close: refuse in plain HTTP instead
      return done(new HttpError(404, 'E_NOT_FOUND', `no WebSocket route at ${shorten(request.url)}`));
    }
    if (request.headers.upgrade !== undefined) return done(); // a WebSocket: its socket is the stream's, not a reply
    reply.raw.on('close', () => {
      if (reply.raw.writableFinished || counted.has(request)) return;
      counted.add(request);
      metrics.request(request.routeOptions.url ?? 'unmatched', 499);
    });
    done();
  });
  // an upgrade request answered in HTTP (401, 404, 503 …) gets Connection: close, and its socket is closed after
  app.addHook('onSend', (request, reply, payload, done) => {
    if (asksUpgrade(request)) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    if (upgradeEvent(request)) request.raw.socket.destroySoon();
    if (counted.has(request)) return done();
    counted.add(request);
    metrics.request(request.routeOptions.url ?? 'unmatched', reply.statusCode);
    done();
  });

  // the API (everything under /v1/) needs the key when one is set; the page, health and metrics do not
  if (config.apiKey !== null) {
    const expected = sha256(config.apiKey);
    app.addHook('onRequest', (request, _reply, done) => {
      // the matched route, not the raw URL: no spelling of a path reaches a /v1/ route without the key
      if (!(request.routeOptions.url ?? request.url).startsWith('/v1/')) return done();
      const header = request.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(header);
      // a browser's WebSocket cannot send headers: the live route also takes the key as a subprotocol
      const key =
        m?.[1] ??
        String(request.headers['sec-websocket-protocol'] ?? '')
          .split(',')
          .map((p) => p.trim())
          .find((p) => p.startsWith(KEY_SUBPROTOCOL))
          ?.slice(KEY_SUBPROTOCOL.length);
      if (!key || !timingSafeEqual(sha256(key.trim()), expected)) {
        return done(new HttpError(401, 'E_UNAUTHORIZED', key ? 'the API key is not valid' : 'this server needs an API key: Authorization: Bearer <key>'));
      }
      done();
    });
  }

  await app.register(fastifyMultipart, {
    limits: { fileSize: config.maxUploadBytes, files: 1, fields: 64, fieldSize: FIELD_LIMIT_BYTES, parts: 128 },
  });

  registerAudioRoutes(app, { pool, served, defaults: config.defaults, maxUploadBytes: config.maxUploadBytes });
  if (config.live) {
    // audio frames are small (100 ms of 16 kHz PCM is 3.2 kB); a frame over 1 MiB is refused by the WebSocket layer
    await app.register(fastifyWebsocket, { options: { maxPayload: 1024 * 1024 } });
    registerLiveRoutes(app, {
      hub: config.live,
      served,
      maxDurationS: config.maxDurationS,
      registry: metrics.registry,
      ...(config.liveIdleTimeoutS !== undefined ? { idleTimeoutS: config.liveIdleTimeoutS } : {}),
    });
  } else {
    app.get(LIVE_PATH, async () => {
      throw new HttpError(503, 'E_UNAVAILABLE', 'live transcription is turned off on this server (--max-streams 0)');
    });
  }

  const modelObject = (id: string): object => ({ id, object: 'model', created: 0, owned_by: 'whisper-ts' });
  const modelIds = [served.id, ...[...served.aliases].filter((a) => a !== served.id)];
  app.get('/v1/models', async () => ({ object: 'list', data: modelIds.map(modelObject) }));
  app.get<{ Params: { id: string } }>('/v1/models/:id', async (request) => {
    if (!served.aliases.has(request.params.id)) {
      throw new HttpError(404, 'E_MODEL_NOT_SERVED', `this server does not serve "${request.params.id}"`, 'model');
    }
    return modelObject(request.params.id);
  });

  app.get('/health', async (_request, reply) => {
    const ok = !pool.closed && pool.readyWorkers > 0;
    return reply.status(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unavailable',
      model: served.id,
      multilingual: served.multilingual,
      word_timestamps: served.wordTimestamps,
      api_key_required: config.apiKey !== null,
      workers: { ready: pool.readyWorkers, total: pool.workers },
      queue: { waiting: pool.waiting, running: pool.running, max_waiting: pool.maxQueue },
      limits: { max_upload_bytes: config.maxUploadBytes, max_duration_s: config.maxDurationS },
    });
  });

  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  const root = config.publicDir ?? PUBLIC_DIR;
  if (!existsSync(root)) {
    throw new Error(`the web page's folder ${root} is missing (npm run build copies src/server/public there)`);
  }
  await app.register(fastifyStatic, { root, prefix: '/', index: 'index.html', cacheControl: false });

  return app;
}
