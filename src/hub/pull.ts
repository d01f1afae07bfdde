/** `pullModel`: a Whisper ONNX repo (one dtype) from the Hub into the shared cache. */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isWhisperError, throwIfAborted, WhisperError } from '../errors.js';
import {
  blobPath,
  findCachedCommit,
  linkSnapshotFile,
  locksDir,
  repoCacheDir,
  snapshotDir,
  snapshotFileReady,
  writeRef,
} from './cache.js';
import { DEFAULT_REVISION, resolveCacheConfig, resolveHubConfig, type ResolvedHubConfig } from './config.js';
import { downloadBlob } from './download.js';
import { DEFAULT_PULL_DTYPE, dtypesPresent, isDtype, isExternalDataOf, onnxFilesFor, type Dtype } from './dtypes.js';
import { HubClient, retriesFor, type RequestContext } from './http.js';
import { withFileLock } from './lock.js';
import { resolveModelId } from './names.js';
import type { PullOptions, PullProgressEvent } from './types.js';
import { assertCommit, assertRepoFilePath, assertRevision, assertSafeEtag, isSha256 } from './validate.js';

/** The json and tokenizer files a Whisper model folder may have; each is fetched when the repo has it. */
export const SIDE_FILES: readonly string[] = [
  'config.json',
  'generation_config.json',
  'preprocessor_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'special_tokens_map.json',
  'normalizer.json',
];

const HEAD_CONCURRENCY = 4;
const DOWNLOAD_CONCURRENCY = 3;

export function checkDtype(dtype: unknown): Dtype | undefined {
  if (dtype === undefined) return undefined;
  if (typeof dtype !== 'string' || !isDtype(dtype)) {
    throw new WhisperError('E_OPTIONS', `unknown dtype ${JSON.stringify(dtype)}: use one of fp32, fp16, q8, int8, uint8, q4, q4f16, bnb4`);
  }
  return dtype;
}

/** What the model-info API says about a revision. */
export interface RepoInfo {
  commit: string;
  siblings: { path: string; size: number | undefined; lfsSha256: string | undefined }[];
  gated: boolean;
  private: boolean;
}

function parseRepoInfo(json: unknown, repo: string): RepoInfo {
  const bad = (what: string) => new WhisperError('E_HUB_NETWORK', `the model-info answer for ${repo} is not what a Hub sends (${what})`);
  if (typeof json !== 'object' || json === null) throw bad('not an object');
  const obj = json as Record<string, unknown>;
  if (typeof obj.sha !== 'string') throw bad('no "sha"');
  assertCommit(obj.sha, repo);
  if (!Array.isArray(obj.siblings)) throw bad('no "siblings"');
  const siblings: RepoInfo['siblings'] = [];
  for (const entry of obj.siblings as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const s = entry as Record<string, unknown>;
    if (typeof s.rfilename !== 'string') continue;
    const lfs = typeof s.lfs === 'object' && s.lfs !== null ? (s.lfs as Record<string, unknown>) : undefined;
    const size = typeof s.size === 'number' ? s.size : typeof lfs?.size === 'number' ? lfs.size : undefined;
    const sha = typeof lfs?.sha256 === 'string' && isSha256(lfs.sha256) ? lfs.sha256 : undefined;
    siblings.push({ path: s.rfilename, size, lfsSha256: sha });
  }
  return { commit: obj.sha, siblings, gated: obj.gated !== undefined && obj.gated !== false, private: obj.private === true };
}

export async function fetchRepoInfo(
  client: HubClient,
  repo: string,
  revision: string,
  options: { blobs?: boolean; retries?: number; onRetry?: (info: { attempt: number; retries: number; delayMs: number; reason: string }) => void } = {},
): Promise<RepoInfo> {
  const url = client.apiUrl(repo, revision, options.blobs === true ? '?blobs=true' : '');
  const json = await client.getJson(url, { repo, revision }, options.retries, options.onRetry);
  return parseRepoInfo(json, repo);
}

/** The variant of each graph a pull fetches. */
export interface PullParts {
  encoder: Dtype;
  decoder: Dtype;
}

function partsLabel(parts: PullParts): string {
  return parts.encoder === parts.decoder ? parts.encoder : `${parts.encoder} encoder / ${parts.decoder} decoder`;
}

/** One dtype for both graphs, or each graph's own. */
function toParts(dtype: Dtype | PullParts): PullParts {
  return typeof dtype === 'string' ? { encoder: dtype, decoder: dtype } : dtype;
}

/** The encoder and decoder files of `dtype`, as repo paths. */
function partFiles(dtype: Dtype | PullParts): { encoder: string; decoder: string } {
  const parts = toParts(dtype);
  return { encoder: onnxFilesFor(parts.encoder).encoder, decoder: onnxFilesFor(parts.decoder).decoder };
}

/** The repo paths a pull of `dtype` (or of one variant per graph) fetches, from the repo's file list. */
export function planFiles(siblings: readonly string[], dtype: Dtype | PullParts, repo: string, revision: string): string[] {
  const names = new Set(siblings);
  const parts = toParts(dtype);
  const { encoder, decoder } = partFiles(parts);
  const missing = [encoder, decoder].filter((f) => !names.has(f));
  if (missing.length > 0) {
    const available = dtypesPresent(names);
    throw new WhisperError(
      'E_HUB_NOT_FOUND',
      `${repo}@${revision} has no ${partsLabel(parts)} weights (missing ${missing.join(', ')}); ` +
        (available.length > 0 ? `dtypes available: ${available.join(', ')}` : 'it holds no Whisper ONNX files (onnx/encoder_model*.onnx)'),
    );
  }
  const external = siblings.filter((s) => isExternalDataOf(encoder, s) || isExternalDataOf(decoder, s)).sort();
  const files = [encoder, decoder, ...external, ...SIDE_FILES.filter((f) => names.has(f))];
  for (const file of files) assertRepoFilePath(file);
  return files;
}

/**
 * A usable snapshot of the repo in the cache for `revision`: with `dtype`'s two ONNX files (or each graph's own
 * variant), or (no dtype asked) with any complete dtype.
 */
export async function findCachedModel(
  cacheDir: string,
  repo: string,
  revision: string,
  dtype: Dtype | PullParts | undefined,
): Promise<{ commit: string; path: string; dtypes: Dtype[] } | undefined> {
  const commit = await findCachedCommit(cacheDir, repo, revision);
  if (commit === undefined) return undefined;
  const repoDir = repoCacheDir(cacheDir, repo);
  const onnx: string[] = [];
  try {
    for (const name of await readdir(join(snapshotDir(repoDir, commit), 'onnx'))) {
      if (await snapshotFileReady(repoDir, commit, `onnx/${name}`)) onnx.push(`onnx/${name}`);
    }
  } catch {
    // no onnx folder
  }
  const dtypes = dtypesPresent(onnx);
  const wanted = dtype === undefined ? undefined : partFiles(dtype);
  const usable = wanted === undefined ? dtypes.length > 0 : onnx.includes(wanted.encoder) && onnx.includes(wanted.decoder);
  return usable ? { commit, path: snapshotDir(repoDir, commit), dtypes } : undefined;
}

async function offlineError(
  cacheDir: string,
  repo: string,
  revision: string,
  dtype: Dtype | PullParts | undefined,
): Promise<WhisperError> {
  const commit = await findCachedCommit(cacheDir, repo, revision);
  const parts = dtype === undefined ? undefined : toParts(dtype);
  const label = parts === undefined ? undefined : partsLabel(parts);
  const what = `${repo} (revision ${revision}${label !== undefined ? `, ${label}` : ''})`;
  const partial = commit !== undefined ? `; the cache has revision ${commit.slice(0, 7)} but without ${label ?? 'any complete'} ONNX weights` : '';
  // `models pull` takes one dtype: one command per variant the two graphs need
  const variants = parts === undefined ? [undefined] : [...new Set([parts.encoder, parts.decoder])];
  const revisionFlag = revision !== DEFAULT_REVISION ? ` --revision ${revision}` : '';
  const pulls = variants
    .map((d) => `whisper-ts models pull ${repo}${revisionFlag}${d !== undefined ? ` --dtype ${d}` : ''}`)
    .join(' and ');
  return new WhisperError(
    'E_HUB_OFFLINE',
    `offline mode (HF_HUB_OFFLINE) is on and ${what} is not in the cache at ${cacheDir}${partial}. ` +
      `Pull it first while online (${pulls}), or unset HF_HUB_OFFLINE.`,
  );
}

/** Runs `tasks` with at most `limit` at a time; after a failure starts no new task, waits for the running ones. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

async function blobComplete(path: string, size: number | undefined): Promise<boolean> {
  try {
    const st = await stat(path);
    return st.isFile() && (size === undefined || st.size === size);
  } catch {
    return false;
  }
}

interface PlannedFile {
  path: string;
  cached: boolean;
  etag?: string;
  size?: number;
  sha256?: string;
  location?: string;
  needsDownload?: boolean;
}

/**
 * Downloads `id` (a short name or `org/name`) for one dtype into the huggingface_hub cache and returns the local
 * snapshot folder. Only the dtype's two ONNX graphs (with their external-data files) and the json/tokenizer files
 * are fetched. With `offline` (or `HF_HUB_OFFLINE=1`), or when the server cannot be reached, a cached snapshot is
 * returned instead.
 */
export async function pullModel(id: string, options: PullOptions = {}): Promise<string> {
  const repo = resolveModelId(id);
  const revision = options.revision ?? DEFAULT_REVISION;
  assertRevision(revision);
  const askedDtype = checkDtype(options.dtype);
  const dtype = askedDtype ?? DEFAULT_PULL_DTYPE;
  const askedEncoder = checkDtype(options.encoderDtype);
  const askedDecoder = checkDtype(options.decoderDtype);
  // one graph in another variant: both graphs' variants are what the pull needs (and what the cache must hold)
  const parts: PullParts | undefined =
    askedEncoder !== undefined || askedDecoder !== undefined
      ? { encoder: askedEncoder ?? dtype, decoder: askedDecoder ?? dtype }
      : undefined;
  const asked = parts ?? askedDtype;
  const { signal } = options;
  throwIfAborted(signal);
  const emit = (event: PullProgressEvent): void => options.onProgress?.(event);

  // offline, the network settings are not read (a bad endpoint or proxy does not stop the cache from being used)
  const local = resolveCacheConfig(options);
  if (local.offline) {
    const hit = await findCachedModel(local.cacheDir, repo, revision, asked);
    if (hit === undefined) throw await offlineError(local.cacheDir, repo, revision, asked);
    emit({ type: 'cache-hit', repo, commit: hit.commit, path: hit.path, reason: 'offline' });
    return hit.path;
  }
  const config = resolveHubConfig(options);

  const client = new HubClient(config, signal);
  try {
    const onRetry =
      (path: string | undefined) =>
      (info: { attempt: number; retries: number; delayMs: number; reason: string }): void =>
        emit({ type: 'retry', path, ...info });
    let info: RepoInfo;
    try {
      // First try without retries: when the network is down and the model is cached, answer at once (as
      // huggingface_hub's HEAD without retries before falling back to the cache).
      info = await fetchRepoInfo(client, repo, revision, { retries: 0 });
    } catch (error) {
      if (!isWhisperError(error) || error.code !== 'E_HUB_NETWORK') throw error;
      const hit = await findCachedModel(config.cacheDir, repo, revision, asked);
      if (hit !== undefined) {
        emit({ type: 'cache-hit', repo, commit: hit.commit, path: hit.path, reason: 'network-error', detail: error.message });
        return hit.path;
      }
      // a host name that did not resolve gets fewer tries in all (http.ts retriesFor), not the full count
      const all = retriesFor(error.cause, config.retry.retries);
      if (all === 0) throw error;
      const delayMs = client.backoffMs(1);
      emit({ type: 'retry', path: undefined, attempt: 1, retries: all, delayMs, reason: error.message });
      await client.wait(delayMs);
      // counted on from the attempt above (2/5, 3/5 …), not from 1 again
      info = await fetchRepoInfo(client, repo, revision, {
        retries: all - 1,
        onRetry: (i) => onRetry(undefined)({ ...i, attempt: i.attempt + 1, retries: all }),
      });
    }
    return await download(client, config, repo, revision, parts ?? { encoder: dtype, decoder: dtype }, info, emit);
  } finally {
    await client.close();
  }
}

async function download(
  client: HubClient,
  config: ResolvedHubConfig,
  repo: string,
  revision: string,
  parts: PullParts,
  info: RepoInfo,
  emit: (event: PullProgressEvent) => void,
): Promise<string> {
  const { commit } = info;
  const repoDir = repoCacheDir(config.cacheDir, repo);
  const paths = planFiles(
    info.siblings.map((s) => s.path),
    parts,
    repo,
    revision,
  );
  const siblingOf = new Map(info.siblings.map((s) => [s.path, s]));
  const files: PlannedFile[] = [];
  for (const path of paths) files.push({ path, cached: await snapshotFileReady(repoDir, commit, path) });

  const onRetry =
    (path: string | undefined) =>
    (r: { attempt: number; retries: number; delayMs: number; reason: string }): void =>
      emit({ type: 'retry', path, ...r });

  // Metadata of every file not in the snapshot yet, pinned to the commit the API reported.
  await pool(
    files.filter((f) => !f.cached),
    HEAD_CONCURRENCY,
    async (file) => {
      const ctx: RequestContext = { repo, revision, file: file.path };
      const meta = await client.head(client.resolveUrl(repo, commit, file.path), ctx, onRetry(file.path));
      if (meta.etag === undefined) {
        throw new WhisperError('E_HUB_NETWORK', `the server sent no ETag for ${file.path} of ${repo}: is the endpoint a Hub or a Hub mirror?`);
      }
      assertSafeEtag(meta.etag, file.path);
      const sibling = siblingOf.get(file.path);
      file.etag = meta.etag;
      const size = meta.size ?? sibling?.size;
      if (size !== undefined) file.size = size;
      const sha = isSha256(meta.etag) ? meta.etag : sibling?.lfsSha256;
      if (sha !== undefined) file.sha256 = sha;
      file.location = meta.location;
      file.needsDownload = !(await blobComplete(blobPath(repoDir, meta.etag), file.size));
    },
  );

  const toDownload = files.filter((f) => f.needsDownload === true);
  const totalBytes = toDownload.reduce((sum, f) => sum + (f.size ?? 0), 0);
  emit({
    type: 'resolved',
    repo,
    revision,
    commit,
    dtype: parts.decoder,
    ...(parts.encoder !== parts.decoder ? { parts } : {}),
    files: files.map((f) => ({ path: f.path, size: f.size, cached: f.cached || f.needsDownload !== true })),
    downloadBytes: totalBytes,
    cacheDir: config.cacheDir,
  });

  const progress = new Map<string, number>();
  let downloadedBytes = 0;
  let doneBytes = 0;
  const report = (path: string, fileBytes: number, fileSize: number | undefined): void => {
    const before = progress.get(path) ?? 0;
    progress.set(path, fileBytes);
    doneBytes += fileBytes - before;
    emit({ type: 'progress', path, fileBytes, fileSize, bytes: doneBytes, totalBytes });
  };

  await pool(
    files.filter((f) => !f.cached),
    DOWNLOAD_CONCURRENCY,
    async (file) => {
      const etag = file.etag as string;
      const blob = blobPath(repoDir, etag);
      let downloaded = false;
      if (file.needsDownload === true) {
        await withFileLock(
          join(locksDir(config.cacheDir, repo), `${etag}.whisper-ts.lock`),
          async () => {
            // Another process may have finished this blob while we waited for the lock.
            if (await blobComplete(blob, file.size)) return;
            downloaded = true;
            await downloadBlob({
              client,
              ctx: { repo, revision, file: file.path },
              url: file.location as string,
              blob,
              expectedSize: file.size,
              sha256: file.sha256,
              onStart: (resumeFrom) => {
                emit({ type: 'file-start', path: file.path, size: file.size, resumeFrom });
                report(file.path, resumeFrom, file.size);
              },
              onBytes: (received, fileBytes) => {
                downloadedBytes += received;
                report(file.path, fileBytes, file.size);
              },
              onRetry: onRetry(file.path),
            });
          },
          { signal: client.signal, onWait: () => emit({ type: 'waiting', path: file.path }) },
        );
        if (!downloaded) report(file.path, file.size ?? 0, file.size);
      }
      await linkSnapshotFile(repoDir, commit, file.path, blob);
      emit({ type: 'file-done', path: file.path, size: file.size ?? 0, downloaded });
    },
  );

  await writeRef(repoDir, revision, commit);
  const path = snapshotDir(repoDir, commit);
  emit({ type: 'done', repo, commit, path, downloadedBytes });
  return path;
}
