/**
 * Checks on every name that becomes part of a URL or a path in the cache: repo ids, revisions, file names, and the
 * etags and commits a server sends back. A bad value is refused before any request or write.
 */
import { WhisperError } from '../errors.js';

// Control characters (C0, DEL, C1): never part of a repo id, revision or file name.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function show(value: string): string {
  return JSON.stringify(value);
}

function invalid(message: string): WhisperError {
  return new WhisperError('E_HUB_INVALID_ID', message);
}

// One part of a repo id as the Hub accepts it (huggingface_hub utils/_validators.py `validate_repo_id`, restricted
// to ASCII): letters, digits, `_`, `-`, `.`; starts and ends with a letter, digit or `_`; at most 96 characters.
const REPO_PART = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$/;

/** Throws `E_HUB_INVALID_ID` unless `repo` is `name` or `org/name` with the Hub's characters. */
export function assertRepoId(repo: string): void {
  if (typeof repo !== 'string' || repo.length === 0) throw invalid('the repo id is empty');
  if (CONTROL.test(repo)) throw invalid(`the repo id ${show(repo)} contains control characters`);
  if (repo.includes('\\')) throw invalid(`the repo id ${show(repo)} contains a backslash`);
  if (repo.startsWith('/')) throw invalid(`the repo id ${show(repo)} is an absolute path, not org/name`);
  if (repo.includes('..')) throw invalid(`the repo id ${show(repo)} contains ".."`);
  if (repo.includes('--')) throw invalid(`the repo id ${show(repo)} contains "--" (not allowed by the Hub)`);
  const parts = repo.split('/');
  if (parts.length > 2) throw invalid(`the repo id ${show(repo)} has more than one "/" (expected org/name)`);
  for (const part of parts) {
    if (!REPO_PART.test(part)) {
      throw invalid(
        `the repo id ${show(repo)} is not valid: use letters, digits, "-", "_" and "." (org/name, at most 96 characters each)`,
      );
    }
  }
  if (repo.endsWith('.git')) throw invalid(`the repo id ${show(repo)} ends with ".git"`);
}

/**
 * Throws `E_HUB_INVALID_ID` unless `revision` is a plausible branch, tag, `refs/pr/N` or commit: printable ASCII
 * without spaces, backslashes, `..`, empty or `.` segments, or a leading/trailing `/` (git's ref-name rules, which
 * also keep the revision safe as a path under `refs/`).
 */
export function assertRevision(revision: string): void {
  if (typeof revision !== 'string' || revision.length === 0) throw invalid('the revision is empty');
  if (revision.length > 255) throw invalid('the revision is longer than 255 characters');
  if (CONTROL.test(revision)) throw invalid(`the revision ${show(revision)} contains control characters`);
  if (revision.includes('\\')) throw invalid(`the revision ${show(revision)} contains a backslash`);
  if (revision.startsWith('/') || revision.endsWith('/')) {
    throw invalid(`the revision ${show(revision)} starts or ends with "/"`);
  }
  if (revision.includes('..')) throw invalid(`the revision ${show(revision)} contains ".."`);
  if (!/^[\x21-\x7e]+$/.test(revision) || /[~^:?*[]/.test(revision) || revision.includes('@{')) {
    throw invalid(`the revision ${show(revision)} contains characters a git ref cannot have`);
  }
  for (const segment of revision.split('/')) {
    if (segment === '' || segment === '.' || segment.startsWith('.') || segment.endsWith('.lock')) {
      throw invalid(`the revision ${show(revision)} has an invalid path segment ${show(segment)}`);
    }
  }
}

/**
 * Throws `E_HUB_INVALID_ID` unless `path` is a relative file path inside a repo: `/`-separated, no `..` or `.`
 * segments, no empty segments, no backslash, no drive letter, no control characters.
 */
export function assertRepoFilePath(path: string): void {
  if (typeof path !== 'string' || path.length === 0) throw invalid('the file name is empty');
  if (CONTROL.test(path)) throw invalid(`the file name ${show(path)} contains control characters`);
  if (path.includes('\\')) throw invalid(`the file name ${show(path)} contains a backslash`);
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) throw invalid(`the file name ${show(path)} is an absolute path`);
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw invalid(`the file name ${show(path)} has an invalid path segment ${show(segment)}`);
    }
  }
}

/** huggingface_hub's `_normalize_etag`: drops a weak `W/` prefix and the quotes. */
export function normalizeEtag(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  let etag = raw.trim();
  if (etag.startsWith('W/')) etag = etag.slice(2);
  etag = etag.replace(/^"+|"+$/g, '');
  return etag.length > 0 ? etag : undefined;
}

/** An etag becomes a file name under `blobs/`: refuse anything but a plain token. */
export function assertSafeEtag(etag: string, file: string): void {
  if (!/^[A-Za-z0-9_.+=-]{1,200}$/.test(etag) || etag.includes('..') || etag.startsWith('.')) {
    throw invalid(`the server sent an unusable ETag ${show(etag)} for ${file}`);
  }
}

export const COMMIT_RE = /^[0-9a-f]{40}$/;

/** A commit becomes a folder under `snapshots/`: it must be a 40-digit hex git sha. */
export function assertCommit(commit: string, where: string): void {
  if (!COMMIT_RE.test(commit)) throw invalid(`the server sent an invalid commit ${show(commit)} for ${where}`);
}

/** An LFS file's etag is the sha256 of its bytes. */
export function isSha256(etag: string): boolean {
  return /^[0-9a-f]{64}$/.test(etag);
}
