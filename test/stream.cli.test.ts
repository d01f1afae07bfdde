// `whisper-ts live` (longform_en at real speed through the CLI: stream.longform.test.ts)
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { JFK, ROOT, TINY_EN } from './helpers/paths.js';

const BIN = join(ROOT, 'bin', 'whisper-ts.js');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, HF_HUB_OFFLINE: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('whisper-ts live', () => {
  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('run `npm run build` first');
  });

  it('without --realtime plays as fast as it decodes; piped output is one line per final', async () => {
    const r = await cli(['live', '--input', JFK, '--model', TINY_EN, '--threads', '2', '-q']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines) expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d\d\d --> \d\d:\d\d:\d\d\.\d\d\d\] \S/);
    const text = lines.map((l) => l.replace(/^\[[^\]]*\]/, '')).join('');
    expect(text.toLowerCase().replace(/[^a-z ]/g, '')).toContain('country can do for you');
  }, 300_000);

  it('refuses --realtime without a file and options a stream cannot honour', async () => {
    const a = await cli(['live', '--realtime', '--model', TINY_EN]);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--realtime plays a file/);
    const b = await cli(['live', '--input', JFK, '--model', TINY_EN, '--batch-size', '4']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/batchSize/);
    const c = await cli(['live', '--input', JFK, '--model', TINY_EN, '--min-chunk', '0']);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/minChunkSeconds \(--min-chunk\)/);
  }, 120_000);
});
