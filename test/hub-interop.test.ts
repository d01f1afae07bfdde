/**
 * One cache for both tools: what Python's huggingface_hub downloads from the test Hub, whisper-ts uses offline (and
 * does not download again); what whisper-ts pulls, huggingface_hub's try_to_load_from_cache and scan_cache_dir find.
 * Needs the virtual environment `.ci/run` creates (`.venv` with huggingface_hub).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCachedModels, pullModel, resolveModelSource } from '../src/hub/index.js';
import { startHubServer, standardRepos, type HubServer } from './helpers/hub-server.js';
import { ROOT } from './helpers/paths.js';

const run = promisify(execFile);
const PYTHON = join(ROOT, '.venv', 'bin', 'python');
const TINY = 'onnx-community/whisper-tiny.en';
const BASE = 'onnx-community/whisper-base';
const FILES = [
  'onnx/encoder_model_quantized.onnx',
  'onnx/decoder_model_merged_quantized.onnx',
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

let server: HubServer;
const tmpDirs: string[] = [];

function tempCache(): string {
  const dir = mkdtempSync(join(tmpdir(), 'whisper-ts-hub-py-'));
  tmpDirs.push(dir);
  return join(dir, 'hub');
}

/** Python with the machine's Hub settings removed, so it talks to the test server only. */
async function python(script: string, args: string[]): Promise<unknown> {
  const env: NodeJS.ProcessEnv = { ...process.env, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1' };
  for (const key of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) {
    delete env[key];
  }
  env.HF_HOME = join(tmpDirs[0] ?? tmpdir(), 'hf-home');
  const { stdout } = await run(PYTHON, ['-c', script, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout) as unknown;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

beforeAll(async () => {
  server = await startHubServer({ repos: standardRepos() });
});

afterAll(async () => {
  await server.close();
  for (const dir of tmpDirs) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!existsSync(PYTHON))('interop with Python huggingface_hub', () => {
  it('a model fetched by hf_hub_download is used by whisper-ts offline, and not downloaded again online', async () => {
    const cacheDir = tempCache();
    const paths = (await python(
      `import json, sys
from huggingface_hub import hf_hub_download
endpoint, cache, repo, *files = sys.argv[1:]
print(json.dumps([hf_hub_download(repo, f, cache_dir=cache, endpoint=endpoint) for f in files]))`,
      [server.url, cacheDir, TINY, ...FILES],
    )) as string[];
    const commit = server.commits.get(TINY) as string;
    const snapshot = join(cacheDir, 'models--onnx-community--whisper-tiny.en', 'snapshots', commit);
    expect(paths).toEqual(FILES.map((f) => join(snapshot, ...f.split('/'))));

    const before = server.requests.length;
    expect(await pullModel('tiny.en', { cacheDir, offline: true, endpoint: 'http://127.0.0.1:9' })).toBe(snapshot);
    const previous = process.env.HF_HUB_OFFLINE;
    process.env.HF_HUB_OFFLINE = '1';
    try {
      expect(await resolveModelSource('tiny.en', { cacheDir })).toBe(snapshot);
    } finally {
      if (previous === undefined) delete process.env.HF_HUB_OFFLINE;
      else process.env.HF_HUB_OFFLINE = previous;
    }
    expect(server.requests.length).toBe(before);
    const [listed] = await listCachedModels({ cacheDir });
    expect(listed).toMatchObject({ repo: TINY, dtypes: ['q8'], revisions: [{ commit, refs: ['main'] }] });

    // Online, the same files are already there: only the model-info request, no download.
    expect(await pullModel('tiny.en', { cacheDir, endpoint: server.url, token: false, proxy: false, offline: false })).toBe(snapshot);
    expect(server.requests.slice(before).map((r) => r.url)).toEqual([`/api/models/${TINY}/revision/main`]);
    for (const file of FILES) expect(sha256(join(snapshot, file))).toBe(server.file(TINY, file).sha256);
  });

  it('a model pulled by whisper-ts is found by try_to_load_from_cache and scan_cache_dir', async () => {
    const cacheDir = tempCache();
    const snapshot = await pullModel('base', { cacheDir, endpoint: server.url, token: false, proxy: false, offline: false });
    const result = (await python(
      `import json, sys
from huggingface_hub import scan_cache_dir, try_to_load_from_cache
cache, repo, *files = sys.argv[1:]
found = {f: try_to_load_from_cache(repo, f, cache_dir=cache) for f in files}
info = scan_cache_dir(cache)
repos = [{"repo_id": r.repo_id, "repo_type": r.repo_type, "size_on_disk": r.size_on_disk, "nb_files": r.nb_files,
          "refs": sorted(r.refs), "revisions": [{"commit": v.commit_hash, "refs": sorted(v.refs),
          "files": sorted(str(f.file_path) for f in v.files)} for v in r.revisions]} for r in info.repos]
print(json.dumps({"found": found, "repos": repos, "warnings": [str(w) for w in info.warnings]}))`,
      [cacheDir, BASE, ...FILES],
    )) as {
      found: Record<string, string | null>;
      repos: { repo_id: string; repo_type: string; size_on_disk: number; nb_files: number; refs: string[]; revisions: { commit: string; refs: string[]; files: string[] }[] }[];
      warnings: string[];
    };
    expect(result.found).toEqual(Object.fromEntries(FILES.map((f) => [f, join(snapshot, ...f.split('/'))])));
    expect(result.warnings).toEqual([]);
    const size = FILES.reduce((sum, f) => sum + server.file(BASE, f).size, 0);
    expect(result.repos).toEqual([
      {
        repo_id: BASE,
        repo_type: 'model',
        size_on_disk: size,
        nb_files: FILES.length,
        refs: ['main'],
        revisions: [{ commit: server.commits.get(BASE), refs: ['main'], files: FILES.map((f) => join(snapshot, ...f.split('/'))).sort() }],
      },
    ]);
    expect(dirname(result.found['config.json'] ?? '')).toBe(snapshot);
  });
});
