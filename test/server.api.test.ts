/**
 * The OpenAI audio API of `whisper-ts serve`, driven by the official `openai` npm client, unchanged, against a real
 * server process on 127.0.0.1 (whisper-tiny.en; the multilingual whisper-base_timestamped for translation and words).
 */
import { execFile } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { APIError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPTION_SPECS } from '../src/index.js';
import { BASE_TS, EVAL, JFK, ROOT, TINY_EN } from './helpers/paths.js';
import { form, makeAudio, metric, startServerProcess, type ServerProcess } from './server-helpers.js';

const KEY = 'test-key-123';
/** The engine computes word timestamps once its options table has the switch. */
const HAS_WORDS = Object.hasOwn(OPTION_SPECS, 'wordTimestamps');
const JFK_TEXT = /ask not what your country can do for you,? ask what you can do for your country/i;

/** Parses srt or vtt cues: [start s, end s, text]. */
function cues(text: string): { start: number; end: number; text: string }[] {
  const t = (s: string): number => {
    const [h, m, rest] = s.replace(',', '.').split(':');
    return Number(h) * 3600 + Number(m) * 60 + Number(rest);
  };
  return [...text.matchAll(/(\d\d:\d\d:\d\d[.,]\d{3}) --> (\d\d:\d\d:\d\d[.,]\d{3})\n(.+)/g)].map((m) => ({
    start: t(m[1] ?? ''),
    end: t(m[2] ?? ''),
    text: m[3] ?? '',
  }));
}

async function apiError(p: Promise<unknown>): Promise<APIError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof APIError) return err;
    throw err;
  }
  throw new Error('expected the request to fail');
}

function code(e: APIError): string | undefined {
  return (e.error as { code?: string } | undefined)?.code;
}

describe('serve: OpenAI audio API with whisper-tiny.en', () => {
  let server: ServerProcess;
  let client: OpenAI;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wts-server-'));
    server = await startServerProcess(
      ['--model', TINY_EN, '--concurrency', '1', '--max-upload-mb', '1', '--max-duration-s', '20'],
      { WHISPER_TS_API_KEY: KEY },
    );
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it('transcribes jfk.wav as json, text, srt, vtt and verbose_json', async () => {
    const json = await client.audio.transcriptions.create({ file: createReadStream(JFK), model: 'whisper-1' });
    expect(json.text).toMatch(JFK_TEXT);
    expect(json.text).toBe(json.text.trim());

    const text = await client.audio.transcriptions.create({
      file: createReadStream(JFK),
      model: 'whisper-1',
      response_format: 'text',
    });
    expect(text.trim()).toBe(json.text);

    const srt = await client.audio.transcriptions.create({ file: createReadStream(JFK), model: 'whisper-1', response_format: 'srt' });
    const srtCues = cues(srt);
    expect(srt.startsWith('1\n00:00:00,000 --> ')).toBe(true);
    expect(srtCues.length).toBeGreaterThanOrEqual(2);
    expect(srtCues.map((c) => c.text).join(' ')).toMatch(JFK_TEXT);

    const vtt = await client.audio.transcriptions.create({ file: createReadStream(JFK), model: 'whisper-1', response_format: 'vtt' });
    expect(vtt.startsWith('WEBVTT\n\n')).toBe(true);
    expect(cues(vtt)).toEqual(srtCues);

    const verbose = await client.audio.transcriptions.create({
      file: createReadStream(JFK),
      model: 'whisper-1',
      response_format: 'verbose_json',
      timestamp_granularities: ['segment'],
    });
    expect(verbose.language).toBe('english');
    expect(verbose.duration).toBeCloseTo(11, 3);
    expect(verbose.text).toBe(json.text);
    const segs = verbose.segments ?? [];
    expect(segs.length).toBe(srtCues.length);
    for (const [i, s] of segs.entries()) {
      expect(s.id).toBe(i);
      expect(s.end).toBeGreaterThan(s.start);
      expect(s.start).toBeCloseTo(srtCues[i]?.start ?? -1, 3);
      expect(s.tokens.length).toBeGreaterThan(0);
      expect(s.avg_logprob).toBeLessThan(0);
      expect(s.no_speech_prob).toBeGreaterThanOrEqual(0);
    }
    expect(segs.at(-1)?.end).toBeLessThanOrEqual(11.01);
  });

  it('streams segments as server-sent events that the openai client reads', async () => {
    const stream = await client.audio.transcriptions.create({ file: createReadStream(JFK), model: 'whisper-1', stream: true });
    const deltas: string[] = [];
    const segments: { start: number; end: number; text: string }[] = [];
    let done = '';
    let language: string | undefined;
    for await (const event of stream) {
      if (event.type === 'transcript.text.delta') deltas.push(event.delta);
      else if (event.type === 'transcript.text.segment') segments.push(event);
      else if (event.type === 'transcript.text.done') {
        done = event.text;
        // our addition to OpenAI's event, named as verbose_json names it
        language = (event as { language?: string }).language;
      }
    }
    expect(done).toMatch(JFK_TEXT);
    expect(language).toBe('english');
    expect(deltas.join('').trim()).toBe(done);
    expect(segments.length).toBeGreaterThanOrEqual(2);
    expect(segments.map((s) => s.text).join('')).toBe(deltas.join(''));
    for (let i = 1; i < segments.length; i++) expect(segments[i]?.start).toBeGreaterThanOrEqual(segments[i - 1]?.end ?? 0);
  });

  it('refuses word timestamps on a model without cross-attentions, naming the field', async () => {
    const e = await apiError(
      client.audio.transcriptions.create({
        file: createReadStream(JFK),
        model: 'whisper-1',
        response_format: 'verbose_json',
        timestamp_granularities: ['word'],
      }),
    );
    expect(e.status).toBe(400);
    expect(code(e)).toBe('E_OPTIONS');
    expect(e.param).toBe('timestamp_granularities[]');
    expect(e.message).toMatch(HAS_WORDS ? /cross-attentions/ : /word timestamps are not available/);
  });

  it('answers a non-audio upload with 400 and the engine code, also when streaming', async () => {
    const e = await apiError(
      client.audio.transcriptions.create({ file: new File([readFileSync(join(EVAL, 'README.md'))], 'notes.mp3'), model: 'whisper-1' }),
    );
    expect(e.status).toBe(400);
    expect(code(e)).toBe('E_AUDIO_DECODE');
    expect(e.type).toBe('invalid_request_error');
    expect(e.param).toBe('file');
    expect(e.message).not.toMatch(/whisper-ts-audio|\/tmp\//); // the server's temporary file stays private

    const s = await apiError(
      client.audio.transcriptions.create({ file: new File([readFileSync(join(EVAL, 'README.md'))], 'notes.mp3'), model: 'whisper-1', stream: true }),
    );
    expect(s.status).toBe(400);
    expect(code(s)).toBe('E_AUDIO_DECODE');

    // a body the multipart parser cannot read is the client's fault too (no 500, which clients retry)
    for (const contentType of ['multipart/form-data', 'multipart/form-data; boundary=xyz']) {
      const r = await fetch(`${server.url}/v1/audio/transcriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': contentType },
        body: 'garbage',
      });
      expect(r.status, contentType).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('E_BAD_REQUEST');
    }
    const raw = await fetch(`${server.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'audio/wav' },
      body: readFileSync(JFK),
    });
    expect(raw.status).toBe(415);
    expect(((await raw.json()) as { error: { message: string } }).error.message).toMatch(/multipart\/form-data/);
  });

  it('answers an oversized upload with 413 and audio over the duration limit with 413 naming the limit', async () => {
    const big = new Uint8Array(1024 * 1024 + 1);
    const r = await fetch(`${server.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: form({ bytes: big, name: 'big.wav' }, { model: 'whisper-1' }),
    });
    expect(r.status).toBe(413);
    const body = (await r.json()) as { error: { code: string; message: string; param: string } };
    expect(body.error.code).toBe('E_UPLOAD_TOO_LARGE');
    expect(body.error.message).toContain('1 MiB (--max-upload-mb)');

    const long = await makeAudio(JFK, 25, join(dir, 'long.ogg'), ['-c:a', 'libopus', '-b:a', '16k']);
    const e = await apiError(client.audio.transcriptions.create({ file: createReadStream(long), model: 'whisper-1' }));
    expect(e.status).toBe(413);
    expect(code(e)).toBe('E_AUDIO_TOO_LONG');
    expect(e.message).toContain('20 s');
  });

  it('checks fields against the options table and the served model', async () => {
    const lang = await apiError(client.audio.transcriptions.create({ file: createReadStream(JFK), model: 'whisper-1', language: 'de' }));
    expect(lang.status).toBe(400);
    expect(code(lang)).toBe('E_OPTIONS');

    const temp = await apiError(client.audio.transcriptions.create({ file: createReadStream(JFK), model: 'whisper-1', temperature: -1 }));
    expect(temp.status).toBe(400);
    expect(temp.param).toBe('temperature');

    const model = await apiError(client.audio.transcriptions.create({ file: createReadStream(JFK), model: 'gpt-4o-transcribe' }));
    expect(model.status).toBe(400);
    expect(code(model)).toBe('E_MODEL_NOT_SERVED');

    const translate = await apiError(client.audio.translations.create({ file: createReadStream(JFK), model: 'whisper-1' }));
    expect(translate.status).toBe(400);
    expect(translate.message).toMatch(/English-only/);

    // an engine option beyond the OpenAI fields, by its snake_case name (here: decode without timestamps)
    const r = await fetch(`${server.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: form({ bytes: readFileSync(JFK), name: 'jfk.wav' }, { without_timestamps: 'true', response_format: 'verbose_json' }),
    });
    expect(r.status).toBe(200);
    const v = (await r.json()) as { text: string; segments: { start: number; end: number }[] };
    expect(v.text).toMatch(JFK_TEXT);
    expect(v.segments.length).toBe(1);

    const unknown = await fetch(`${server.url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: form({ bytes: readFileSync(JFK), name: 'jfk.wav' }, { beam_sizes: '5' }),
    });
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: { param: string } }).error.param).toBe('beam_sizes');
  });

  it('quotes a 1,000,000-character field back shortened', async () => {
    for (const field of ['language', 'model', 'response_format']) {
      const r = await fetch(`${server.url}/v1/audio/transcriptions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}` },
        body: form({ bytes: readFileSync(JFK), name: 'jfk.wav' }, { [field]: 'x'.repeat(1_000_000) }),
      });
      expect(r.status, field).toBe(400);
      const text = await r.text();
      expect(text.length, field).toBeLessThan(1000);
      expect((JSON.parse(text) as { error: { message: string; param: string } }).error).toMatchObject({
        param: field,
        message: expect.stringContaining(`"${'x'.repeat(80)}…"`),
      });
    }
  });

  it('needs the API key on /v1/ but not on the page, health and metrics', async () => {
    const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    const e = await apiError(wrong.audio.transcriptions.create({ file: createReadStream(JFK), model: 'whisper-1' }));
    expect(e.status).toBe(401);
    expect(code(e)).toBe('E_UNAUTHORIZED');
    expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);

    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['whisper-tiny.en', 'whisper-1']);

    const health = (await (await fetch(`${server.url}/health`)).json()) as { status: string; workers: { ready: number } };
    expect(health).toMatchObject({ status: 'ok', workers: { ready: 1 } });
    expect((await fetch(`${server.url}/`)).headers.get('content-type')).toMatch(/text\/html/);
    expect(await metric(server.url, 'whisper_jobs_total', '{outcome="completed"}')).toBeGreaterThanOrEqual(7);
    expect(await metric(server.url, 'whisper_audio_seconds_total')).toBeGreaterThanOrEqual(77);
    expect(await metric(server.url, 'whisper_queue_depth')).toBe(0);
    expect(await metric(server.url, 'whisper_jobs_in_flight')).toBe(0);
    expect(await metric(server.url, 'whisper_real_time_factor_count')).toBeGreaterThanOrEqual(7);
    expect(server.stderr()).toBe('');
  });
});

describe('serve: translation and words with the multilingual whisper-base_timestamped', () => {
  let server: ServerProcess;
  let client: OpenAI;

  beforeAll(async () => {
    server = await startServerProcess(['--model', BASE_TS, '--concurrency', '1']);
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it('translates a German FLEURS file into English', async () => {
    const file = join(EVAL, 'fleurs_de', 'fleurs-de-000.ogg');
    const german = readFileSync(join(EVAL, 'fleurs_de', 'transcripts.tsv'), 'utf8').split('\n')[0] ?? '';
    const r = (await client.audio.translations.create({
      file: createReadStream(file),
      model: 'whisper-1',
      response_format: 'verbose_json',
    })) as unknown as { language: string; text: string };
    expect(r.language).toBe('german');
    expect(r.text.length).toBeGreaterThan(20);
    // English out: common English words, and not the German reference's words
    const words = r.text.toLowerCase().match(/[a-z']+/g) ?? [];
    expect(words.filter((w) => ['the', 'a', 'of', 'and', 'to', 'in', 'is', 'that', 'it', 'was'].includes(w)).length).toBeGreaterThanOrEqual(2);
    const germanWords = new Set(german.toLowerCase().match(/[a-zäöüß]+/g) ?? []);
    expect(words.filter((w) => ['der', 'die', 'das', 'und', 'ist', 'nicht'].includes(w) && germanWords.has(w))).toEqual([]);
  });

  it('gives word timestamps, or says clearly that this version has none', async () => {
    const p = client.audio.transcriptions.create({
      file: createReadStream(JFK),
      model: 'whisper-1',
      response_format: 'verbose_json',
      timestamp_granularities: ['word', 'segment'],
    });
    if (!HAS_WORDS) {
      const e = await apiError(p);
      expect(e.status).toBe(400);
      expect(e.param).toBe('timestamp_granularities[]');
      expect(e.message).toMatch(/word timestamps are not available/);
      return;
    }
    const r = await p;
    const words = r.words ?? [];
    // as the OpenAI API gives them: no leading space, joined with spaces
    for (const w of words) expect(w.word).toBe(w.word.trim());
    expect(words.map((w) => w.word).join(' ')).toMatch(JFK_TEXT);
    for (let i = 1; i < words.length; i++) expect(words[i]?.start).toBeGreaterThanOrEqual(words[i - 1]?.start ?? 0);
    expect(r.segments?.length).toBeGreaterThan(0);
  });
});

describe('serve: command line', () => {
  const serve = (args: string[]): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, [join(ROOT, 'bin', 'whisper-ts.js'), 'serve', '--port', '0', ...args], (err, _out, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }),
      );
    });

  it('refuses bad flags with exit code 2 and a missing model with 3', async () => {
    expect(await serve(['--concurrency', '0'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--concurrency/) });
    expect(await serve(['--task', 'translate'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/endpoint/) });
    expect(await serve(['--beam-size', '-3'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/beam-size/) });
    expect(await serve(['--model', join(ROOT, 'no-such-model')])).toMatchObject({
      code: 3,
      stderr: expect.stringMatching(/E_MODEL_FILE_MISSING/),
    });
  });
});
