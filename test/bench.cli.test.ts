import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { exactSignedInt8Kernels } from '../src/runtime/optimize.js';
import { JFK, ROOT, TINY_EN } from './helpers/paths.js';

const run = promisify(execFile);
const BIN = join(ROOT, 'bin', 'whisper-ts.js');

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env: { ...process.env, HF_HUB_OFFLINE: '1', ...env }, maxBuffer: 8 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('whisper-ts bench', () => {
  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('run `npm run build` first');
  });

  it('--json: one row per model with the hardware-table figures, measured in a process of its own', async () => {
    const r = await cli(['bench', TINY_EN, '--clips', JFK, '--threads', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    const row = rows[0] as Record<string, number | string>;
    // the default 'auto', as decided here: 'mixed' on a CPU with VNNI/AMX
    const activations = exactSignedInt8Kernels() ? 'mixed' : 'float32';
    expect(row).toMatchObject({ model: TINY_EN, dtype: 'q8', activations, device: 'cpu', threads: 2, batchSize: 1, clips: 1 });
    expect(row.audioSeconds).toBeCloseTo(11, 1);
    for (const k of ['seconds', 'cpuSeconds', 'secondsPerAudioMinute', 'realTimeFactor', 'peakRssMb', 'loadSeconds', 'encoderMsPerWindow', 'decoderMsPerToken']) {
      expect(typeof row[k], k).toBe('number');
      expect(row[k] as number, k).toBeGreaterThan(0);
    }
    expect(row.secondsPerAudioMinute as number).toBeCloseTo((row.seconds as number) / ((row.audioSeconds as number) / 60), 6);
    expect(row.realTimeFactor as number).toBeCloseTo((row.audioSeconds as number) / (row.seconds as number), 6);
    // a Node process holding tiny.en: more than the model's 40 MB, far less than gigabytes
    expect(row.peakRssMb as number).toBeGreaterThan(60);
    expect(row.peakRssMb as number).toBeLessThan(2000);
  });

  it('prints a table; no clips or no models is a usage error; a model that fails is reported and counted', async () => {
    const t = await cli(['bench', TINY_EN, '--clips', JFK, '--threads', '2']);
    expect(t.code, t.stderr).toBe(0);
    const lines = t.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^model .*\| dtype .*\| activations .*\| device .*s \/ audio min.*real time ×.*peak RSS MB.*encoder ms\/window.*decoder ms\/token/);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toContain('q8');

    const empty = mkdtempSync(join(tmpdir(), 'wts-bench-'));
    const noClips = await cli(['bench', TINY_EN, '--clips', empty]);
    expect(noClips.code).toBe(2);
    expect(noClips.stderr).toMatch(/no clips/);
    const noModels = await cli(['bench', '--clips', JFK], { HF_HUB_CACHE: empty, HF_HOME: empty });
    expect(noModels.code).toBe(2);
    expect(noModels.stderr).toMatch(/no Whisper model in the HF cache/);
    // a model that cannot load: its own error once, and the model exit code (3) when it is the only one
    const bad = await cli(['bench', join(empty, 'missing-model'), '--clips', JFK, '--json']);
    expect(bad.code).toBe(3);
    expect(JSON.parse(bad.stdout)).toEqual([]);
    expect(bad.stderr).toMatch(/missing-model/);
    expect(bad.stderr.match(/E_MODEL_FILE_MISSING/g)).toHaveLength(1);
    // beside one that runs: the row stands, and the exit code says some failed (1)
    const mixed = await cli(['bench', TINY_EN, join(empty, 'missing-model'), '--clips', JFK, '--threads', '2', '--json']);
    expect(mixed.code).toBe(1);
    expect((JSON.parse(mixed.stdout) as unknown[]).length).toBe(1);
    rmSync(empty, { recursive: true, force: true });
  });
});
