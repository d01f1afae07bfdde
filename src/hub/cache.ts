/**
 * The huggingface_hub cache layout, read and written the way huggingface_hub does (file_download.py,
 * utils/_cache_manager.py), so both tools share one copy of every model:
 *
 *   {cacheDir}/models--{org}--{name}/
 *     blobs/{etag}                       the bytes (sha256 for LFS files, the git blob id otherwise)
 *     blobs/{etag}.incomplete            a download in progress (resumable)
 *     snapshots/{commit}/{path}          relative symlink → ../../blobs/{etag} (one more ../ per folder level)
 *     refs/{revision}                    the commit a branch or tag pointed to
 *   {cacheDir}/.locks/models--{org}--{name}/{etag}.whisper-ts.lock
 */
import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { WhisperError } from '../errors.js';
import { resolveCacheConfig } from './config.js';
import { DTYPES, dtypesPresent, type Dtype } from './dtypes.js';
import { resolveModelId } from './names.js';
import { isLockHeld } from './lock.js';
import type { CachedModel, CachedRevision, HubOptions, RemovedModel } from './types.js';
import { assertRepoId, COMMIT_RE } from './validate.js';

/** `org/name` → `models--org--name` (huggingface_hub `repo_folder_name`). */
export function repoFolderName(repo: string): string {
  return ['models', ...repo.split('/')].join('--');
}

export function repoCacheDir(cacheDir: string, repo: string): string {
  return join(cacheDir, repoFolderName(repo));
}

export function locksDir(cacheDir: string, repo: string): string {
  return join(cacheDir, '.locks', repoFolderName(repo));
}

export function blobPath(repoDir: string, etag: string): string {
  return join(repoDir, 'blobs', etag);
}

export function snapshotDir(repoDir: string, commit: string): string {
  return join(repoDir, 'snapshots', commit);
}

/** A repo path as a local path under a snapshot. */
export function snapshotFile(repoDir: string, commit: string, path: string): string {
  return join(snapshotDir(repoDir, commit), ...path.split('/'));
}

function isErrno(error: unknown, ...codes: string[]): boolean {
  return typeof error === 'object' && error !== null && codes.includes((error as NodeJS.ErrnoException).code ?? '');
}

/** True when the snapshot entry exists and (through its symlink) is a regular file. */
export async function snapshotFileReady(repoDir: string, commit: string, path: string): Promise<boolean> {
  try {
    return (await stat(snapshotFile(repoDir, commit, path))).isFile();
  } catch {
    return false;
  }
}

/** The commit `refs/{revision}` points to, if recorded. */
export async function readRef(repoDir: string, revision: string): Promise<string | undefined> {
  try {
    const commit = (await readFile(join(repoDir, 'refs', ...revision.split('/')), 'utf8')).trim();
    return COMMIT_RE.test(commit) ? commit : undefined;
  } catch {
    return undefined;
  }
}

async function atomicWrite(path: string, data: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
}

/** Records `refs/{revision}` = commit (no newline, as huggingface_hub writes it); nothing for a commit revision. */
export async function writeRef(repoDir: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  if ((await readRef(repoDir, revision)) === commit) return;
  await atomicWrite(join(repoDir, 'refs', ...revision.split('/')), commit);
}

/**
 * Points `snapshots/{commit}/{path}` at the blob with a relative symlink, replacing whatever was there atomically
 * (a temporary link renamed over it). Where symlinks are not allowed (Windows without developer mode), the blob is
 * copied, as huggingface_hub does.
 */
export async function linkSnapshotFile(repoDir: string, commit: string, path: string, blob: string): Promise<void> {
  const target = snapshotFile(repoDir, commit, path);
  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
  const rel = relative(dirname(target), blob).split(sep).join('/');
  try {
    await symlink(rel, tmp);
  } catch (error) {
    if (!isErrno(error, 'EPERM', 'EACCES', 'ENOTSUP', 'EOPNOTSUPP')) throw error;
    await copyFile(blob, tmp);
  }
  try {
    await rename(tmp, target);
  } catch (error) {
    await unlink(tmp).catch(() => undefined);
    throw error;
  }
}

/**
 * The snapshot a revision resolves to in the cache, as huggingface_hub's `try_to_load_from_cache` finds it: a commit
 * is its own snapshot; a branch or tag goes through `refs/`.
 */
export async function findCachedCommit(cacheDir: string, repo: string, revision: string): Promise<string | undefined> {
  const repoDir = repoCacheDir(cacheDir, repo);
  const commit = COMMIT_RE.test(revision) ? revision : await readRef(repoDir, revision);
  if (commit === undefined) return undefined;
  try {
    return (await stat(snapshotDir(repoDir, commit))).isDirectory() ? commit : undefined;
  } catch {
    return undefined;
  }
}

async function walkFiles(root: string, prefix = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(join(root, prefix), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const entry of entries) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walkFiles(root, rel)));
    else if (!entry.name.endsWith('.tmp')) out.push(rel);
  }
  return out;
}

/** Size of a file, following symlinks (huggingface_hub's shared blob store links `blobs/{etag}` elsewhere). */
async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readRefs(repoDir: string): Promise<Map<string, string[]>> {
  const byCommit = new Map<string, string[]>();
  for (const ref of await walkFiles(join(repoDir, 'refs'))) {
    const commit = await readRef(repoDir, ref);
    if (commit === undefined) continue;
    byCommit.set(commit, [...(byCommit.get(commit) ?? []), ref]);
  }
  return byCommit;
}

async function describeRepo(repoDir: string, repo: string): Promise<CachedModel> {
  const refs = await readRefs(repoDir);
  const revisions: CachedRevision[] = [];
  let snapshots: string[] = [];
  try {
    snapshots = (await readdir(join(repoDir, 'snapshots'), { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    // no snapshots yet (a pull that never finished a file)
  }
  for (const commit of snapshots.sort()) {
    const dir = snapshotDir(repoDir, commit);
    const files = (await walkFiles(dir)).sort();
    const blobs = new Map<string, number>();
    const present: string[] = [];
    for (const file of files) {
      const full = join(dir, ...file.split('/'));
      try {
        const st = await stat(full);
        const link = await lstat(full);
        const key = link.isSymbolicLink() ? `${st.dev}:${st.ino}` : full;
        blobs.set(key, st.size);
        present.push(file);
      } catch {
        // a broken link: not counted as present
      }
    }
    revisions.push({
      commit,
      refs: (refs.get(commit) ?? []).sort(),
      path: dir,
      files: present,
      dtypes: dtypesPresent(present),
      sizeOnDisk: [...blobs.values()].reduce((a, b) => a + b, 0),
    });
  }
  let sizeOnDisk = 0;
  let incompleteBytes = 0;
  try {
    for (const name of await readdir(join(repoDir, 'blobs'))) {
      const size = await sizeOf(join(repoDir, 'blobs', name));
      sizeOnDisk += size;
      if (name.endsWith('.incomplete')) incompleteBytes += size;
    }
  } catch {
    // no blobs folder
  }
  const dtypes = new Set<Dtype>(revisions.flatMap((r) => r.dtypes));
  return {
    repo,
    path: repoDir,
    revisions,
    dtypes: DTYPES.filter((d) => dtypes.has(d)),
    sizeOnDisk,
    incompleteBytes,
  };
}

/** `models--org--name` → `org/name`, or undefined for anything else in the cache folder. */
function repoFromFolder(name: string): string | undefined {
  if (!name.startsWith('models--')) return undefined;
  const repo = name.slice('models--'.length).replaceAll('--', '/');
  try {
    assertRepoId(repo);
    return repo;
  } catch {
    return undefined;
  }
}

/** Every model repo in the cache (huggingface_hub's and ours alike), sorted by repo id. */
export async function listCachedModels(options: Pick<HubOptions, 'cacheDir'> = {}): Promise<CachedModel[]> {
  const { cacheDir } = resolveCacheConfig(options);
  let entries;
  try {
    entries = await readdir(cacheDir, { withFileTypes: true });
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return [];
    throw new WhisperError('E_IO', `could not read the cache folder ${cacheDir}: ${(error as Error).message}`, { cause: error });
  }
  const models: CachedModel[] = [];
  for (const entry of entries) {
    // a repo folder moved elsewhere and linked back (as huggingface_hub's scan_cache_dir still lists it)
    if (!entry.isDirectory() && !(entry.isSymbolicLink() && (await isFolder(join(cacheDir, entry.name))))) continue;
    const repo = repoFromFolder(entry.name);
    if (repo === undefined) continue;
    models.push(await describeRepo(join(cacheDir, entry.name), repo));
  }
  return models.sort((a, b) => a.repo.localeCompare(b.repo));
}

async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Locks of a live pull (ours: a holder alive on this host, or a recent heartbeat) under `.locks/models--…`. */
async function activePull(cacheDir: string, repo: string): Promise<boolean> {
  const dir = locksDir(cacheDir, repo);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return false;
  }
  for (const name of names) {
    if (name.endsWith('.whisper-ts.lock') && (await isLockHeld(join(dir, name)))) return true;
  }
  return false;
}

/**
 * Deletes a repo from the cache: its `models--…` folder (blobs, snapshots, refs, partial downloads) and its lock
 * folder. Symlinks are removed, never followed. Throws `E_HUB_NOT_FOUND` when the repo is not cached.
 */
export async function removeCachedModel(name: string, options: Pick<HubOptions, 'cacheDir'> = {}): Promise<RemovedModel> {
  // a size name (tiny.en, large-v3 …) as pullModel and modelInfo take it, or a repo id
  const repo = resolveModelId(name);
  const { cacheDir } = resolveCacheConfig(options);
  const repoDir = repoCacheDir(cacheDir, repo);
  let link: string | undefined;
  try {
    const entry = await lstat(repoDir);
    if (entry.isSymbolicLink() && (await isFolder(repoDir))) link = await readlink(repoDir);
    else if (!entry.isDirectory()) throw new Error('not a folder');
  } catch {
    throw new WhisperError('E_HUB_NOT_FOUND', `${repo} is not in the cache (${cacheDir})`);
  }
  if (await activePull(cacheDir, repo)) {
    throw new WhisperError('E_IO', `${repo} is being downloaded by another process right now; try again when it has finished`);
  }
  // a linked folder: the link goes, what it names stays (symlinks are never followed to delete)
  const { sizeOnDisk } = link === undefined ? await describeRepo(repoDir, repo) : { sizeOnDisk: 0 };
  try {
    if (link !== undefined) await unlink(repoDir);
    else await rm(repoDir, { recursive: true, force: true });
    await rm(locksDir(cacheDir, repo), { recursive: true, force: true });
  } catch (error) {
    throw new WhisperError('E_IO', `could not remove ${repoDir}: ${(error as Error).message}`, { cause: error });
  }
  return { repo, path: repoDir, freedBytes: sizeOnDisk, ...(link !== undefined ? { linkTarget: link } : {}) };
}
