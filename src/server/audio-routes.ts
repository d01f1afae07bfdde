/**
 * POST /v1/audio/transcriptions and /v1/audio/translations: the OpenAI audio API. The upload is read (size-limited),
 * queued for a worker, and answered in the asked format — or, with stream=true, as server-sent events while the
 * worker decodes: per segment a `transcript.text.delta` (OpenAI's event, for clients that join deltas) and a
 * `transcript.text.segment` (id, start, end, text), then `transcript.text.done` (text, language, duration). A client that goes away cancels its
 * job, waiting or running.
 */
import { PassThrough } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LANGUAGE_NAMES, formatResult, toVerboseJson, type Segment, type Task, type TranscribeOptions, type TranscriptionResult } from '../index.js';
import { errorBody, toHttpError } from './errors.js';
import type { JobResult, WorkerPool } from './pool.js';
import { readAudioRequest, type AudioRequest, type ServedModel } from './request.js';

export interface AudioRouteContext {
  pool: WorkerPool;
  served: ServedModel;
  defaults: Partial<TranscribeOptions>;
  maxUploadBytes: number;
}

function toResult(r: JobResult): TranscriptionResult {
  return { info: r.info, segments: r.segments, text: r.segments.map((s) => s.text).join('') };
}

/** The body of a finished job in the format the request asked for. */
export function renderResult(r: JobResult, req: Pick<AudioRequest, 'responseFormat' | 'segments' | 'words'>): {
  contentType: string;
  body: string;
} {
  const result = toResult(r);
  const text = result.text.trim();
  switch (req.responseFormat) {
    case 'json':
      return { contentType: 'application/json; charset=utf-8', body: JSON.stringify({ text }) };
    case 'text':
      return { contentType: 'text/plain; charset=utf-8', body: text + '\n' };
    case 'srt':
      return { contentType: 'text/plain; charset=utf-8', body: formatResult(result, 'srt') };
    case 'vtt':
      return { contentType: 'text/vtt; charset=utf-8', body: formatResult(result, 'vtt') };
    case 'verbose_json': {
      const v = toVerboseJson(result);
      const out: Record<string, unknown> = { ...v, text };
      if (!req.segments) delete out.segments;
      if (!req.words) delete out.words;
      return { contentType: 'application/json; charset=utf-8', body: JSON.stringify(out) };
    }
  }
}

function segmentEvents(s: Segment): string {
  const id = String(s.id);
  return (
    sse({ type: 'transcript.text.delta', delta: s.text, segment_id: id }) +
    sse({ type: 'transcript.text.segment', id, start: s.start, end: s.end, text: s.text })
  );
}

function sse(event: object): string {
  return `data: ${JSON.stringify(event)}\n\n`;
}

async function handle(
  ctx: AudioRouteContext,
  task: Task,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const controller = new AbortController();
  // the response closes before it finished: the client went away (Node emits 'close' on the socket's end)
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('the client closed the connection'));
  });
  const req = await readAudioRequest(request, task, ctx.served, ctx.defaults);
  const { signal } = controller;

  if (!req.stream) {
    const result = await ctx.pool.run(req.audio, req.options, { signal });
    const { contentType, body } = renderResult(result, req);
    return reply.type(contentType).send(body);
  }

  // stream=true: the HTTP status waits for the audio to decode, so a bad upload still gets its 4xx
  let out: PassThrough | undefined;
  const write = (chunk: string): void => {
    if (out && !out.destroyed && !out.writableEnded) out.write(chunk);
  };
  try {
    const result = await ctx.pool.run(req.audio, req.options, {
      signal,
      onInfo: () => {
        out = new PassThrough();
        void reply
          .type('text/event-stream; charset=utf-8')
          .header('cache-control', 'no-cache')
          .header('x-accel-buffering', 'no')
          .send(out);
      },
      onSegment: (s) => write(segmentEvents(s)),
    });
    const text = toResult(result).text.trim();
    // OpenAI's done event has no language; ours names it as verbose_json does ("english")
    const language = LANGUAGE_NAMES[result.info.language] ?? result.info.language;
    write(sse({ type: 'transcript.text.done', text, language, duration: result.info.duration }));
  } catch (err) {
    if (!out) throw err;
    // after the 200: the error travels as an event (the openai client throws it as an APIError)
    write(sse({ type: 'error', ...errorBody(toHttpError(err, ctx)) }));
  } finally {
    out?.end();
  }
  return reply;
}

export function registerAudioRoutes(app: FastifyInstance, ctx: AudioRouteContext): void {
  app.post('/v1/audio/transcriptions', (request, reply) => handle(ctx, 'transcribe', request, reply));
  app.post('/v1/audio/translations', (request, reply) => handle(ctx, 'translate', request, reply));
}

