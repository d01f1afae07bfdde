/**
 * HTTP errors of the server and their one mapping onto the OpenAI error shape
 * `{ error: { message, type, param, code } }`. Engine failures keep the engine's `WhisperError` code; failures that
 * only the server knows (limits, queue, key) have codes of their own in the same E_ style.
 */
import { isWhisperError, type WhisperErrorCode } from '../index.js';

export type ServerErrorCode =
  | 'E_UPLOAD_TOO_LARGE' // the uploaded file exceeds --max-upload-mb
  | 'E_AUDIO_TOO_LONG' // the decoded audio exceeds --max-duration-s
  | 'E_QUEUE_FULL' // every worker is busy and the wait list is full
  | 'E_UNAVAILABLE' // the server is shutting down or has no worker
  | 'E_UNAUTHORIZED' // missing or wrong Bearer key
  | 'E_BAD_REQUEST' // a malformed request (not multipart, no file, a field the API does not know)
  | 'E_MODEL_NOT_SERVED' // the request names a model this server does not serve
  | 'E_NOT_FOUND' // no such route
  | 'E_UPGRADE_REQUIRED' // a plain HTTP request to the WebSocket route
  | 'E_INTERNAL'; // a worker thread died or something unexpected failed

export type ErrorCode = WhisperErrorCode | ServerErrorCode;

export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly param: string | null = null,
    /** Seconds for a Retry-After header (429 / 503). */
    readonly retryAfterS: number | null = null,
  ) {
    super(message);
  }
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/** Engine codes that are the client's fault; everything else the engine reports is a server error. */
const CLIENT_ENGINE_CODES: Partial<Record<WhisperErrorCode, number>> = {
  E_AUDIO_DECODE: 400,
  E_AUDIO_NOT_FOUND: 400,
  E_OPTIONS: 400,
  // nobody reads the answer to a request whose client went away; nginx's "client closed request"
  E_ABORTED: 499,
};

/** A fastify or @fastify/multipart error (they carry `statusCode` and an FST_ code). */
interface FrameworkError {
  statusCode?: number;
  code?: string;
  message: string;
}

/** Turns anything thrown while serving a request into an HttpError. */
export function toHttpError(err: unknown, limits: { maxUploadBytes: number }): HttpError {
  if (err instanceof HttpError) return err;
  if (isWhisperError(err)) {
    const param = err.code === 'E_AUDIO_DECODE' ? 'file' : null;
    return new HttpError(CLIENT_ENGINE_CODES[err.code] ?? 500, err.code, err.message, param);
  }
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as FrameworkError;
  if (e.code === 'FST_FILES_LIMIT' || e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FIELDS_LIMIT') {
    return new HttpError(400, 'E_BAD_REQUEST', `too many parts in the form (${e.message}); send one "file" and the fields`);
  }
  if (e.code === 'FST_REQ_FILE_TOO_LARGE' || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) {
    return new HttpError(
      413,
      'E_UPLOAD_TOO_LARGE',
      `the upload is larger than this server's limit of ${formatMib(limits.maxUploadBytes)} (--max-upload-mb)`,
      'file',
    );
  }
  const status = e.statusCode;
  if (status === 415) {
    return new HttpError(415, 'E_BAD_REQUEST', `expected a multipart/form-data body with a "file" field (${e.message})`);
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return new HttpError(status === 404 ? 404 : 400, status === 404 ? 'E_NOT_FOUND' : 'E_BAD_REQUEST', e.message);
  }
  return new HttpError(500, 'E_INTERNAL', e.message || 'internal error');
}

export function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export function errorBody(e: HttpError): OpenAIErrorBody {
  return { error: { message: e.message, type: errorType(e.status), param: e.param, code: e.code } };
}

/** Bytes in MiB, the unit of --max-upload-mb. */
export function formatMib(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return `${Number.isInteger(mib) ? mib : mib.toFixed(2)} MiB`;
}

/** Characters of a client's value that a message quotes back (a form field may hold 1 MiB). */
export const QUOTE_CHARS = 80;
/** Characters of an engine message about a client's value (the engine quotes values whole). */
export const MESSAGE_CHARS = 300;

/** A client's value (or a message that quotes one) cut to `max` characters, with … where it was cut. */
export function shorten(text: string, max = QUOTE_CHARS): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
