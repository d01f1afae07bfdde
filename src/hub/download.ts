/**
 * One blob: download to `{blob}.incomplete`, resume with a Range request after a dropped or stalled connection,
 * check size and (LFS files) sha256, then rename into place — a complete blob only ever appears whole.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WhisperError } from '../errors.js';
import { HubStatusError, isRetryable, retriesFor, toWhisperError, type HubClient, type RequestContext } from './http.js';

export interface BlobDownload {
  client: HubClient;
  ctx: RequestContext & { file: string };
  /** Where the bytes are (the CDN URL from the HEAD's redirect, or the resolve URL). */
  url: string;
  blob: string;
  expectedSize: number | undefined;
  /** The sha256 the bytes must have (an LFS file's etag). */
  sha256: string | undefined;
  /** Each try: the byte the file continues from. */
  onStart?: (resumeFrom: number) => void;
  /** Each chunk: bytes just received and the file's size so far. */
  onBytes?: (received: number, fileBytes: number) => void;
  onRetry?: (info: { attempt: number; retries: number; delayMs: number; reason: string }) => void;
}

async function sizeOrZero(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** The server's answer does not fit what was asked: start the file over. */
class RestartError extends Error {
  override readonly name = 'RestartError';
}

/** The body ended before the expected size: treated as a dropped connection. */
function prematureEnd(got: number, expected: number): Error {
  return Object.assign(new Error(`the body ended after ${got} of ${expected} bytes`), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

async function fetchInto(d: BlobDownload, incomplete: string, have: number): Promise<void> {
  const res = await d.client.openDownload(d.url, have);
  let append = false;
  if (have > 0 && res.status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
    if (range === null || Number(range[1]) !== have) {
      await res.body.dump().catch(() => undefined);
      throw new RestartError(`the server answered the range request from byte ${have} with ${res.headers['content-range'] ?? 'no Content-Range'}`);
    }
    append = true;
  } else if (res.status !== 200) {
    await res.body.dump().catch(() => undefined);
    throw new HubStatusError(res.status, res.headers, res.url, res.tokenSent);
  }
  // The file's whole size as this answer gives it (Content-Length of a 200, the total of a 206's Content-Range):
  // a server whose file is not the size the Hub announced will never send the rest, and resuming would not help.
  const total =
    res.status === 200
      ? Number(res.headers['content-length'] ?? Number.NaN)
      : Number(/\/(\d+)$/.exec(res.headers['content-range'] ?? '')?.[1] ?? Number.NaN);
  if (d.expectedSize !== undefined && Number.isFinite(total) && total !== d.expectedSize) {
    await res.body.dump().catch(() => undefined);
    await rm(incomplete, { force: true });
    throw new WhisperError(
      'E_HUB_INTEGRITY',
      `${d.ctx.file} of ${d.ctx.repo}: the server sends a file of ${total} bytes, but announced ${d.expectedSize}; ` +
        'the mirror or the Hub has an inconsistent copy, or a proxy or captive portal answered instead; nothing was kept',
    );
  }
  // A 200 to a range request means the server ignored the range: the file starts over.
  let fileBytes = append ? have : 0;
  d.onStart?.(fileBytes);
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      fileBytes += chunk.length;
      d.onBytes?.(chunk.length, fileBytes);
      callback(null, chunk);
    },
  });
  await pipeline(res.body, counter, createWriteStream(incomplete, { flags: append ? 'a' : 'w' }));
}

/** Downloads and verifies one blob; returns when `d.blob` holds the complete, checked bytes. */
export async function downloadBlob(d: BlobDownload): Promise<void> {
  const { client } = d;
  const incomplete = `${d.blob}.incomplete`;
  const retries = client.config.retry.retries;
  await mkdir(dirname(d.blob), { recursive: true });
  for (let attempt = 0; ; attempt++) {
    try {
      let have = await sizeOrZero(incomplete);
      if (d.expectedSize !== undefined && have > d.expectedSize) {
        await rm(incomplete, { force: true });
        have = 0;
      }
      if (d.expectedSize === undefined || have < d.expectedSize) await fetchInto(d, incomplete, have);
      await verify(d, incomplete);
      await rename(incomplete, d.blob);
      return;
    } catch (error) {
      if (client.signal?.aborted) throw new WhisperError('E_ABORTED', 'the download was aborted', { cause: client.signal.reason });
      if (error instanceof WhisperError) throw error;
      const restart = error instanceof RestartError || (error instanceof HubStatusError && error.status === 416);
      if (restart) await rm(incomplete, { force: true });
      const limit = retriesFor(error, retries);
      if ((!restart && !isRetryable(error)) || attempt >= limit) throw toWhisperError(error, d.ctx, client.config, client.signal);
      const delayMs = restart ? 0 : client.backoffMs(attempt + 1);
      const reason = error instanceof RestartError ? error.message : toWhisperError(error, d.ctx, client.config).message;
      d.onRetry?.({ attempt: attempt + 1, retries, delayMs, reason });
      await client.wait(delayMs);
    }
  }
}

async function verify(d: BlobDownload, incomplete: string): Promise<void> {
  const size = await sizeOrZero(incomplete);
  if (d.expectedSize !== undefined && size < d.expectedSize) throw prematureEnd(size, d.expectedSize);
  if (d.expectedSize !== undefined && size > d.expectedSize) {
    await rm(incomplete, { force: true });
    throw new WhisperError(
      'E_HUB_INTEGRITY',
      `${d.ctx.file} of ${d.ctx.repo}: received ${size} bytes, expected ${d.expectedSize}; the partial file was deleted, pull again`,
    );
  }
  if (d.sha256 !== undefined) {
    const actual = await sha256File(incomplete);
    if (actual !== d.sha256) {
      await rm(incomplete, { force: true });
      throw new WhisperError(
        'E_HUB_INTEGRITY',
        `${d.ctx.file} of ${d.ctx.repo} is corrupt: sha256 ${actual} does not match the expected ${d.sha256}; ` +
          'the download was deleted, pull again',
      );
    }
  }
}
