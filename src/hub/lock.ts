/**
 * A lock file between processes that pull into the same cache. Hand-written rather than a dependency: it is a few
 * lines on `open(…, 'wx')` (atomic create), and it needs this cache's rules — huggingface_hub's own `.lock` files
 * (fcntl locks Node cannot take) are left alone by using a different name, and a holder that died is detected by
 * its pid on this host or by a heartbeat that stops.
 */
import { hostname } from 'node:os';
import { mkdir, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
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
      return { pid: parsed.pid, host: parsed.host, token: parsed.token };
    }
  } catch {
    // unreadable or being written: judged by age alone
  }
  return undefined;
}

/**
 * Whether a lock can be taken over. On this host the holder's pid decides: a holder that is alive keeps its lock
 * however old its heartbeat (a process stopped with Ctrl-Z or a machine waking from sleep has not refreshed it yet),
 * unless the heartbeat is far older than `staleMs` (its pid may have been reused); a dead one loses it at once.
 * From another host (a shared cache), or unreadable, only the heartbeat's age tells.
 */
async function isStale(path: string, staleMs: number): Promise<boolean> {
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
  } catch {
    return false; // gone: the next create attempt will tell
  }
  const age = Date.now() - mtimeMs;
  const body = await readBody(path);
  if (body !== undefined && body.host === hostname()) {
    if (body.pid !== process.pid && !isAlive(body.pid)) return true;
    return age > staleMs * SAME_HOST_PATIENCE;
  }
  return age > staleMs;
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
  return !(await isStale(path, staleMs));
}

/** Holds `lockPath` while `fn` runs; waits (polling) while another process or task holds it. */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const staleMs = options.staleMs ?? 30_000;
  await mkdir(dirname(lockPath), { recursive: true });
  const body: LockBody = { pid: process.pid, host: hostname(), token: `${process.pid}-${Date.now()}-${Math.random()}` };
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
    if (await isStale(lockPath, staleMs)) {
      // Move the stale lock aside atomically: of several waiters, one rename wins and the others retry the create.
      const aside = `${lockPath}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
      try {
        await rename(lockPath, aside);
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
