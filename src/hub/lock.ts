/**
 * A lock file between processes that pull into the same cache. Hand-written rather than a dependency: it is a few
 * lines on `open(…, 'wx')` (atomic create), and it needs this cache's rules — huggingface_hub's own `.lock` files
 * (fcntl locks Node cannot take) are left alone by using a different name, and a holder that died is detected by
 * its pid on this host or by a heartbeat that stops.
 */
import { hostname } from 'node:os';
import { readlinkSync } from 'node:fs';
import { link, mkdir, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WhisperError } from '../errors.js';

export interface LockOptions {
  signal?: AbortSignal | undefined;
  /** A lock whose heartbeat is older than this is taken over. Default 30 s. */
  staleMs?: number;
  /** Called once when the lock is busy, so the caller can say it is waiting. */
  onWait?: () => void;
}

interface LockBody {
  pid: number;
  host: string;
  token: string;
  /** The holder's pid namespace (Linux): containers that share a host name and a cache need not see each other's pids. */
  ns?: string;
}

let ownNamespace: string | null | undefined;

/** This process's pid namespace (`pid:[4026531836]`), or null where /proc does not tell. */
function pidNamespace(): string | null {
  if (ownNamespace === undefined) {
    try {
      ownNamespace = readlinkSync('/proc/self/ns/pid');
    } catch {
      ownNamespace = null;
    }
  }
  return ownNamespace;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readBody(path: string): Promise<LockBody | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockBody>;
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string' && typeof parsed.token === 'string') {
      return { pid: parsed.pid, host: parsed.host, token: parsed.token, ...(typeof parsed.ns === 'string' ? { ns: parsed.ns } : {}) };
    }
  } catch {
    // unreadable or being written: judged by age alone
  }
  return undefined;
}

/** Whether this process can see the holder's pid: the same host and (where known) the same pid namespace. */
function seesPid(body: LockBody): boolean {
  return body.host === hostname() && (body.ns ?? null) === pidNamespace();
}

/**
 * Whether a lock can be taken over (and the token of the lock so judged). Where this process sees the holder's pid,
 * the pid decides: a holder that is alive keeps its lock however old its heartbeat (a process stopped with Ctrl-Z or
 * a machine waking from sleep has not refreshed it yet), unless the heartbeat is far older than `staleMs` (its pid
 * may have been reused); a dead one loses it at once. Otherwise (another host or container on a shared cache, or an
 * unreadable lock) only the heartbeat's age tells.
 */
async function isStale(path: string, staleMs: number): Promise<{ stale: boolean; token?: string }> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
  } catch {
    return { stale: false }; // gone: the next create attempt will tell
  }
  const age = Date.now() - mtimeMs;
  const body = await readBody(path);
  const token = body === undefined ? {} : { token: body.token };
  if (body !== undefined && seesPid(body)) {
    if (body.pid !== process.pid && !isAlive(body.pid)) return { stale: true, ...token };
    return { stale: age > staleMs * SAME_HOST_PATIENCE, ...token };
  }
  return { stale: age > staleMs, ...token };
}

/** How many heartbeat periods (`staleMs`) a live holder on this host may go without one. */
const SAME_HOST_PATIENCE = 20;

/** Whether another process (or task) holds the lock at `path` now. */
export async function isLockHeld(path: string, staleMs = 30_000): Promise<boolean> {
  try {
    await stat(path);
  } catch {
    return false;
  }
  return !(await isStale(path, staleMs)).stale;
}

/** Holds `lockPath` while `fn` runs; waits (polling) while another process or task holds it. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const staleMs = options.staleMs ?? 30_000;
  await mkdir(dirname(lockPath), { recursive: true });
  const ns = pidNamespace();
  const body: LockBody = {
    pid: process.pid,
    host: hostname(),
    token: `${process.pid}-${Date.now()}-${Math.random()}`,
    ...(ns !== null ? { ns } : {}),
  };
  let waited = false;
  let delay = 50;
  for (;;) {
    if (options.signal?.aborted) throw new WhisperError('E_ABORTED', 'the download was aborted', { cause: options.signal.reason });
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(JSON.stringify(body));
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new WhisperError('E_IO', `could not create the lock file ${lockPath}: ${(error as Error).message}`, { cause: error });
      }
    }
    const judged = await isStale(lockPath, staleMs);
    if (judged.stale) {
      // Move the stale lock aside atomically: of several waiters, one rename wins and the others retry the create.
      const aside = `${lockPath}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
      try {
        await rename(lockPath, aside);
        // a faster waiter may have taken the stale lock over and made a new one meanwhile: that one goes back
        // (link fails if yet another lock was made since)
        if ((await readBody(aside))?.token !== judged.token) await link(aside, lockPath).catch(() => undefined);
        await unlink(aside).catch(() => undefined);
      } catch {
        // someone else took it over first
      }
      continue;
    }
    if (!waited) {
      waited = true;
      options.onWait?.();
    }
    try {
      await sleep(delay, undefined, options.signal === undefined ? {} : { signal: options.signal });
    } catch (cause) {
      throw new WhisperError('E_ABORTED', 'the download was aborted', { cause });
    }
    delay = Math.min(500, delay * 2);
  }

  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(lockPath, now, now).catch(() => undefined);
  }, Math.max(1000, Math.floor(staleMs / 3)));
  heartbeat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
    // Remove the lock only if it is still ours (it could have been taken over after a long stall).
    const current = await readBody(lockPath);
    if (current?.token === body.token) await unlink(lockPath).catch(() => undefined);
  }
}
