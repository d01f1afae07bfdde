/**
 * The hub client against a real HTTP Hub on 127.0.0.1 (test/helpers/hub-server.ts) serving the shared models as
 * onnx-community/whisper-base and onnx-community/whisper-tiny.en.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WhisperError } from '../src/errors.js';
import {
  listCachedModels,
  modelInfo,
  pullModel,
  removeCachedModel,
  resolveModelId,
  resolveModelSource,
  type HubOptions,
  type PullProgressEvent,
} from '../src/hub/index.js';
import { locksDir } from '../src/hub/cache.js';
import { resolveHubConfig } from '../src/hub/config.js';
import { withFileLock } from '../src/hub/lock.js';
import { assertRepoFilePath } from '../src/hub/validate.js';
import { startHubServer, standardRepos, type HubServer } from './helpers/hub-server.js';
import { TINY_EN } from './helpers/paths.js';
import { startProxy } from './helpers/proxy.js';

const TINY = 'onnx-community/whisper-tiny.en';
const BASE = 'onnx-community/whisper-base';
const GATED = 'acme/whisper-gated';
const TOKEN = 'hf_test_secret_token';
const DECODER = 'onnx/decoder_model_merged_quantized.onnx';
const ENCODER = 'onnx/encoder_model_quantized.onnx';
const SIDE = [
  'added_tokens.json',
  'config.json',
  'generation_config.json',
  'merges.txt',
  'normalizer.json',
  'preprocessor_config.json',
  'special_tokens_map.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
];

let server: HubServer;
const tmpDirs: string[] = [];
const savedEnv = { ...process.env };

function tempCache(): string {
  const dir = mkdtempSync(join(tmpdir(), 'whisper-ts-hub-'));
  tmpDirs.push(dir);
  return join(dir, 'hub');
}

/** Options that ignore the machine's environment: this server, this cache, no token, no proxy, quick retries. */
function opts(cacheDir: string, extra: HubOptions = {}): HubOptions {
  return {
    endpoint: server.url,
    cacheDir,
    token: false,
    proxy: false,
    offline: false,
    retry: { retries: 2, baseDelayMs: 10, maxDelayMs: 50 },
    timeouts: { stallMs: 3000, metadataMs: 3000 },
    ...extra,
  };
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function snapshotFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...snapshotFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

async function rejection(promise: Promise<unknown>): Promise<WhisperError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof WhisperError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

/** Every file of the snapshot has the bytes the server serves. */
function expectIntact(snapshot: string, repo: string): void {
  for (const file of snapshotFiles(snapshot)) {
    expect(sha256(join(snapshot, file)), file).toBe(server.file(repo, file).sha256);
  }
}

beforeAll(async () => {
  server = await startHubServer({
    repos: { ...standardRepos(), [GATED]: { dir: TINY_EN, gated: true } },
    token: TOKEN,
  });
});

afterEach(() => {
  server.faults.length = 0;
  server.beforeBody = undefined;
  for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
  Object.assign(process.env, savedEnv);
});

afterAll(async () => {
  await server.close();
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

describe('names and ids', () => {
  it('maps size names to onnx-community repos and keeps org/name', () => {
    expect(resolveModelId('base')).toBe('onnx-community/whisper-base');
    expect(resolveModelId('tiny.en')).toBe('onnx-community/whisper-tiny.en');
    expect(resolveModelId('small.en_timestamped')).toBe('onnx-community/whisper-small.en_timestamped');
    expect(resolveModelId('large-v3')).toBe('onnx-community/whisper-large-v3');
    expect(resolveModelId('large-v3-turbo')).toBe('onnx-community/whisper-large-v3-turbo');
    expect(resolveModelId('large-v3-turbo_timestamped')).toBe('onnx-community/whisper-large-v3-turbo_timestamped');
    expect(resolveModelId('turbo')).toBe('onnx-community/whisper-large-v3-turbo');
    expect(resolveModelId('medium')).toBe('onnx-community/whisper-medium');
    expect(resolveModelId('distil-large-v3')).toBe('distil-whisper/distil-large-v3');
    expect(resolveModelId('Xenova/whisper-tiny')).toBe('Xenova/whisper-tiny');
    for (const bad of ['large-v3.en', 'huge', 'base.fr', '']) {
      expect(() => resolveModelId(bad), bad).toThrow(expect.objectContaining({ code: 'E_HUB_INVALID_ID' }) as Error);
    }
  });

  it('refuses bad repo ids, revisions and file names before any request or write', async () => {
    const cacheDir = tempCache();
    const before = server.requests.length;
    const badIds = ['../etc', 'org/../name', '/abs/path', 'org\\name', 'org/na\u0000me', 'org/name\n', 'a/b/c', 'C:\\models', 'org/..', 'org--x/name'];
    for (const id of badIds) {
      const error = await rejection(pullModel(id, opts(cacheDir)));
      expect(error.code, JSON.stringify(id)).toBe('E_HUB_INVALID_ID');
    }
    const badRevisions = ['..', '../main', '/main', 'main/', 'ma\\in', 'main\u0007', 'refs/../x', 'a//b', 'with space', '\u0085'];
    for (const revision of badRevisions) {
      const error = await rejection(pullModel('tiny.en', opts(cacheDir, { revision })));
      expect(error.code, JSON.stringify(revision)).toBe('E_HUB_INVALID_ID');
      const infoError = await rejection(modelInfo('tiny.en', opts(cacheDir, { revision })));
      expect(infoError.code, JSON.stringify(revision)).toBe('E_HUB_INVALID_ID');
    }
    for (const path of ['../config.json', 'onnx/../../x', '/etc/passwd', 'onnx\\x.onnx', 'a\u0001b', 'C:/x', 'a//b', './a']) {
      expect(() => assertRepoFilePath(path), JSON.stringify(path)).toThrow(expect.objectContaining({ code: 'E_HUB_INVALID_ID' }) as Error);
    }
    const removeError = await rejection(removeCachedModel('../models--x', { cacheDir }));
    expect(removeError.code).toBe('E_HUB_INVALID_ID');
    expect(server.requests.length).toBe(before);
    expect(existsSync(cacheDir)).toBe(false);
  });

  it('refuses a commit or an etag from the server that would escape the cache', async () => {
    // A hostile "Hub": a commit with "..", then an etag with "/" in it.
    let mode: 'commit' | 'etag' = 'commit';
    const evil = createServer((req, res) => {
      if (req.url?.startsWith('/api/')) {
        res.setHeader('Content-Type', 'application/json');
        const sha = mode === 'commit' ? '../../../../tmp/evil' : 'a'.repeat(40);
        const siblings = [ENCODER, DECODER, 'config.json'].map((rfilename) => ({ rfilename }));
        res.end(JSON.stringify({ sha, siblings }));
        return;
      }
      res.setHeader('X-Repo-Commit', 'a'.repeat(40));
      res.setHeader('ETag', '"../../../escape"');
      res.setHeader('Content-Length', '2');
      res.end(req.method === 'HEAD' ? undefined : '{}');
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', () => resolve()));
    const cacheDir = tempCache();
    const endpoint = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    try {
      for (const m of ['commit', 'etag'] as const) {
        mode = m;
        const error = await rejection(pullModel('tiny.en', opts(cacheDir, { endpoint })));
        expect(error.code).toBe('E_HUB_INVALID_ID');
        expect(error.message).toMatch(m === 'commit' ? /invalid commit/ : /ETag/);
      }
      expect(existsSync(join(cacheDir, 'models--onnx-community--whisper-tiny.en', 'blobs'))).toBe(false);
      expect(existsSync(join(cacheDir, '..', 'escape'))).toBe(false);
    } finally {
      evil.closeAllConnections();
      await new Promise<void>((resolve) => evil.close(() => resolve()));
    }
  });

  it('reads the environment the way huggingface_hub does', () => {
    const env = { HF_HOME: '/x/hf', HF_ENDPOINT: 'https://hf-mirror.com/', HF_TOKEN: 'hf_abc', HF_HUB_OFFLINE: 'yes', HF_HUB_DOWNLOAD_TIMEOUT: '2' };
    const config = resolveHubConfig({}, env);
    expect(config.cacheDir).toBe('/x/hf/hub');
    expect(config.endpoint).toBe('https://hf-mirror.com');
    expect(config.token).toBe('hf_abc');
    expect(config.offline).toBe(true);
    expect(config.timeouts.stallMs).toBe(2000);
    expect(config.proxy).toEqual({ kind: 'none' });
    expect(resolveHubConfig({}, { HF_HUB_CACHE: '/c', HF_HOME: '/x' }).cacheDir).toBe('/c');
    expect(resolveHubConfig({}, { XDG_CACHE_HOME: '/xdg' }).cacheDir).toBe('/xdg/huggingface/hub');
    expect(resolveHubConfig({ endpoint: 'http://h:1', token: false, offline: false }, env)).toMatchObject({ endpoint: 'http://h:1', token: undefined, offline: false });
    expect(resolveHubConfig({}, { HTTPS_PROXY: 'http://p:3128', NO_PROXY: 'localhost' }).proxy).toEqual({
      kind: 'env',
      http: '',
      https: 'http://p:3128',
      noProxy: 'localhost',
    });
    expect(() => resolveHubConfig({ endpoint: 'ftp://x' }, {})).toThrow(expect.objectContaining({ code: 'E_OPTIONS' }) as Error);
    // host:port without a scheme is an http proxy (curl, httpx)
    expect(resolveHubConfig({}, { HTTPS_PROXY: '127.0.0.1:7890' }).proxy).toMatchObject({ https: 'http://127.0.0.1:7890' });
    expect(resolveHubConfig({ proxy: 'p:3128' }, {}).proxy).toEqual({ kind: 'fixed', url: 'http://p:3128' });
  });

  it('work on the cache alone (list, remove, an offline pull) does not read the network settings', async () => {
    const cacheDir = tempCache();
    const online = await pullModel('tiny.en', opts(cacheDir));
    process.env.HF_ENDPOINT = 'hf-mirror.com'; // not a URL
    process.env.HTTPS_PROXY = 'http://[bad';
    process.env.HF_HUB_ETAG_TIMEOUT = 'abc';
    const local = { cacheDir, token: false as const };
    expect(await pullModel('tiny.en', { ...local, offline: true })).toBe(online);
    expect((await listCachedModels(local)).map((m) => m.repo)).toEqual([TINY]);
    expect(await removeCachedModel('tiny.en', local)).toMatchObject({ repo: TINY });
    // a pull that needs the network still refuses them, naming the setting
    expect((await rejection(pullModel('tiny.en', local))).message).toContain('the Hub endpoint "hf-mirror.com" is not a URL');
  });
});

describe('pull', () => {
  it('fetches one dtype in the HF layout; a second pull asks only the model-info API; offline needs no server', async () => {
    const cacheDir = tempCache();
    const events: PullProgressEvent[] = [];
    const snapshot = await pullModel('tiny.en', opts(cacheDir, { onProgress: (e) => events.push(e) }));
    const commit = server.commits.get(TINY) as string;
    const repoDir = join(cacheDir, 'models--onnx-community--whisper-tiny.en');
    expect(snapshot).toBe(join(repoDir, 'snapshots', commit));
    expect(snapshotFiles(snapshot)).toEqual([...SIDE, DECODER, ENCODER].sort());
    expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(commit);
    for (const file of snapshotFiles(snapshot)) {
      const served = server.file(TINY, file);
      const link = join(snapshot, file);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      const depth = file.split('/').length;
      expect(readlinkSync(link)).toBe(`${'../'.repeat(depth + 1)}blobs/${served.etag}`);
    }
    expectIntact(snapshot, TINY);
    expect(readdirSync(join(repoDir, 'blobs')).some((n) => n.endsWith('.incomplete'))).toBe(false);
    const resolved = events.find((e) => e.type === 'resolved');
    expect(resolved).toMatchObject({ type: 'resolved', repo: TINY, commit, dtype: 'q8' });
    const done = events.at(-1);
    expect(done?.type).toBe('done');

    const before = server.requests.length;
    expect(await pullModel('onnx-community/whisper-tiny.en', opts(cacheDir))).toBe(snapshot);
    expect(server.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual([
      `GET /api/models/${TINY}/revision/main`,
    ]);

    const offlineEvents: PullProgressEvent[] = [];
    const offlineBefore = server.requests.length;
    const offline = await pullModel('tiny.en', opts(cacheDir, { offline: true, endpoint: 'http://127.0.0.1:9', onProgress: (e) => offlineEvents.push(e) }));
    expect(offline).toBe(snapshot);
    expect(offlineEvents).toEqual([{ type: 'cache-hit', repo: TINY, commit, path: snapshot, reason: 'offline' }]);
    process.env.HF_HUB_OFFLINE = '1';
    const { offline: _omit, ...withoutOffline } = opts(cacheDir);
    expect(await resolveModelSource('tiny.en', withoutOffline)).toBe(snapshot);
    expect(await pullModel(TINY, { ...withoutOffline, revision: commit })).toBe(snapshot);
    expect(server.requests.length).toBe(offlineBefore);
  });

  it('fetches only the asked dtype, with its external-data file, and names the dtypes a repo has', async () => {
    const cacheDir = tempCache();
    const before = server.requests.length;
    const snapshot = await pullModel('base', opts(cacheDir, { dtype: 'q4' }));
    expect(snapshotFiles(snapshot)).toEqual(
      [...SIDE, 'onnx/encoder_model_q4.onnx', 'onnx/decoder_model_merged_q4.onnx', 'onnx/decoder_model_merged_q4.onnx_data'].sort(),
    );
    expectIntact(snapshot, BASE);
    const fetched = server.requests.slice(before).filter((r) => r.method === 'GET').map((r) => r.url);
    expect(fetched.some((u) => u.includes('quantized') || u.includes('fp16') || u.includes('README'))).toBe(false);

    const error = await rejection(pullModel('base', opts(cacheDir, { dtype: 'int8' })));
    expect(error.code).toBe('E_HUB_NOT_FOUND');
    expect(error.message).toMatch(/no int8 weights.*fp32, fp16, q8, q4/);
    const badDtype = await rejection(pullModel('base', opts(cacheDir, { dtype: 'q5' as 'q4' })));
    expect(badDtype.code).toBe('E_OPTIONS');

    // one graph in another variant (loadModel's encoderDtype / decoderDtype): exactly those two graphs
    const mixedCache = tempCache();
    const events: PullProgressEvent[] = [];
    const mixed = await pullModel('base', opts(mixedCache, { encoderDtype: 'q4', onProgress: (e) => events.push(e) }));
    expect(snapshotFiles(mixed).filter((f) => f.startsWith('onnx/'))).toEqual(['onnx/decoder_model_merged_quantized.onnx', 'onnx/encoder_model_q4.onnx']);
    expect(events.find((e) => e.type === 'resolved')).toMatchObject({ dtype: 'q8', parts: { encoder: 'q4', decoder: 'q8' } });
    expect(await pullModel('base', opts(mixedCache, { encoderDtype: 'q4', offline: true }))).toBe(mixed);
    const missing = await rejection(pullModel('base', opts(mixedCache, { decoderDtype: 'fp32', offline: true })));
    expect(missing.code).toBe('E_HUB_OFFLINE');
    expect(missing.message).toContain('q8 encoder / fp32 decoder');
    expect(missing.message).toContain('models pull onnx-community/whisper-base --dtype q8 and whisper-ts models pull onnx-community/whisper-base --dtype fp32');
  });

  it('follows a relative redirect to the blob URL on the same host (token kept there)', async () => {
    const relative = await startHubServer({ repos: { [GATED]: { dir: TINY_EN, gated: true } }, token: TOKEN, lfsRedirect: 'relative' });
    try {
      const cacheDir = tempCache();
      const snapshot = await pullModel(GATED, opts(cacheDir, { endpoint: relative.url, token: TOKEN }));
      expect(snapshotFiles(snapshot)).toContain(DECODER);
      expect(sha256(join(snapshot, DECODER))).toBe(relative.file(GATED, DECODER).sha256);
      const blobGets = relative.requests.filter((r) => r.method === 'GET' && r.url.startsWith('/cdn/'));
      expect(blobGets.length).toBe(2);
      expect(blobGets.every((r) => r.server === 'hub' && r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    } finally {
      await relative.close();
    }
  });

  it('resolveModelSource: a folder is used as is, a missing path is an error, a name is pulled', async () => {
    const cacheDir = tempCache();
    const before = server.requests.length;
    expect(await resolveModelSource(TINY_EN, opts(cacheDir))).toBe(TINY_EN);
    const missing = await rejection(resolveModelSource('./no/such/model', opts(cacheDir)));
    expect(missing.code).toBe('E_MODEL_FILE_MISSING');
    expect(server.requests.length).toBe(before);
    const pulled = await resolveModelSource('tiny.en', opts(cacheDir));
    expect(pulled).toContain(join('models--onnx-community--whisper-tiny.en', 'snapshots'));
  });

  it('modelInfo lists files, sizes and the dtypes on the Hub', async () => {
    const info = await modelInfo('base', opts(tempCache()));
    expect(info.commit).toBe(server.commits.get(BASE));
    expect(info.dtypes.map((d) => d.dtype)).toEqual(['fp32', 'fp16', 'q8', 'q4']);
    const q8 = info.dtypes.find((d) => d.dtype === 'q8');
    const expected = [ENCODER, 'onnx/decoder_model_merged_quantized.onnx', ...SIDE].reduce((sum, f) => sum + server.file(BASE, f).size, 0);
    expect(q8?.size).toBe(expected);
    expect(info.dtypes.find((d) => d.dtype === 'q4')?.files).toContain('onnx/decoder_model_merged_q4.onnx_data');
    expect(info.files.find((f) => f.path === ENCODER)?.lfsSha256).toBe(server.file(BASE, ENCODER).sha256);
  });
});

describe('interrupted, stalled and corrupt downloads', () => {
  it('a connection cut in the largest file: the next pull resumes with a Range request, byte-identical', async () => {
    const cacheDir = tempCache();
    const cutAt = 12_000_000;
    server.addFault({ kind: 'cut', path: DECODER, at: cutAt });
    const error = await rejection(pullModel('tiny.en', opts(cacheDir, { retry: { retries: 0 } })));
    expect(error.code).toBe('E_HUB_NETWORK');
    expect(error.message).toContain(DECODER);
    const repoDir = join(cacheDir, 'models--onnx-community--whisper-tiny.en');
    const decoder = server.file(TINY, DECODER);
    const partial = join(repoDir, 'blobs', `${decoder.sha256}.incomplete`);
    const have = statSync(partial).size;
    expect(have).toBeGreaterThan(0);
    expect(have).toBeLessThanOrEqual(cutAt);
    expect(existsSync(join(repoDir, 'blobs', decoder.sha256))).toBe(false);
    expect(existsSync(join(repoDir, 'snapshots', server.commits.get(TINY) as string, DECODER))).toBe(false);

    const before = server.requests.length;
    const snapshot = await pullModel('tiny.en', opts(cacheDir));
    const ranges = server.requests.slice(before).filter((r) => r.url.startsWith(`/cdn/${decoder.sha256}`)).map((r) => r.range);
    expect(ranges).toEqual([`bytes=${have}-`]);
    expect(sha256(join(snapshot, DECODER))).toBe(decoder.sha256);
    expectIntact(snapshot, TINY);
    expect(existsSync(partial)).toBe(false);
  });

  it('a cut connection is retried and resumed within the same pull', async () => {
    const cacheDir = tempCache();
    server.addFault({ kind: 'cut', path: DECODER, at: 7_000_000 });
    const events: PullProgressEvent[] = [];
    const before = server.requests.length;
    const snapshot = await pullModel('tiny.en', opts(cacheDir, { onProgress: (e) => events.push(e) }));
    const decoder = server.file(TINY, DECODER);
    const gets = server.requests.slice(before).filter((r) => r.url.startsWith(`/cdn/${decoder.sha256}`));
    expect(gets.length).toBe(2);
    expect(gets[0]?.range).toBeUndefined();
    expect(gets[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(events.filter((e) => e.type === 'retry').map((e) => (e.type === 'retry' ? e.path : ''))).toEqual([DECODER]);
    expect(sha256(join(snapshot, DECODER))).toBe(decoder.sha256);
  });

  it('a stalled transfer times out and is resumed, not left hanging', async () => {
    const cacheDir = tempCache();
    server.addFault({ kind: 'stall', path: DECODER, at: 5_000_000 });
    const events: PullProgressEvent[] = [];
    const snapshot = await pullModel('tiny.en', opts(cacheDir, { timeouts: { stallMs: 400 }, onProgress: (e) => events.push(e) }));
    const retry = events.find((e) => e.type === 'retry');
    expect(retry).toMatchObject({ type: 'retry', path: DECODER, attempt: 1 });
    expect(retry?.type === 'retry' ? retry.reason : '').toMatch(/stalled/);
    expect(sha256(join(snapshot, DECODER))).toBe(server.file(TINY, DECODER).sha256);

    server.addFault({ kind: 'stall', path: ENCODER, at: 1_000_000 });
    const error = await rejection(pullModel('tiny.en', opts(tempCache(), { timeouts: { stallMs: 400 }, retry: { retries: 0 } })));
    expect(error.code).toBe('E_HUB_NETWORK');
    expect(error.message).toMatch(new RegExp(`${ENCODER}.*stalled`));
  });

  it('wrong bytes with the right length: an error naming the file, nothing in snapshots, the next pull heals', async () => {
    const cacheDir = tempCache();
    server.addFault({ kind: 'corrupt', path: DECODER, at: 4242 });
    const error = await rejection(pullModel('tiny.en', opts(cacheDir)));
    expect(error.code).toBe('E_HUB_INTEGRITY');
    expect(error.message).toContain(DECODER);
    expect(error.message).toContain('sha256');
    const repoDir = join(cacheDir, 'models--onnx-community--whisper-tiny.en');
    const decoder = server.file(TINY, DECODER);
    const snapshot = join(repoDir, 'snapshots', server.commits.get(TINY) as string);
    expect(existsSync(join(snapshot, DECODER))).toBe(false);
    expect(readdirSync(join(repoDir, 'blobs')).filter((n) => n.startsWith(decoder.sha256))).toEqual([]);

    expect(await pullModel('tiny.en', opts(cacheDir))).toBe(snapshot);
    expect(sha256(join(snapshot, DECODER))).toBe(decoder.sha256);
    expectIntact(snapshot, TINY);
  });

  it('a server whose file is not the size it announced: one clear error at once, no retries', async () => {
    const cacheDir = tempCache();
    server.addFault({ kind: 'announce', path: ENCODER, by: 22 });
    const retries: PullProgressEvent[] = [];
    const error = await rejection(pullModel('tiny.en', opts(cacheDir, { onProgress: (e) => e.type === 'retry' && retries.push(e) })));
    expect(error.code).toBe('E_HUB_INTEGRITY');
    expect(error.message).toContain(`${ENCODER} of ${TINY}: the server sends a file of ${server.file(TINY, ENCODER).size} bytes, but announced`);
    expect(retries).toEqual([]);
    expectIntact(await pullModel('tiny.en', opts(cacheDir)), TINY);
  });

  it('an aborted pull stops with E_ABORTED and keeps the partial file for the next pull', async () => {
    const cacheDir = tempCache();
    const controller = new AbortController();
    const error = await rejection(
      pullModel('tiny.en', opts(cacheDir, {
        signal: controller.signal,
        onProgress: (e) => {
          if (e.type === 'progress' && e.path === DECODER && e.fileBytes > 3_000_000) controller.abort();
        },
      })),
    );
    expect(error.code).toBe('E_ABORTED');
    const decoder = server.file(TINY, DECODER);
    const partial = join(cacheDir, 'models--onnx-community--whisper-tiny.en', 'blobs', `${decoder.sha256}.incomplete`);
    const have = statSync(partial).size;
    expect(have).toBeGreaterThan(0);
    expect(have).toBeLessThan(decoder.size);
    const before = server.requests.length;
    const snapshot = await pullModel('tiny.en', opts(cacheDir));
    expect(server.requests.slice(before).find((r) => r.url.startsWith(`/cdn/${decoder.sha256}`))?.range).toBe(`bytes=${have}-`);
    expectIntact(snapshot, TINY);
  });

  it('5xx answers are retried with backoff', async () => {
    const cacheDir = tempCache();
    server.addFault({ kind: 'status', path: 'config.json', status: 503, times: 2 });
    server.addFault({ kind: 'status', path: '@api', status: 502, times: 2 });
    const events: PullProgressEvent[] = [];
    const snapshot = await pullModel('tiny.en', opts(cacheDir, { onProgress: (e) => events.push(e) }));
    const retries = events.flatMap((e) => (e.type === 'retry' ? [e] : []));
    expect(retries.map((e) => e.path ?? 'api')).toEqual(['api', 'api', 'config.json', 'config.json']);
    // the model-info request's retries are counted on from its first try: 1/N, 2/N
    expect(retries.slice(0, 2).map((e) => [e.attempt, e.retries])).toEqual([
      [1, retries[0]?.retries],
      [2, retries[0]?.retries],
    ]);
    expectIntact(snapshot, TINY);
  });
});

describe('errors, tokens and offline mode', () => {
  it('an unknown repo or revision is E_HUB_NOT_FOUND with a clear message', async () => {
    const cacheDir = tempCache();
    const repo = await rejection(pullModel('acme/no-such-model', opts(cacheDir)));
    expect(repo.code).toBe('E_HUB_NOT_FOUND');
    expect(repo.message).toMatch(/repository acme\/no-such-model was not found at http:\/\/127\.0\.0\.1:\d+.*HF_TOKEN/);
    const revision = await rejection(pullModel('tiny.en', opts(cacheDir, { revision: 'v9' })));
    expect(revision.code).toBe('E_HUB_NOT_FOUND');
    expect(revision.message).toMatch(/revision "v9" was not found in onnx-community\/whisper-tiny\.en/);
  });

  it('a gated repo: 401 without a token, refused with a wrong one; the token goes to the Hub, never to the CDN', async () => {
    const cacheDir = tempCache();
    const noToken = await rejection(pullModel(GATED, opts(cacheDir)));
    expect(noToken.code).toBe('E_HUB_UNAUTHORIZED');
    expect(noToken.message).toMatch(/acme\/whisper-gated needs authentication \(HTTP 401\).*HF_TOKEN/);
    const wrong = await rejection(pullModel(GATED, opts(cacheDir, { token: 'hf_wrong' })));
    expect(wrong.code).toBe('E_HUB_UNAUTHORIZED');
    expect(wrong.message).toMatch(/refused the token/);

    process.env.HF_TOKEN = TOKEN;
    process.env.HF_HOME = join(cacheDir, 'home');
    const { token: _t, ...envToken } = opts(cacheDir);
    const before = server.requests.length;
    const snapshot = await pullModel(GATED, envToken);
    expect(sha256(join(snapshot, DECODER))).toBe(server.file(GATED, DECODER).sha256);
    const seen = server.requests.slice(before);
    const hub = seen.filter((r) => r.server === 'hub');
    const cdn = seen.filter((r) => r.server === 'cdn');
    expect(hub.length).toBeGreaterThan(10);
    expect(hub.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(cdn.length).toBe(2);
    expect(cdn.every((r) => r.authorization === undefined)).toBe(true);
  });

  it('HF_HUB_OFFLINE=1 with an empty cache: a clear E_HUB_OFFLINE and no request', async () => {
    const cacheDir = tempCache();
    const before = server.requests.length;
    process.env.HF_HUB_OFFLINE = '1';
    const { offline: _o, ...fromEnv } = opts(cacheDir);
    const error = await rejection(pullModel('base', fromEnv));
    expect(error.code).toBe('E_HUB_OFFLINE');
    expect(error.message).toMatch(/offline mode \(HF_HUB_OFFLINE\) is on and onnx-community\/whisper-base \(revision main\) is not in the cache at .*models pull/);
    // the command it suggests pulls the revision asked for
    const tagged = await rejection(pullModel('base', { ...fromEnv, revision: 'v2' }));
    expect(tagged.message).toContain('(whisper-ts models pull onnx-community/whisper-base --revision v2)');
    const info = await rejection(modelInfo('base', fromEnv));
    expect(info.code).toBe('E_HUB_OFFLINE');
    expect(server.requests.length).toBe(before);
    expect(existsSync(cacheDir)).toBe(false);
  });

  it('an unreachable server: the cached model is used; with an empty cache, E_HUB_NETWORK after retries', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const endpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const cacheDir = tempCache();
    const snapshot = await pullModel('tiny.en', opts(cacheDir));
    const events: PullProgressEvent[] = [];
    expect(await pullModel('tiny.en', opts(cacheDir, { endpoint, onProgress: (e) => events.push(e) }))).toBe(snapshot);
    expect(events).toMatchObject([{ type: 'cache-hit', reason: 'network-error' }]);

    const retries: PullProgressEvent[] = [];
    const error = await rejection(pullModel('base', opts(cacheDir, { endpoint, onProgress: (e) => retries.push(e) })));
    expect(error.code).toBe('E_HUB_NETWORK');
    expect(error.message).toMatch(/connection was refused/);
    expect(retries.filter((e) => e.type === 'retry').length).toBe(2);
  });

  it('a host name that does not resolve: one retry, not the full count, and E_HUB_NETWORK naming it', async () => {
    // .invalid never resolves (RFC 2606); with no resolver at all the failure is EAI_AGAIN, handled alike
    const retries: PullProgressEvent[] = [];
    const error = await rejection(
      pullModel('base', opts(tempCache(), { endpoint: 'http://hub.whisper-ts.invalid', retry: { retries: 5, baseDelayMs: 10, maxDelayMs: 50 }, onProgress: (e) => retries.push(e) })),
    );
    expect(error.code).toBe('E_HUB_NETWORK');
    expect(error.message).toMatch(/could not be resolved/);
    expect(retries.filter((e) => e.type === 'retry')).toMatchObject([{ attempt: 1, retries: 1 }]);
  });
});

describe('concurrency, proxy and cache management', () => {
  it('two concurrent pulls of the same model: one download per file, both succeed', async () => {
    const cacheDir = tempCache();
    const decoder = server.file(TINY, DECODER);
    // Hold the decoder's bytes back until both pulls have asked for its metadata.
    server.beforeBody = async (file) => {
      if (file.sha256 !== decoder.sha256) return;
      while (server.requests.filter((r) => r.method === 'HEAD' && r.url.endsWith(DECODER)).length < 2) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const before = server.requests.length;
    const events: PullProgressEvent[] = [];
    const [a, b] = await Promise.all([
      pullModel('tiny.en', opts(cacheDir, { onProgress: (e) => events.push(e) })),
      pullModel(TINY, opts(cacheDir, { onProgress: (e) => events.push(e) })),
    ]);
    expect(a).toBe(b);
    expect(events).toContainEqual({ type: 'waiting', path: DECODER });
    const seen = server.requests.slice(before);
    expect(seen.filter((r) => r.method === 'HEAD' && r.url.endsWith(DECODER)).length).toBe(2);
    expect(seen.filter((r) => r.url.startsWith(`/cdn/${decoder.sha256}`)).length).toBe(1);
    expectIntact(a, TINY);
  });

  it('through a proxy (option, then HTTP_PROXY; NO_PROXY bypasses it): the proxy sees the requests', async () => {
    const proxy = await startProxy();
    try {
      const hub = new URL(server.url).host;
      const cdn = new URL(server.cdnUrl).host;
      const snapshot = await pullModel('tiny.en', opts(tempCache(), { proxy: proxy.url }));
      expectIntact(snapshot, TINY);
      const targets = new Set(proxy.requests.map((r) => `${r.method} ${r.target}`));
      expect(targets).toEqual(new Set([`CONNECT ${hub}`, `CONNECT ${cdn}`]));

      proxy.requests.length = 0;
      process.env.HTTP_PROXY = proxy.url;
      const { proxy: _p, ...fromEnv } = opts(tempCache());
      expectIntact(await pullModel('tiny.en', fromEnv), TINY);
      expect(proxy.requests.map((r) => r.target)).toContain(hub);

      proxy.requests.length = 0;
      process.env.NO_PROXY = '127.0.0.1';
      expectIntact(await pullModel('tiny.en', { ...fromEnv, cacheDir: tempCache() }), TINY);
      expect(proxy.requests).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('listCachedModels and removeCachedModel show and remove exactly what is there', async () => {
    const cacheDir = tempCache();
    expect(await listCachedModels({ cacheDir })).toEqual([]);
    await pullModel('tiny.en', opts(cacheDir));
    await pullModel('base', opts(cacheDir, { dtype: 'q4' }));
    const models = await listCachedModels({ cacheDir });
    expect(models.map((m) => m.repo)).toEqual([BASE, TINY]);
    const tiny = models[1];
    const blobBytes = readdirSync(join(cacheDir, 'models--onnx-community--whisper-tiny.en', 'blobs')).reduce(
      (sum, n) => sum + statSync(join(cacheDir, 'models--onnx-community--whisper-tiny.en', 'blobs', n)).size,
      0,
    );
    expect(tiny).toMatchObject({ dtypes: ['q8'], sizeOnDisk: blobBytes, incompleteBytes: 0 });
    expect(tiny?.revisions).toMatchObject([{ commit: server.commits.get(TINY), refs: ['main'], dtypes: ['q8'], sizeOnDisk: blobBytes }]);
    expect(models[0]?.dtypes).toEqual(['q4']);

    const removed = await removeCachedModel(TINY, { cacheDir });
    expect(removed).toEqual({ repo: TINY, path: join(cacheDir, 'models--onnx-community--whisper-tiny.en'), freedBytes: blobBytes });
    expect(existsSync(removed.path)).toBe(false);
    expect((await listCachedModels({ cacheDir })).map((m) => m.repo)).toEqual([BASE]);
    expect((await rejection(removeCachedModel(TINY, { cacheDir }))).code).toBe('E_HUB_NOT_FOUND');
    // by the short name pullModel took
    expect((await removeCachedModel('base', { cacheDir })).repo).toBe(BASE);
    expect(await listCachedModels({ cacheDir })).toEqual([]);
  });

  it('a repo folder linked from elsewhere is listed; removing it removes the link, not what it names', async () => {
    const elsewhere = tempCache();
    const moved = join(await pullModel('tiny.en', opts(elsewhere)), '..', '..');
    const cacheDir = tempCache();
    mkdirSync(cacheDir, { recursive: true });
    symlinkSync(moved, join(cacheDir, 'models--onnx-community--whisper-tiny.en'));
    expect((await listCachedModels({ cacheDir })).map((m) => m.repo)).toEqual([TINY]);
    const removed = await removeCachedModel('tiny.en', { cacheDir });
    expect(removed).toMatchObject({ repo: TINY, freedBytes: 0, linkTarget: moved });
    expect(existsSync(join(cacheDir, 'models--onnx-community--whisper-tiny.en'))).toBe(false);
    expect(existsSync(join(moved, 'blobs'))).toBe(true);
  });

  it('a lock held by a live process on this host is waited for however old its heartbeat; a dead holder loses it at once', async () => {
    const cacheDir = tempCache();
    await pullModel('tiny.en', opts(cacheDir));
    const lock = join(locksDir(cacheDir, TINY), 'x.whisper-ts.lock');
    mkdirSync(locksDir(cacheDir, TINY), { recursive: true });
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      writeFileSync(lock, JSON.stringify({ pid: holder.pid, host: hostname(), token: 't', ns: readlinkSync('/proc/self/ns/pid') }));
      const old = new Date(Date.now() - 120_000); // four heartbeat periods late: stopped with Ctrl-Z, or asleep
      utimesSync(lock, old, old);
      let waited = false;
      const aborted = await rejection(
        withFileLock(lock, async () => 'taken', { signal: AbortSignal.timeout(400), onWait: () => (waited = true) }),
      );
      expect([aborted.code, waited]).toEqual(['E_ABORTED', true]);
      expect((await rejection(removeCachedModel('tiny.en', { cacheDir }))).message).toContain('being downloaded by another process');
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    // a dead pid in another pid namespace (a container sharing the host name and the cache) is not ours to judge:
    // its fresh heartbeat keeps the lock
    writeFileSync(lock, JSON.stringify({ pid: holder.pid, host: hostname(), token: 't', ns: 'pid:[1]' }));
    expect((await rejection(removeCachedModel('tiny.en', { cacheDir }))).message).toContain('being downloaded by another process');
    // the holder died (a killed pull): its fresh lock no longer stops anyone
    writeFileSync(lock, JSON.stringify({ pid: holder.pid, host: hostname(), token: 't', ns: readlinkSync('/proc/self/ns/pid') }));
    expect(await withFileLock(lock, async () => 'taken', { signal: AbortSignal.timeout(2000) })).toBe('taken');
    writeFileSync(lock, JSON.stringify({ pid: holder.pid, host: hostname(), token: 't', ns: readlinkSync('/proc/self/ns/pid') }));
    expect((await removeCachedModel('tiny.en', { cacheDir })).repo).toBe(TINY);
  });
});
