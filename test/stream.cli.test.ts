import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_RATE, decodeAudio } from '../src/audio/index.js';
import { loadModel } from '../src/index.js';
import type { StreamEvent, StreamFinalEvent } from '../src/types.js';
import { BASE_TS, JFK, ROOT, TINY_EN } from './helpers/paths.js';
import { LONGFORM, latency, longformSlice, referenceWords, wer, type ClockedEvent } from './helpers/stream.js';

const run = promisify(execFile);
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

  it('plays 13 s of longform_en at real speed: JSON events, finals in order that reach the sequential WER', async () => {
    const slice = longformSlice(0, 1);
    const wav = join(mkdtempSync(join(tmpdir(), 'wts-live-')), 'slice.wav');
    await run('ffmpeg', ['-v', 'error', '-i', LONGFORM, '-ss', String(slice.from), '-to', String(slice.to), '-ac', '1', '-ar', '16000', wav]);
    const r = await cli(['live', '--input', wav, '--realtime', '--json', '--model', TINY_EN, '--threads', '2', '--language', 'en']);
    expect(r.code, r.stderr).toBe(0);
    const events = r.stdout
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as StreamEvent & { wall: number });
    expect(events[0]).toMatchObject({ type: 'language', language: 'en' });
    const finals = events.filter((e): e is StreamFinalEvent & { wall: number } => e.type === 'final');
    finals.forEach((f, i) => expect(f.id).toBe(i));
    const words = finals.flatMap((f) => f.words);
    for (let i = 1; i < words.length; i++) expect(words[i]!.start).toBeGreaterThanOrEqual(words[i - 1]!.end);
    // the wall clock of a real-time run: an event can only come after the audio it was decided on was played
    for (const e of events) if (e.type !== 'language') expect(e.wall).toBeGreaterThanOrEqual(e.audioEnd - 0.05);

    const audio = await decodeAudio(wav);
    const text = finals.map((f) => f.text).join('');
    const reference = slice.pieces.map((p) => p.text).join(' ');
    const whisper = await loadModel(TINY_EN, { threads: 2 });
    const sequential = await whisper.transcribeAll(audio, { language: 'en' });
    await whisper.dispose();
    const aligner = await loadModel(BASE_TS, { threads: 2 });
    const ref = await referenceWords(aligner.model, audio, slice.pieces);
    await aligner.dispose();
    const lat = latency(
      events.map((e) => ({ ...e, at: e.wall }) as ClockedEvent),
      ref,
    );
    const streamWer = wer(reference, text);
    const sequentialWer = wer(reference, sequential.text);
    console.log(
      `live CLI --realtime tiny.en ${(audio.length / SAMPLE_RATE).toFixed(1)} s: WER ${(streamWer * 100).toFixed(2)} % ` +
        `(sequential ${(sequentialWer * 100).toFixed(2)} %); word end → final: median ${lat.finalMedian.toFixed(2)} s ` +
        `(p90 ${lat.finalP90.toFixed(2)} s), → first partial: median ${lat.partialMedian.toFixed(2)} s; ${r.stderr.trim()}`,
    );
    expect(streamWer).toBeLessThanOrEqual(sequentialWer + 0.05);
  }, 300_000);

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
