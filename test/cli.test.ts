import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { JFK, ROOT, TINY_EN } from './helpers/paths.js';

const run = promisify(execFile);
const BIN = join(ROOT, 'bin', 'whisper-ts.js');

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], {
      env: { ...process.env, HF_HUB_OFFLINE: '1', ...env },
      maxBuffer: 32 * 1024 * 1024,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function ffprobeCues(file: string): Promise<{ start: number; end: number }[]> {
  const r = await run('ffprobe', ['-v', 'error', '-show_entries', 'packet=pts_time,duration_time', '-of', 'json', file]);
  const packets = (JSON.parse(r.stdout) as { packets: { pts_time: string; duration_time: string }[] }).packets;
  return packets.map((p) => ({ start: Number(p.pts_time), end: Number(p.pts_time) + Number(p.duration_time) }));
}

describe('whisper-ts CLI', () => {
  beforeAll(() => {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('run `npm run build` first');
  });

  it('writes every output format, and each parses back to the same segments', async () => {
    const out = mkdtempSync(join(tmpdir(), 'wts-cli-'));
    const r = await cli(['transcribe', JFK, '--model', TINY_EN, '--threads', '2', '-f', 'all', '-o', out, '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['jfk.json', 'jfk.srt', 'jfk.tsv', 'jfk.txt', 'jfk.vtt']);

    const json = JSON.parse(readFileSync(join(out, 'jfk.json'), 'utf8')) as {
      task: string;
      language: string;
      duration: number;
      text: string;
      segments: { id: number; start: number; end: number; text: string; tokens: number[]; avg_logprob: number; no_speech_prob: number; compression_ratio: number; temperature: number; seek: number }[];
    };
    expect(json.task).toBe('transcribe');
    expect(json.language).toBe('english');
    expect(json.duration).toBeCloseTo(11, 3);
    expect(json.text.toLowerCase()).toContain('ask not what your country can do for you');
    expect(json.segments.length).toBeGreaterThan(0);
    for (const s of json.segments) {
      expect(typeof s.avg_logprob).toBe('number');
      expect(s.end).toBeGreaterThan(s.start);
      expect(s.tokens.length).toBeGreaterThan(0);
    }

    const txt = readFileSync(join(out, 'jfk.txt'), 'utf8');
    expect(txt.split('\n').filter(Boolean)).toEqual(json.segments.map((s) => s.text.trim()));

    const tsv = readFileSync(join(out, 'jfk.tsv'), 'utf8').trim().split('\n');
    expect(tsv[0]).toBe('start\tend\ttext');
    const tsvRows = tsv.slice(1).map((l) => l.split('\t'));
    expect(tsvRows.map((c) => [Number(c[0]) / 1000, Number(c[1]) / 1000, c[2]])).toEqual(
      json.segments.map((s) => [s.start, s.end, s.text.trim()]),
    );

    for (const ext of ['srt', 'vtt']) {
      const cues = await ffprobeCues(join(out, `jfk.${ext}`));
      expect(cues.length, ext).toBe(json.segments.length);
      cues.forEach((c, i) => {
        expect(c.start).toBeCloseTo(json.segments[i]?.start ?? -1, 2);
        expect(c.end).toBeCloseTo(json.segments[i]?.end ?? -1, 2);
      });
      const text = readFileSync(join(out, `jfk.${ext}`), 'utf8');
      for (const s of json.segments) expect(text).toContain(s.text.trim());
    }
    expect(readFileSync(join(out, 'jfk.vtt'), 'utf8').startsWith('WEBVTT\n')).toBe(true);
    rmSync(out, { recursive: true, force: true });
  });

  it('bad files in one call: a clear error per bad file, the good files still written, exit code 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wts-bad-'));
    const out = join(dir, 'out');
    writeFileSync(join(dir, 'empty.wav'), '');
    const wav = readFileSync(JFK);
    writeFileSync(join(dir, 'truncated.wav'), wav.subarray(0, 44 + 1000)); // header promises far more data
    writeFileSync(join(dir, 'notes.wav'), 'these are meeting notes, not audio\n');
    copyFileSync(JFK, join(dir, 'good1.wav'));
    copyFileSync(join(ROOT, '..', 'shared', 'eval', 'jfk', 'jfk.flac'), join(dir, 'good2.flac'));
    const files = ['good1.wav', 'empty.wav', 'truncated.wav', 'notes.wav', 'missing.wav', 'good2.flac'].map((f) => join(dir, f));
    const r = await cli(['transcribe', ...files, '--model', TINY_EN, '--threads', '2', '-f', 'txt', '-o', out, '--quiet']);
    expect(r.code).toBe(1);
    expect(readdirSync(out).sort()).toEqual(['good1.txt', 'good2.txt']);
    for (const f of ['good1.txt', 'good2.txt']) expect(readFileSync(join(out, f), 'utf8').toLowerCase()).toContain('fellow americans');
    const lines = r.stderr.split('\n');
    const lineFor = (name: string) => lines.find((l) => l.includes(name) && l.includes('error')) ?? '';
    expect(lineFor('empty.wav')).toMatch(/E_AUDIO_DECODE.*empty/i);
    expect(lineFor('truncated.wav')).toMatch(/E_AUDIO_DECODE.*truncat/i);
    expect(lineFor('notes.wav')).toMatch(/E_AUDIO_DECODE/);
    expect(lineFor('missing.wav')).toMatch(/E_AUDIO_NOT_FOUND/);
    expect(r.stderr).toMatch(/4 of 6 file\(s\) failed/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a model folder that lacks a file: an error naming the file, exit code 3', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wts-model-'));
    const model = join(dir, 'tiny');
    cpSync(TINY_EN, model, { recursive: true, filter: (src) => !src.endsWith('decoder_model_merged_quantized.onnx') });
    const r1 = await cli(['transcribe', JFK, '--model', model, '--quiet']);
    expect(r1.code).toBe(3);
    expect(r1.stderr).toMatch(/E_MODEL_FILE_MISSING.*decoder_model_merged/);
    rmSync(join(model, 'preprocessor_config.json'));
    const r2 = await cli(['transcribe', JFK, '--model', model, '--quiet']);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(/preprocessor_config\.json/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('bad options: exit code 2 and a message naming the flag; --help lists every flag with its default', async () => {
    const r = await cli(['transcribe', JFK, '--model', TINY_EN, '--temperature', 'hot']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--temperature/);
    // an options error the model raises (a language an English-only model lacks) is a usage error too
    const e = await cli(['transcribe', JFK, '--model', TINY_EN, '--language', 'de', '--quiet']);
    expect(e.code).toBe(2);
    expect(e.stderr).toMatch(/English-only/);
    const h = await cli(['transcribe', '--help']);
    expect(h.code).toBe(0);
    for (const flag of ['--language', '--task', '--output-format', '--output-dir', '--threads', '--dtype', '--verbose', '--no-speech-threshold']) {
      expect(h.stdout).toContain(flag);
    }
    expect(h.stdout).toMatch(/--compression-ratio-threshold.*\(default: 2\.4\)/);
  });

  it('--verbose prints segments with times, under a header per file when there are several; English-only model on --task translate is refused', async () => {
    const r = await cli(['transcribe', JFK, '--model', TINY_EN, '--threads', '2', '--verbose']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^\[00:00:00\.000 --> 00:00:0\d\.\d{3}\] And so my fellow Americans/m);
    expect(r.stdout).not.toMatch(/==>/);
    const dir = mkdtempSync(join(tmpdir(), 'wts-verbose-'));
    copyFileSync(JFK, join(dir, 'two.wav'));
    const two = await cli(['transcribe', JFK, join(dir, 'two.wav'), '--model', TINY_EN, '--threads', '2', '--verbose']);
    expect(two.code, two.stderr).toBe(0);
    const lines = two.stdout.trim().split('\n');
    expect(lines[0]).toBe(`==> ${JFK} <==`);
    const second = lines.indexOf(`==> ${join(dir, 'two.wav')} <==`);
    expect(second).toBeGreaterThan(1);
    expect(lines.slice(1, second)).toEqual(lines.slice(second + 1));
    rmSync(dir, { recursive: true, force: true });
    const t = await cli(['transcribe', JFK, '--model', TINY_EN, '--task', 'translate', '--quiet']);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/English-only/);
  });

  it('a bad command line exits 2 in every subcommand (vad, models and its subcommands too); --help exits 0', async () => {
    for (const args of [['vad', '--bogus', 'x'], ['vad'], ['models', 'pull'], ['models', 'bogus'], ['models', 'pull', 'tiny', '--dtype', 'q5']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).not.toBe('');
    }
    expect((await cli(['models', 'list', '--help'])).code).toBe(0);
  });

  it('--quiet still prints the text; outputs that would collide or an --output-dir that is a file are refused first', async () => {
    const q = await cli(['transcribe', JFK, '--model', TINY_EN, '--threads', '2', '--quiet']);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout).toMatch(/ask what you can do for your country/i);
    expect(q.stderr).toBe('');
    // `-` is standard input (a pipe)
    const piped = await run('sh', ['-c', `cat "${JFK}" | "${process.execPath}" "${BIN}" transcribe - --model "${TINY_EN}" --threads 2 --quiet`], {
      env: { ...process.env, HF_HUB_OFFLINE: '1' },
    });
    expect(piped.stdout).toBe(q.stdout);
    // standard input twice: refused before anything is read
    const twice = await cli(['transcribe', '-', '-', '--model', TINY_EN]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/standard input \(-\) is given more than once/);

    const dir = mkdtempSync(join(tmpdir(), 'wts-out-'));
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    copyFileSync(JFK, join(dir, 'a', 'x.wav'));
    copyFileSync(JFK, join(dir, 'b', 'x.wav'));
    const same = await cli(['transcribe', join(dir, 'a', 'x.wav'), join(dir, 'b', 'x.wav'), '--model', TINY_EN, '-o', join(dir, 'out')]);
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/would both write/);
    writeFileSync(join(dir, 'afile'), 'x');
    const file = await cli(['transcribe', JFK, '--model', TINY_EN, '-o', join(dir, 'afile')]);
    expect(file.code).toBe(2);
    expect(file.stderr).toMatch(/--output-dir .* is a file/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('an output that cannot be written fails its input only; the next input is still transcribed and written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wts-write-'));
    copyFileSync(JFK, join(dir, 'one.wav'));
    copyFileSync(JFK, join(dir, 'two.wav'));
    mkdirSync(join(dir, 'out', 'one.txt'), { recursive: true }); // a folder where one.txt should go
    const r = await cli(['transcribe', join(dir, 'one.wav'), join(dir, 'two.wav'), '--model', TINY_EN, '--threads', '2', '-o', join(dir, 'out'), '-q']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/one\.wav: cannot write .*one\.txt: /);
    expect(readFileSync(join(dir, 'out', 'two.txt'), 'utf8')).toMatch(/ask what you can do for your country/i);
    // several formats: the message names the one that failed and those left after it, not those already written
    mkdirSync(join(dir, 'all', 'one.srt'), { recursive: true });
    const all = await cli(['transcribe', join(dir, 'one.wav'), '--model', TINY_EN, '--threads', '2', '-f', 'all', '-o', join(dir, 'all'), '-q']);
    expect(all.code).toBe(1);
    const written = join(dir, 'all', 'one');
    expect(all.stderr).toContain(`cannot write ${written}.srt: `);
    expect(all.stderr).toContain(`(not written either: ${written}.vtt, ${written}.tsv)`);
    expect(all.stderr).not.toMatch(/one\.(txt|json)/);
    expect(existsSync(`${written}.txt`) && existsSync(`${written}.json`)).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });

  it('--temperature 0 alone is greedy without fallback (the default --best-of is not an option the user gave)', async () => {
    const r = await cli(['transcribe', JFK, '--model', TINY_EN, '--threads', '2', '--temperature', '0', '--verbose']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ask what you can do for your country/);
    // given explicitly, --best-of at temperature 0 is a contradiction (openai/whisper decoding.py _verify_options)
    const b = await cli(['transcribe', JFK, '--model', TINY_EN, '--temperature', '0', '--best-of', '3', '--quiet']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--best-of/);
  });
});
