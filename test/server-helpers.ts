/** A real `whisper-ts serve` process on 127.0.0.1 for the server tests (built CLI: npm run build first). */
import { spawn, execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './helpers/paths.js';

export interface ServerProcess {
  url: string;
  pid: number;
  /** Everything the process wrote on stderr so far. */
  stderr(): string;
  /** Whether the process has exited (a crash, when the test did not stop it). */
  exited(): boolean;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

export async function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const bin = join(ROOT, 'bin', 'whisper-ts.js');
  if (!existsSync(join(ROOT, 'dist', 'server', 'public', 'index.html'))) throw new Error('run `npm run build` first');
  const child = spawn(process.execPath, [bin, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], {
    env: { ...process.env, HF_HUB_OFFLINE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    });
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+?) /.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code} before listening:\n${err}`)));
  });
  return {
    url,
    pid: child.pid ?? -1,
    stderr: () => err,
    exited: () => exitCode !== undefined,
    stop: async () => {
      if (exitCode === undefined) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[1]) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** One value of a Prometheus text exposition (the first line of that name and labels). */
export async function metric(url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  if (line === undefined) throw new Error(`metric ${name}${labels} not found`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Polls until `check` holds (state reached by the server; not a speed assertion): rejects after `limitMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, limitMs = 60_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const run = promisify(execFile);

/** Audio made with ffmpeg from a source: `seconds` long (the source looped), in the container of `out`'s extension. */
export async function makeAudio(source: string, seconds: number, out: string, codecArgs: string[] = []): Promise<string> {
  await run('ffmpeg', ['-v', 'error', '-y', '-stream_loop', '-1', '-i', source, '-t', String(seconds), '-ac', '1', ...codecArgs, out]);
  return out;
}

/** A multipart body for fetch with the file and text fields. */
export function form(file: { bytes: Uint8Array; name: string }, fields: Record<string, string | string[]> = {}): FormData {
  const body = new FormData();
  body.append('file', new Blob([file.bytes]), file.name);
  for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
  return body;
}
