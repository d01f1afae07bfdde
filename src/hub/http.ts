/**
 * HTTP to the Hub with undici: one dispatcher per operation (direct, a fixed proxy, or the proxy environment
 * variables through undici's EnvHttpProxyAgent), redirects followed by hand so that the `Authorization` header only
 * ever goes to the endpoint's own origin, retries with exponential backoff on 5xx/429 and dropped connections, and
 * the Hub's error headers (`X-Error-Code`) turned into `WhisperError` codes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, EnvHttpProxyAgent, ProxyAgent, request, type Dispatcher } from 'undici';
import { WhisperError } from '../errors.js';
import type { ResolvedHubConfig } from './config.js';
import { normalizeEtag } from './validate.js';

const USER_AGENT = 'whisper-ts (hub client; undici)';
const MAX_REDIRECTS = 10;

/** What a request is about, for error messages. */
export interface RequestContext {
  repo: string;
  revision?: string;
  file?: string;
}

/** A non-2xx answer, kept until the retry loop decides whether to try again. */
export class HubStatusError extends Error {
  override readonly name = 'HubStatusError';
  constructor(
    readonly status: number,
    readonly headers: Readonly<Record<string, string>>,
    readonly url: string,
    readonly tokenSent: boolean,
  ) {
    super(`HTTP ${status} from ${displayUrl(url)}`);
  }
}

export interface HubResponse {
  status: number;
  headers: Readonly<Record<string, string>>;
  /** The URL that answered (after the redirects that were followed). */
  url: string;
  body: Dispatcher.ResponseData['body'];
  tokenSent: boolean;
}

/** Metadata of a file from a HEAD on its resolve URL (huggingface_hub file_download.py `get_hf_file_metadata`). */
export interface FileMetadata {
  etag: string | undefined;
  size: number | undefined;
  commit: string | undefined;
  /** Where the bytes are: the CDN URL of a redirect, else the resolve URL itself. */
  location: string;
}

const NETWORK_CODES = new Set([
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  return errorCode((error as { cause?: unknown }).cause);
}

/** A connection that failed, dropped or stalled: worth another try. */
export function isNetworkError(error: unknown): boolean {
  if (error instanceof WhisperError) return error.code === 'E_HUB_NETWORK';
  const code = errorCode(error);
  return code !== undefined && NETWORK_CODES.has(code);
}

/**
 * A host name that did not resolve: offline, or a wrong HF_ENDPOINT. One more try covers a resolver's hiccup; five
 * (with their backoff, 16 s) only delay the answer.
 */
const NAME_RESOLUTION_RETRIES = 1;

function isNameResolutionError(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

/** The retries an error gets out of `retries`: a host name that did not resolve gets NAME_RESOLUTION_RETRIES at most. */
export function retriesFor(error: unknown, retries: number): number {
  return isNameResolutionError(error) ? Math.min(retries, NAME_RESOLUTION_RETRIES) : retries;
}

export function isRetryable(error: unknown): boolean {
  if (error instanceof HubStatusError) return error.status >= 500 || error.status === 429 || error.status === 408;
  return isNetworkError(error);
}

/** A URL for messages: no query string (CDN URLs carry signatures), no credentials. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url;
  }
}

function describeNetworkError(error: unknown): string {
  const code = errorCode(error);
  switch (code) {
    case 'UND_ERR_BODY_TIMEOUT':
      return 'the transfer stalled (no data before the timeout)';
    case 'UND_ERR_HEADERS_TIMEOUT':
      return 'the server did not answer before the timeout';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'the connection timed out';
    case 'ECONNREFUSED':
      return 'the connection was refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name could not be resolved';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'UND_ERR_CLOSED':
    case 'ERR_STREAM_PREMATURE_CLOSE':
      return 'the connection was closed by the other side';
    default: {
      const message = error instanceof Error ? error.message : String(error);
      return code !== undefined ? `${code}: ${message}` : message;
    }
  }
}

function clean(text: string): string {
  // Server-sent text goes into our messages: no control characters, bounded length.
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 300);
}

/** Turns any failure of a Hub request into a `WhisperError`. */
export function toWhisperError(error: unknown, ctx: RequestContext, config: ResolvedHubConfig, signal?: AbortSignal): WhisperError {
  if (error instanceof WhisperError) return error;
  if (signal?.aborted) return new WhisperError('E_ABORTED', 'the download was aborted', { cause: signal.reason });
  const where = ctx.file !== undefined ? `${ctx.file} of ${ctx.repo}` : ctx.repo;
  if (error instanceof HubStatusError) {
    const code = error.headers['x-error-code'];
    const serverMessage = error.headers['x-error-message'];
    const detail = serverMessage !== undefined ? ` (${clean(serverMessage)})` : '';
    const tokenHint = error.tokenSent ? '' : '; if it is private or gated, set HF_TOKEN to a Hugging Face token with access';
    if (code === 'RepoNotFound') {
      return new WhisperError('E_HUB_NOT_FOUND', `repository ${ctx.repo} was not found at ${config.endpoint}${detail}${tokenHint}`, { cause: error });
    }
    if (code === 'RevisionNotFound') {
      return new WhisperError('E_HUB_NOT_FOUND', `revision ${JSON.stringify(ctx.revision ?? '')} was not found in ${ctx.repo}${detail}`, { cause: error });
    }
    if (code === 'EntryNotFound') {
      return new WhisperError('E_HUB_NOT_FOUND', `${ctx.file ?? 'a file'} was not found in ${ctx.repo}${detail}`, { cause: error });
    }
    if (code === 'GatedRepo' || error.status === 401 || error.status === 403) {
      const message = error.tokenSent
        ? `the Hub refused the token for ${ctx.repo} (HTTP ${error.status})${detail}: check that the token is valid and that it has access (gated repos: accept the terms on the repo's page)`
        : `${ctx.repo} needs authentication (HTTP ${error.status})${detail}: it is gated or private; set HF_TOKEN to a Hugging Face token with access (gated repos: accept the terms on the repo's page first)`;
      return new WhisperError('E_HUB_UNAUTHORIZED', message, { cause: error });
    }
    if (error.status === 404) {
      return new WhisperError('E_HUB_NOT_FOUND', `${where} was not found (HTTP 404 from ${displayUrl(error.url)})${detail}`, { cause: error });
    }
    return new WhisperError('E_HUB_NETWORK', `the server answered HTTP ${error.status} for ${where} (${displayUrl(error.url)})${detail}`, { cause: error });
  }
  if (isNetworkError(error)) {
    const proxyHint = config.proxy.kind === 'none' ? '' : ' through the proxy';
    return new WhisperError(
      'E_HUB_NETWORK',
      `could not download ${where} from ${config.endpoint}${proxyHint}: ${describeNetworkError(error)}` +
        ' (check the network, HF_ENDPOINT and the proxy variables HTTPS_PROXY/HTTP_PROXY)',
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new WhisperError('E_HUB_NETWORK', `request for ${where} failed: ${message}`, { cause: error });
}

function flattenHeaders(raw: Dispatcher.ResponseData['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    out[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function originOf(url: string): string {
  return new URL(url).origin;
}

export function createDispatcher(config: ResolvedHubConfig): Dispatcher {
  const agentOptions = { connect: { timeout: config.timeouts.connectMs } };
  switch (config.proxy.kind) {
    case 'none':
      return new Agent(agentOptions);
    case 'fixed':
      return new ProxyAgent({ ...agentOptions, uri: config.proxy.url });
    case 'env':
      // Values passed explicitly (empty string = none) so undici does not read process.env a second time.
      return new EnvHttpProxyAgent({
        ...agentOptions,
        httpProxy: config.proxy.http,
        httpsProxy: config.proxy.https,
        noProxy: config.proxy.noProxy,
      });
  }
}

export interface SendOptions {
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** HEAD stops at a redirect to another origin: the file's metadata is on that response. */
  followCrossOrigin: boolean;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
}

export class HubClient {
  readonly config: ResolvedHubConfig;
  readonly signal: AbortSignal | undefined;
  private readonly dispatcher: Dispatcher;
  private readonly endpointOrigin: string;

  constructor(config: ResolvedHubConfig, signal?: AbortSignal) {
    this.config = config;
    this.signal = signal;
    this.dispatcher = createDispatcher(config);
    this.endpointOrigin = originOf(config.endpoint);
  }

  async close(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }

  /** `{endpoint}/{repo}/resolve/{revision}/{path}`, each part URL-encoded. */
  resolveUrl(repo: string, revision: string, path: string): string {
    const encodedPath = path.split('/').map(encodeURIComponent).join('/');
    return `${this.config.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodedPath}`;
  }

  /** `{endpoint}/api/models/{repo}[/revision/{revision}]`. */
  apiUrl(repo: string, revision: string | undefined, query = ''): string {
    const rev = revision === undefined ? '' : `/revision/${encodeURIComponent(revision)}`;
    return `${this.config.endpoint}/api/models/${repo}${rev}${query}`;
  }

  /**
   * One request, redirects followed by hand. The token goes only to the endpoint's origin: never to a CDN or any
   * other host a redirect points to. Non-2xx answers are thrown as `HubStatusError` (the body discarded).
   */
  async send(url: string, options: SendOptions): Promise<HubResponse> {
    let current = url;
    // The Hub's metadata headers on a redirect that is followed (same origin) still describe the file.
    const carried: Record<string, string> = {};
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const tokenSent = this.config.token !== undefined && originOf(current) === this.endpointOrigin;
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, 'accept-encoding': 'identity', ...options.headers };
      if (tokenSent && this.config.token !== undefined) headers.authorization = `Bearer ${this.config.token}`;
      const res = await request(current, {
        method: options.method,
        headers,
        dispatcher: this.dispatcher,
        signal: this.signal ?? null,
        headersTimeout: options.headersTimeoutMs,
        bodyTimeout: options.bodyTimeoutMs,
      });
      const resHeaders = { ...carried, ...flattenHeaders(res.headers) };
      const location = resHeaders.location;
      if (res.statusCode >= 300 && res.statusCode < 400 && location !== undefined) {
        const target = new URL(location, current).href;
        if (!options.followCrossOrigin && originOf(target) !== originOf(current)) {
          return { status: res.statusCode, headers: resHeaders, url: current, body: res.body, tokenSent };
        }
        await res.body.dump();
        for (const name of ['x-linked-etag', 'x-linked-size', 'x-repo-commit']) {
          const value = resHeaders[name];
          if (value !== undefined) carried[name] = value;
        }
        current = target;
        continue;
      }
      if (res.statusCode < 200 || res.statusCode >= 300) {
        await res.body.dump().catch(() => undefined);
        throw new HubStatusError(res.statusCode, resHeaders, current, tokenSent);
      }
      return { status: res.statusCode, headers: resHeaders, url: current, body: res.body, tokenSent };
    }
    throw new WhisperError('E_HUB_NETWORK', `more than ${MAX_REDIRECTS} redirects from ${displayUrl(url)}`);
  }

  /** Backoff before retry `attempt` (1-based): base × 2^(attempt−1), capped, with ±20 % jitter. */
  backoffMs(attempt: number, retryAfter?: string): number {
    const { baseDelayMs, maxDelayMs } = this.config.retry;
    const fromHeader = retryAfter !== undefined && /^\d+$/.test(retryAfter) ? Number(retryAfter) * 1000 : undefined;
    const exp = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    const jittered = exp * (0.8 + 0.4 * Math.random());
    return Math.min(maxDelayMs, fromHeader ?? jittered);
  }

  async wait(ms: number): Promise<void> {
    if (ms <= 0) return;
    try {
      await sleep(ms, undefined, this.signal === undefined ? {} : { signal: this.signal });
    } catch (cause) {
      throw new WhisperError('E_ABORTED', 'the download was aborted', { cause });
    }
  }

  /**
   * Runs `fn` and retries it on 5xx/429 and network failures, at most `config.retry.retries` times (`retries`
   * overrides). Failures are mapped to `WhisperError`.
   */
  async withRetry<T>(
    ctx: RequestContext,
    fn: () => Promise<T>,
    onRetry?: (info: { attempt: number; retries: number; delayMs: number; reason: string }) => void,
    retries = this.config.retry.retries,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (this.signal?.aborted) throw toWhisperError(error, ctx, this.config, this.signal);
        const limit = retriesFor(error, retries);
        if (!isRetryable(error) || attempt >= limit) throw toWhisperError(error, ctx, this.config, this.signal);
        const retryAfter = error instanceof HubStatusError ? error.headers['retry-after'] : undefined;
        const delayMs = this.backoffMs(attempt + 1, retryAfter);
        onRetry?.({ attempt: attempt + 1, retries, delayMs, reason: toWhisperError(error, ctx, this.config).message });
        await this.wait(delayMs);
      }
    }
  }

  /** GET a JSON document (the model-info API). */
  async getJson(url: string, ctx: RequestContext, retries?: number, onRetry?: Parameters<HubClient['withRetry']>[2]): Promise<unknown> {
    return this.withRetry(
      ctx,
      async () => {
        const res = await this.send(url, {
          method: 'GET',
          headers: { accept: 'application/json' },
          followCrossOrigin: true,
          headersTimeoutMs: this.config.timeouts.metadataMs,
          bodyTimeoutMs: this.config.timeouts.metadataMs,
        });
        const text = await res.body.text();
        try {
          return JSON.parse(text) as unknown;
        } catch (cause) {
          throw new WhisperError('E_HUB_NETWORK', `${displayUrl(url)} did not answer with JSON (is the endpoint a Hub or a Hub mirror?)`, { cause });
        }
      },
      onRetry,
      retries,
    );
  }

  /** HEAD a resolve URL: etag, size, commit, and where the bytes are. */
  async head(url: string, ctx: RequestContext, onRetry?: Parameters<HubClient['withRetry']>[2]): Promise<FileMetadata> {
    return this.withRetry(
      ctx,
      async () => {
        const res = await this.send(url, {
          method: 'HEAD',
          followCrossOrigin: false,
          headersTimeoutMs: this.config.timeouts.metadataMs,
          bodyTimeoutMs: this.config.timeouts.metadataMs,
        });
        await res.body.dump().catch(() => undefined);
        const h = res.headers;
        const redirected = res.status >= 300 && res.status < 400;
        const sizeText = h['x-linked-size'] ?? (redirected ? undefined : h['content-length']);
        const size = sizeText !== undefined && /^\d+$/.test(sizeText) ? Number(sizeText) : undefined;
        return {
          etag: normalizeEtag(h['x-linked-etag'] ?? h.etag),
          size,
          commit: h['x-repo-commit'],
          location: redirected && h.location !== undefined ? new URL(h.location, res.url).href : res.url,
        };
      },
      onRetry,
    );
  }

  /** Opens a download, from byte `start` when > 0 (a Range request). Redirects are followed; status errors thrown. */
  async openDownload(url: string, start: number): Promise<HubResponse> {
    const headers: Record<string, string> = {};
    if (start > 0) headers.range = `bytes=${start}-`;
    return this.send(url, {
      method: 'GET',
      headers,
      followCrossOrigin: true,
      headersTimeoutMs: Math.max(this.config.timeouts.metadataMs, this.config.timeouts.stallMs),
      bodyTimeoutMs: this.config.timeouts.stallMs,
    });
  }
}
