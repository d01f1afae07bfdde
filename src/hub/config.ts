/**
 * Options and environment → one resolved configuration. Environment variables have huggingface_hub's names and
 * meanings (constants.py), so a machine set up for Python works the same here; an explicit option wins over them.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { WhisperError } from '../errors.js';
import type { HubOptions } from './types.js';

export type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';

export interface ResolvedHubConfig {
  endpoint: string;
  cacheDir: string;
  token: string | undefined;
  offline: boolean;
  timeouts: { connectMs: number; metadataMs: number; stallMs: number };
  retry: { retries: number; baseDelayMs: number; maxDelayMs: number };
  proxy: { kind: 'none' } | { kind: 'fixed'; url: string } | { kind: 'env'; http: string; https: string; noProxy: string };
}

/** huggingface_hub's `_is_true`: 1, ON, YES, TRUE in any case. */
export function envTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.trim().toUpperCase());
}

function nonEmpty(value: string | undefined): string | undefined {
  return value !== undefined && value.trim() !== '' ? value.trim() : undefined;
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(env: Env = process.env): string {
  const home = nonEmpty(env.HF_HOME);
  if (home !== undefined) return resolve(expandHome(home));
  const xdg = nonEmpty(env.XDG_CACHE_HOME);
  return resolve(xdg !== undefined ? expandHome(xdg) : join(homedir(), '.cache'), 'huggingface');
}

/** `$HF_HUB_CACHE`, else (legacy) `$HUGGINGFACE_HUB_CACHE`, else `hfHome()/hub`. */
export function defaultCacheDir(env: Env = process.env): string {
  const explicit = nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE);
  return explicit !== undefined ? resolve(expandHome(explicit)) : join(hfHome(env), 'hub');
}

/** Checks and normalises an endpoint: an http(s) URL without query or fragment; the trailing `/` dropped. */
export function normalizeEndpoint(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch (cause) {
    throw new WhisperError('E_OPTIONS', `the Hub endpoint ${JSON.stringify(raw)} is not a URL`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WhisperError('E_OPTIONS', `the Hub endpoint ${JSON.stringify(raw)} must be an http(s) URL`);
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new WhisperError('E_OPTIONS', `the Hub endpoint ${JSON.stringify(raw)} must not carry credentials, a query or a fragment`);
  }
  return url.href.replace(/\/+$/, '');
}

/**
 * The token huggingface_hub would use: `HF_TOKEN`, else the legacy `HUGGING_FACE_HUB_TOKEN`, else the file that
 * `hf auth login` writes (`HF_TOKEN_PATH`, else `$HF_HOME/token`); none when `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set.
 */
export function implicitToken(env: Env = process.env): string | undefined {
  if (envTrue(env.HF_HUB_DISABLE_IMPLICIT_TOKEN)) return undefined;
  const fromEnv = nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN);
  if (fromEnv !== undefined) return fromEnv;
  const tokenPath = nonEmpty(env.HF_TOKEN_PATH) ?? join(hfHome(env), 'token');
  try {
    return nonEmpty(readFileSync(expandHome(tokenPath), 'utf8'));
  } catch {
    return undefined;
  }
}

function seconds(value: string | undefined, name: string): number | undefined {
  const text = nonEmpty(value);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new WhisperError('E_OPTIONS', `${name}=${JSON.stringify(text)} is not a positive number of seconds`);
  return n * 1000;
}

function positive(value: number | undefined, name: string, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new WhisperError('E_OPTIONS', `${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${String(value)}`);
  }
  return value;
}

function checkToken(token: string): string {
  if (/[\r\n\0]/.test(token)) throw new WhisperError('E_OPTIONS', 'the Hub token contains a line break or NUL');
  return token;
}

/**
 * What work on the cache alone needs (listing, removing, an offline pull): the cache folder and the offline switch.
 * The network settings (endpoint, proxy, timeouts) are neither read nor checked, so a bad one does not stop them.
 */
export function resolveCacheConfig(options: HubOptions = {}, env: Env = process.env): Pick<ResolvedHubConfig, 'cacheDir' | 'offline'> {
  const cacheDir =
    options.cacheDir !== undefined
      ? resolve(isAbsolute(options.cacheDir) ? options.cacheDir : expandHome(options.cacheDir))
      : defaultCacheDir(env);
  const offline = options.offline ?? (envTrue(env.HF_HUB_OFFLINE) || envTrue(env.TRANSFORMERS_OFFLINE));
  return { cacheDir, offline };
}

export function resolveHubConfig(options: HubOptions = {}, env: Env = process.env): ResolvedHubConfig {
  const endpoint = normalizeEndpoint(options.endpoint ?? nonEmpty(env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT);
  const { cacheDir, offline } = resolveCacheConfig(options, env);
  const token =
    options.token === false ? undefined : checkTokenOrUndefined(options.token ?? implicitToken(env));
  const t = options.timeouts ?? {};
  const r = options.retry ?? {};
  let proxy: ResolvedHubConfig['proxy'];
  if (options.proxy === false) proxy = { kind: 'none' };
  else if (typeof options.proxy === 'string') proxy = { kind: 'fixed', url: checkProxyUrl(options.proxy) };
  else {
    const http = nonEmpty(env.http_proxy) ?? nonEmpty(env.HTTP_PROXY) ?? '';
    const https = nonEmpty(env.https_proxy) ?? nonEmpty(env.HTTPS_PROXY) ?? '';
    const noProxy = nonEmpty(env.no_proxy) ?? nonEmpty(env.NO_PROXY) ?? '';
    proxy =
      http === '' && https === ''
        ? { kind: 'none' }
        : { kind: 'env', http: http === '' ? '' : checkProxyUrl(http), https: https === '' ? '' : checkProxyUrl(https), noProxy };
  }
  return {
    endpoint,
    cacheDir,
    token,
    offline,
    timeouts: {
      connectMs: positive(t.connectMs, 'timeouts.connectMs', 10_000),
      metadataMs: positive(t.metadataMs, 'timeouts.metadataMs', seconds(env.HF_HUB_ETAG_TIMEOUT, 'HF_HUB_ETAG_TIMEOUT') ?? 10_000),
      stallMs: positive(t.stallMs, 'timeouts.stallMs', seconds(env.HF_HUB_DOWNLOAD_TIMEOUT, 'HF_HUB_DOWNLOAD_TIMEOUT') ?? 10_000),
    },
    retry: {
      retries: Math.floor(positive(r.retries, 'retry.retries', 5, true)),
      baseDelayMs: positive(r.baseDelayMs, 'retry.baseDelayMs', 1000, true),
      maxDelayMs: positive(r.maxDelayMs, 'retry.maxDelayMs', 8000, true),
    },
    proxy,
  };
}

function checkTokenOrUndefined(token: string | undefined): string | undefined {
  return token === undefined || token === '' ? undefined : checkToken(token);
}

/** Checks a proxy URL; `host:port` without a scheme means http, as curl and Python's httpx read it. */
function checkProxyUrl(value: string): string {
  const raw = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    // The value may carry a password: it is not repeated in the message.
    throw new WhisperError('E_OPTIONS', 'the proxy setting is not a URL (expected http://host:port)', { cause });
  }
  if (!['http:', 'https:', 'socks5:', 'socks:'].includes(url.protocol)) {
    throw new WhisperError('E_OPTIONS', `the proxy URL has an unsupported scheme ${url.protocol} (use http, https or socks5)`);
  }
  return raw;
}
