/**
 * `whisper-ts models …` against the test Hub: pull into an empty cache (HF layout, only the q8 files), list, rm,
 * info, progress output, two processes pulling at once (a real lock file), and — once the engine's CLI is built —
 * `transcribe --model` in offline mode with no server.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPullReporter, modelsCommand, type ModelsIO } from '../src/cli/models.js';
import { WhisperError } from '../src/errors.js';
import { pullModel } from '../src/hub/index.js';
import { startHubServer, standardRepos, type HubServer } from './helpers/hub-server.js';
import { JFK, ROOT } from './helpers/paths.js';

const run = promisify(execFile);
const BASE = 'onnx-community/whisper-base';
const TINY = 'onnx-community/whisper-tiny.en';
const Q8 = ['onnx/decoder_model_merged_quantized.onnx', 'onnx/encoder_model_quantized.onnx'];
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
/** Variables that would change where requests go or what they carry. */
const HUB_ENV = ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_ENDPOINT', 'HF_HOME', 'HF_HUB_CACHE',
  'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy', 'NO_PROXY', 'no_proxy'];

let server: HubServer;
const tmpDirs: string[] = [];
const savedEnv = { ...process.env };

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'whisper-ts-hub-cli-'));
  tmpDirs.push(dir);
  return dir;
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of HUB_ENV) delete env[key];
  return { ...env, ...extra };
}

interface Captured extends ModelsIO {
  out: () => string;
  err: () => string;
}

function capture(tty = false): Captured {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const stderr = Object.assign(new PassThrough(), { isTTY: tty, columns: 100 });
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return { stdout, stderr, out: () => out, err: () => err };
}

async function models(args: string[], io: Captured = capture()): Promise<Captured> {
  const command = modelsCommand(io);
  // Usage errors thrown instead of exiting the test process, and their text kept out of the test output.
  for (const c of [command, ...command.commands]) c.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  await command.parseAsync(args, { from: 'user' });
  return io;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function files(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...files(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

const HUB_SOURCES = ['src/errors.ts', 'src/dtypes.ts', 'src/cli/models.ts', ...readdirSync(join(ROOT, 'src/hub')).map((f) => `src/hub/${f}`)];

/**
 * The hub compiled to JavaScript for child processes: dist/ when `npm run build` made it after the last edit,
 * else a build of the hub's files alone into test-artifacts/ (git-ignored).
 */
function hubModule(): string {
  const newest = Math.max(...HUB_SOURCES.map((f) => statSync(join(ROOT, f)).mtimeMs));
  const dist = join(ROOT, 'dist', 'hub', 'index.js');
  if (existsSync(dist) && statSync(dist).mtimeMs >= newest) return dist;
  const outDir = join(ROOT, 'test-artifacts', 'hub-build');
  const built = join(outDir, 'hub', 'index.js');
  if (existsSync(built) && statSync(built).mtimeMs >= newest) return built;
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--outDir', outDir, '--rootDir', join(ROOT, 'src'), '--module', 'nodenext',
      '--moduleResolution', 'nodenext', '--target', 'es2022', '--strict', '--skipLibCheck', '--types', 'node',
      join(ROOT, 'src/hub/index.ts'), join(ROOT, 'src/cli/models.ts')],
    { cwd: ROOT, stdio: 'pipe' },
  );
  return built;
}

beforeAll(async () => {
  for (const key of HUB_ENV) delete process.env[key];
  server = await startHubServer({ repos: standardRepos() });
});

afterEach(() => {
  server.beforeBody = undefined;
});

afterAll(async () => {
  await server.close();
  Object.assign(process.env, savedEnv);
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

describe('whisper-ts models', () => {
  it('models pull base into an empty cache: only the q8 and json/tokenizer files, HF layout, sha256 checked', async () => {
    const cacheDir = join(tempDir(), 'hub');
    const before = server.requests.length;
    const io = await models(['pull', 'base', '--endpoint', server.url, '--cache-dir', cacheDir]);
    const commit = server.commits.get(BASE) as string;
    const repoDir = join(cacheDir, 'models--onnx-community--whisper-base');
    const snapshot = join(repoDir, 'snapshots', commit);
    expect(io.out()).toBe(`${snapshot}\n`);

    // Exactly the q8 graphs and the json/tokenizer files, each a relative link to its blob, named by its etag.
    expect(readdirSync(cacheDir).sort()).toEqual(['.locks', 'models--onnx-community--whisper-base']);
    expect(readdirSync(repoDir).sort()).toEqual(['blobs', 'refs', 'snapshots']);
    expect(readdirSync(join(repoDir, 'snapshots'))).toEqual([commit]);
    expect(files(snapshot)).toEqual([...SIDE, ...Q8].sort());
    expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(commit);
    const blobs: string[] = [];
    for (const file of files(snapshot)) {
      const served = server.file(BASE, file);
      expect(served.etag).toMatch(file.endsWith('.onnx') ? /^[0-9a-f]{64}$/ : /^[0-9a-f]{40}$/);
      expect(lstatSync(join(snapshot, file)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(snapshot, file))).toBe(`${file.startsWith('onnx/') ? '../../../' : '../../'}blobs/${served.etag}`);
      expect(sha256(join(snapshot, file)), file).toBe(served.sha256);
      blobs.push(served.etag);
    }
    expect(readdirSync(join(repoDir, 'blobs')).sort()).toEqual(blobs.sort());

    // Nothing of the other variants was asked for.
    const asked = server.requests.slice(before).map((r) => decodeURIComponent(r.url));
    expect(asked.filter((u) => /_fp16|_q4|encoder_model\.onnx|decoder_model_merged\.onnx|decoder_model_quantized|README/.test(u))).toEqual([]);
    expect(server.requests.slice(before).filter((r) => r.method === 'GET' && r.server === 'cdn').length).toBe(2);

    expect(io.err()).toMatch(/^Downloading onnx-community\/whisper-base \(q8, revision main = [0-9a-f]{7}\): 12 files, 81\.6 MB into /);
    expect(io.err()).toContain('got onnx/decoder_model_merged_quantized.onnx (52.8 MB)');
    expect(io.err()).toMatch(/ 50% [\d.]+ MB \/ 81\.6 MB/);
    expect(io.err()).toMatch(/Done: 81\.6 MB downloaded\n$/);

    const again = await models(['pull', 'base', '--endpoint', server.url, '--cache-dir', cacheDir]);
    expect(again.out()).toBe(`${snapshot}\n`);
    expect(again.err()).toBe('onnx-community/whisper-base (q8) is already in the cache\n');
    const quiet = await models(['pull', 'base', '--endpoint', server.url, '--cache-dir', cacheDir, '--quiet']);
    expect(quiet.err()).toBe('');
  });

  it('models list, rm and info show and remove exactly what is there', async () => {
    const cacheDir = join(tempDir(), 'hub');
    const empty = await models(['list', '--cache-dir', cacheDir]);
    expect(empty.out()).toBe('');
    expect(empty.err()).toBe(`No models in the cache at ${cacheDir}\n`);

    await models(['pull', 'tiny.en', '--endpoint', server.url, '--cache-dir', cacheDir, '-q']);
    await models(['pull', 'base', '--dtype', 'q4', '--endpoint', server.url, '--cache-dir', cacheDir, '-q']);
    await models(['pull', 'base', '--dtype', 'fp16', '--endpoint', server.url, '--cache-dir', cacheDir, '-q']);
    const size = (repoDir: string): number =>
      readdirSync(join(cacheDir, repoDir, 'blobs')).reduce((sum, n) => sum + statSync(join(cacheDir, repoDir, 'blobs', n)).size, 0);
    const tinyBytes = size('models--onnx-community--whisper-tiny.en');
    const baseBytes = size('models--onnx-community--whisper-base');
    const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
    const list = await models(['list', '--cache-dir', cacheDir]);
    expect(list.out().split('\n').map((l) => l.trim().split(/\s+/))).toEqual([
      ['REPO', 'REVISION', 'DTYPES', 'SIZE'],
      [BASE, 'main', 'fp16,q4', ...mb(baseBytes).split(' ')],
      [TINY, 'main', 'q8', ...mb(tinyBytes).split(' ')],
      [''],
    ]);
    const json = JSON.parse((await models(['list', '--json', '--cache-dir', cacheDir])).out()) as { repo: string; sizeOnDisk: number }[];
    expect(json.map((m) => [m.repo, m.sizeOnDisk])).toEqual([[BASE, baseBytes], [TINY, tinyBytes]]);

    const rm = await models(['rm', 'base', '--cache-dir', cacheDir]);
    expect(rm.out()).toBe(`Removed ${BASE} (${mb(baseBytes)}) from ${join(cacheDir, 'models--onnx-community--whisper-base')}\n`);
    expect(readdirSync(cacheDir).sort()).toEqual(['.locks', 'models--onnx-community--whisper-tiny.en']);
    expect(readdirSync(join(cacheDir, '.locks'))).toEqual(['models--onnx-community--whisper-tiny.en']);
    const after = await models(['list', '--cache-dir', cacheDir]);
    expect(after.out()).toMatch(new RegExp(`^REPO.*\\n${TINY.replace('.', '\\.')}\\s+main\\s+q8\\s+${mb(tinyBytes)}\\n$`));
    await expect(models(['rm', 'base', '--cache-dir', cacheDir])).rejects.toMatchObject({ code: 'E_HUB_NOT_FOUND' });

    const info = await models(['info', 'base', '--endpoint', server.url]);
    expect(info.out()).toContain(`${BASE} @ main (${server.commits.get(BASE) as string})`);
    expect(info.out()).toMatch(/\nq8\s+81\.6 MB\s+onnx\/encoder_model_quantized\.onnx, onnx\/decoder_model_merged_quantized\.onnx\n/);
    expect(info.out()).toMatch(/\nq4\s+[\d.]+ MB\s+onnx\/encoder_model_q4\.onnx, onnx\/decoder_model_merged_q4\.onnx, onnx\/decoder_model_merged_q4\.onnx_data\n/);
    expect(info.out()).toMatch(/\nonnx\/decoder_model_merged_quantized\.onnx\s+52\.8 MB\n/);
  });

  it('a bad name or dtype is refused', async () => {
    await expect(models(['pull', '../base', '--endpoint', server.url, '--cache-dir', join(tempDir(), 'hub')])).rejects.toBeInstanceOf(WhisperError);
    await expect(models(['pull', 'base', '--dtype', 'q5', '--endpoint', server.url], capture())).rejects.toMatchObject({
      code: 'commander.invalidArgument',
    });
  });

  it('on a terminal the progress is a bar with bytes, speed and ETA', () => {
    const io = capture(true);
    const reporter = createPullReporter(io.stderr);
    const total = 50_000_000;
    reporter.onProgress({
      type: 'resolved', repo: BASE, revision: 'main', commit: 'a'.repeat(40), dtype: 'q8',
      files: [{ path: 'onnx/x.onnx', size: total, cached: false }], downloadBytes: total, cacheDir: '/c',
    });
    reporter.onProgress({ type: 'progress', path: 'onnx/x.onnx', fileBytes: 10_000_000, fileSize: total, bytes: 10_000_000, totalBytes: total });
    reporter.onProgress({ type: 'done', repo: BASE, commit: 'a'.repeat(40), path: '/c/x', downloadedBytes: total });
    const text = io.err();
    expect(text).toContain('Downloading onnx-community/whisper-base (q8, revision main = aaaaaaa): 1 file, 50.0 MB into /c');
    expect(text).toMatch(/20% \| 10\.0 MB \/ 50\.0 MB \| .* \| ETA /);
    expect(text).toContain('Done: 50.0 MB downloaded');
  });

  it('two processes pulling the same model at once: one download through a lock file, both succeed', async () => {
    const module = hubModule();
    const cacheDir = join(tempDir(), 'hub');
    const decoder = server.file(TINY, Q8[0] as string);
    const lock = join(cacheDir, '.locks', 'models--onnx-community--whisper-tiny.en', `${decoder.sha256}.whisper-ts.lock`);
    let lockHeld = false;
    // Hold the decoder's bytes back until both processes have asked for its metadata.
    server.beforeBody = async (file) => {
      if (file.sha256 !== decoder.sha256) return;
      while (server.requests.filter((r) => r.method === 'HEAD' && r.url.endsWith(Q8[0] as string)).length < 2) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      lockHeld = existsSync(lock);
    };
    const script = `
      const { pullModel } = await import(process.argv[1]);
      const path = await pullModel('tiny.en', { endpoint: process.argv[2], cacheDir: process.argv[3], token: false, proxy: false, offline: false });
      process.stdout.write(path);`;
    const before = server.requests.length;
    const child = () => run(process.execPath, ['--input-type=module', '-e', script, module, server.url, cacheDir], { env: cleanEnv() });
    const [a, b] = await Promise.all([child(), child()]);
    expect(a.stdout).toBe(b.stdout);
    expect(lockHeld).toBe(true);
    const seen = server.requests.slice(before);
    expect(seen.filter((r) => r.method === 'HEAD' && r.url.endsWith(Q8[0] as string)).length).toBe(2);
    for (const path of Q8) {
      expect(seen.filter((r) => r.method === 'GET' && r.url.startsWith(`/cdn/${server.file(TINY, path).sha256}`)).length, path).toBe(1);
      expect(sha256(join(a.stdout, path))).toBe(server.file(TINY, path).sha256);
    }
    expect(existsSync(lock)).toBe(false);
  });

  // Needs the engine's CLI (src/cli/main.ts, built by `npm run build`).
  it.skipIf(!existsSync(join(ROOT, 'dist', 'cli', 'main.js')))(
    'after a pull, transcribe --model works with HF_HUB_OFFLINE=1 and no server',
    async () => {
      const cacheDir = join(tempDir(), 'hub');
      const own = await startHubServer({ repos: standardRepos() });
      await pullModel('tiny.en', { endpoint: own.url, cacheDir, token: false, proxy: false, offline: false });
      await own.close();
      const { stdout } = await run(process.execPath, [join(ROOT, 'bin', 'whisper-ts.js'), 'transcribe', JFK, '--model', 'tiny.en'], {
        env: cleanEnv({ HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cacheDir, HF_ENDPOINT: own.url }),
      });
      expect(stdout.toLowerCase()).toContain('ask not what your country can do for you');
    },
  );
});
