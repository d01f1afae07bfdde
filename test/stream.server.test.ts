/**
 * Live transcription through `whisper-ts serve`: the WebSocket /v1/realtime (streams side by side, the stream limit,
 * bad messages, a client that leaves) and the page's microphone half in Chromium with a fake microphone playing
 * jfk.wav (screenshot in test-artifacts/). Needs the build and /usr/bin/chromium. The whole of longform_en at real
 * speed over the WebSocket: stream.longform.test.ts.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_RATE, decodeAudio } from '../src/audio/index.js';
import type { StreamFinalEvent } from '../src/types.js';
import { JFK, ROOT, TINY_EN } from './helpers/paths.js';
import { LONGFORM } from './helpers/stream.js';
import { form, metric, startServerProcess, waitFor, type ServerProcess } from './server-helpers.js';
import { connect, pcm16, sendAudio, type Message } from './helpers/realtime.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');

const finalsOf = (messages: Message[]): StreamFinalEvent[] =>
  messages.filter((m): m is StreamFinalEvent & { at: number } => m.type === 'final');

/**
 * A WebSocket upgrade request on a raw TCP socket (this side never ends it): what the server sent, once the server
 * has closed the socket, and whether the server ended it (FIN).
 */
function rawUpgrade(url: string, path: string, headers: string[] = []): Promise<{ response: string; serverEnded: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = createConnection(Number(port), hostname);
    let response = '';
    let serverEnded = false;
    socket.on('data', (d: Buffer) => (response += d.toString()));
    socket.on('end', () => (serverEnded = true));
    socket.on('error', reject);
    socket.on('close', () => resolve({ response, serverEnded }));
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ...headers,
    ];
    socket.write(lines.join('\r\n') + '\r\n\r\n');
  });
}

/** The status line and the Connection header of a raw HTTP response. */
function head(response: string): { status: string; connection: string | undefined } {
  const lines = response.split('\r\n');
  const connection = lines.find((l) => /^connection:/i.test(l))?.replace(/^connection:\s*/i, '');
  return { status: lines[0] ?? '', connection };
}

describe('serve: live transcription over the WebSocket /v1/realtime', () => {
  let server: ServerProcess;
  let jfk: Float32Array;
  let longform: Float32Array;
  beforeAll(async () => {
    server = await startServerProcess(['--model', TINY_EN, '--concurrency', '1', '--max-streams', '2']);
    jfk = await decodeAudio(JFK);
    longform = await decodeAudio(LONGFORM);
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it('streams side by side stay apart; one more than --max-streams is refused with 1013', async () => {
    const a = connect(server.url);
    const b = connect(server.url);
    await Promise.all([a.opened, b.opened]);
    const start = JSON.stringify({ type: 'start', options: { language: 'en' } });
    a.ws.send(start);
    b.ws.send(start);
    await waitFor('two streams', async () => a.messages.some((m) => m.type === 'ready') && b.messages.some((m) => m.type === 'ready'));
    const c = connect(server.url);
    await c.opened;
    c.ws.send(start);
    expect(await c.closed).toMatchObject({ code: 1013 });
    expect(c.messages).toEqual([expect.objectContaining({ type: 'error', code: 'E_QUEUE_FULL' })]);
    expect(await metric(server.url, 'whisper_live_streams')).toBe(2);

    const other = longform.subarray(0, 8 * SAMPLE_RATE);
    await Promise.all([sendAudio(a, jfk, false), sendAudio(b, other, false)]);
    a.ws.send(JSON.stringify({ type: 'end' }));
    b.ws.send(JSON.stringify({ type: 'end' }));
    expect((await a.closed).code).toBe(1000);
    expect((await b.closed).code).toBe(1000);
    const textA = finalsOf(a.messages).map((f) => f.text).join('').toLowerCase();
    const textB = finalsOf(b.messages).map((f) => f.text).join('').toLowerCase();
    expect(textA).toMatch(/country/);
    expect(textA).not.toMatch(/hugely|pleased/);
    expect(textB).toMatch(/hugely pleased/);
    expect(textB).not.toMatch(/country/);
    const done = a.messages.find((m) => m.type === 'done') as { stats?: { received: number } } | undefined;
    expect(done?.stats?.received).toBeCloseTo(11, 1);
  }, 300_000);

  it('a plain GET of the WebSocket route is answered 426 in the API error shape', async () => {
    const res = await fetch(server.url + '/v1/realtime');
    expect(res.status).toBe(426);
    expect(res.headers.get('upgrade')).toBe('websocket');
    expect(await res.json()).toMatchObject({ error: { code: 'E_UPGRADE_REQUIRED', type: 'invalid_request_error' } });
  });

  it('a bad start message is refused with the engine error and 1008; audio before start too', async () => {
    const a = connect(server.url);
    await a.opened;
    a.ws.send(JSON.stringify({ type: 'start', options: { batchSize: 8 } }));
    expect(await a.closed).toMatchObject({ code: 1008 });
    expect(a.messages[0]).toMatchObject({ type: 'error', code: 'E_OPTIONS' });
    const b = connect(server.url);
    await b.opened;
    b.ws.send(pcm16(jfk.subarray(0, 1600)));
    expect(await b.closed).toMatchObject({ code: 1008 });
    const c = connect(server.url);
    await c.opened;
    c.ws.send(JSON.stringify({ type: 'start', sample_rate: 48000 }));
    expect(await c.closed).toMatchObject({ code: 1008 });
    expect(c.messages[0]).toMatchObject({ type: 'error', code: 'E_BAD_REQUEST' });
  });

  it('checks start options as the HTTP endpoints do: an unknown language first; options must be an object', async () => {
    const refusal = async (start: object): Promise<{ type: string; code?: string; message: string }> => {
      const s = connect(server.url);
      await s.opened;
      s.ws.send(JSON.stringify({ type: 'start', ...start }));
      expect(await s.closed).toMatchObject({ code: 1008 });
      expect(s.messages.length).toBe(1);
      return s.messages[0] as unknown as { type: string; code?: string; message: string };
    };
    const unknown = await refusal({ options: { language: 'xx' } });
    expect(unknown).toMatchObject({ type: 'error', code: 'E_OPTIONS', message: expect.stringMatching(/"xx" is not a language Whisper knows/) });
    const http = await fetch(`${server.url}/v1/audio/transcriptions`, {
      method: 'POST',
      body: form({ bytes: readFileSync(JFK), name: 'jfk.wav' }, { language: 'xx' }),
    });
    expect(((await http.json()) as { error: { message: string } }).error.message).toBe(unknown.message);
    expect(await refusal({ options: { language: 'de' } })).toMatchObject({ code: 'E_OPTIONS', message: expect.stringMatching(/English-only/) });
    for (const options of ['en', ['en'], 5]) {
      expect(await refusal({ options })).toMatchObject({ code: 'E_OPTIONS', message: expect.stringMatching(/^options must be an object/) });
    }
    // a long value comes back shortened
    const long = await refusal({ options: { language: 'x'.repeat(100_000) } });
    expect(long.message).toContain(`"${'x'.repeat(80)}…"`);
    expect(long.message.length).toBeLessThan(400);
  });

  it('answers an upgrade to a route that is not a WebSocket with 404 and Connection: close, and closes the socket', async () => {
    for (const path of ['/nope', '/v1/models']) {
      const { response, serverEnded } = await rawUpgrade(server.url, path);
      expect(head(response), path).toEqual({ status: 'HTTP/1.1 404 Not Found', connection: 'close' });
      expect(response, path).toContain('"E_NOT_FOUND"');
      expect(serverEnded, path).toBe(true);
    }
    expect((await fetch(`${server.url}/v1/models`)).status).toBe(200);
  });

  it('a client that leaves in the middle frees its stream', async () => {
    const a = connect(server.url);
    await a.opened;
    a.ws.send(JSON.stringify({ type: 'start', format: 'f32' }));
    const f32 = jfk.subarray(0, 4 * SAMPLE_RATE);
    a.ws.send(Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength));
    await waitFor('a partial', async () => a.messages.some((m) => m.type === 'partial' || m.type === 'final'));
    a.ws.terminate();
    await waitFor('the stream to end', async () => (await metric(server.url, 'whisper_live_streams')) === 0);
    expect(server.exited()).toBe(false);
  }, 120_000);
});

describe('serve: the live endpoint behind an API key', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess(['--model', TINY_EN, '--concurrency', '1', '--api-key', 'sesame', '--live-idle-timeout', '2']);
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  const tryOpen = (headers: Record<string, string>, protocols?: string[]): Promise<number | 'ready'> =>
    new Promise((resolve) => {
      const ws = new WebSocket(server.url.replace(/^http/, 'ws') + '/v1/realtime', protocols, { headers });
      ws.on('error', () => undefined); // terminating a refused upgrade reports an error; the status is what counts
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? -1);
        ws.terminate();
      });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'start' })));
      ws.on('message', (d: Buffer) => {
        if ((JSON.parse(d.toString()) as { type: string }).type === 'ready') {
          resolve('ready');
          ws.close();
        }
      });
    });

  it('takes the key as a Bearer header or, from browsers, as a subprotocol; refuses the upgrade without it', async () => {
    expect(await tryOpen({})).toBe(401);
    expect(await tryOpen({ authorization: 'Bearer wrong' })).toBe(401);
    expect(await tryOpen({ authorization: 'Bearer sesame' })).toBe('ready');
    expect(await tryOpen({}, ['realtime', 'openai-insecure-api-key.sesame'])).toBe('ready');
    // the page learns from /health that it must ask for the key before recording
    const health = (await (await fetch(`${server.url}/health`)).json()) as { api_key_required: boolean };
    expect(health.api_key_required).toBe(true);
  }, 120_000);

  it('refuses an upgrade without the key with 401 and Connection: close, and closes the socket', async () => {
    const { response, serverEnded } = await rawUpgrade(server.url, '/v1/realtime');
    expect(head(response)).toEqual({ status: 'HTTP/1.1 401 Unauthorized', connection: 'close' });
    expect(response).toContain('"E_UNAUTHORIZED"');
    expect(serverEnded).toBe(true);
    const wrong = await rawUpgrade(server.url, '/v1/realtime', ['Authorization: Bearer wrong']);
    expect(head(wrong.response)).toEqual({ status: 'HTTP/1.1 401 Unauthorized', connection: 'close' });
    expect(wrong.serverEnded).toBe(true);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  it('closes a stream whose client sends nothing for --live-idle-timeout seconds, before and after start', async () => {
    const auth = { authorization: 'Bearer sesame' };
    const silent = connect(server.url, auth);
    await silent.opened;
    const t0 = performance.now();
    expect(await silent.closed).toMatchObject({ code: 1008 });
    expect(performance.now() - t0).toBeGreaterThan(1500);
    expect(silent.messages).toEqual([expect.objectContaining({ type: 'error', code: 'E_IDLE_TIMEOUT' })]);

    const started = connect(server.url, auth);
    await started.opened;
    started.ws.send(JSON.stringify({ type: 'start', options: { language: 'en' } }));
    await waitFor('ready', async () => started.messages.some((m) => m.type === 'ready'));
    started.ws.send(pcm16(new Float32Array(SAMPLE_RATE / 10)));
    expect(await started.closed).toMatchObject({ code: 1008 });
    expect(started.messages.at(-1)).toMatchObject({ type: 'error', code: 'E_IDLE_TIMEOUT' });
    await waitFor('the stream to end', async () => (await metric(server.url, 'whisper_live_streams')) === 0);
  }, 60_000);

  it('refuses a text frame that is JSON but not an object (null) and keeps serving; an empty language is not given', async () => {
    const s = connect(server.url, { authorization: 'Bearer sesame' });
    await s.opened;
    s.ws.send(JSON.stringify({ type: 'start', options: { language: '' } }));
    await waitFor('ready', async () => s.messages.some((m) => m.type === 'ready'));
    s.ws.send('null');
    expect(await s.closed).toMatchObject({ code: 1008 });
    expect(s.messages.at(-1)).toMatchObject({ type: 'error', code: 'E_BAD_REQUEST' });
    expect(server.exited()).toBe(false);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  }, 60_000);
});

describe('serve: audio that comes while a stream starts (the live worker loads its model on the first stream)', () => {
  let server: ServerProcess;
  let jfk: Float32Array;
  beforeAll(async () => {
    server = await startServerProcess(['--model', TINY_EN, '--concurrency', '1']);
    jfk = await decodeAudio(JFK);
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  const START = JSON.stringify({ type: 'start', options: { language: 'en' } });
  const END = JSON.stringify({ type: 'end' });
  const received = (messages: Message[]): number | undefined =>
    (messages.find((m) => m.type === 'done') as { stats?: { received: number } } | undefined)?.stats?.received;

  it('ignores audio after end while the stream starts, as once it runs; refuses more than 60 s held before ready (1009)', async () => {
    const first = pcm16(jfk.subarray(0, 3 * SAMPLE_RATE));
    const rest = pcm16(jfk.subarray(3 * SAMPLE_RATE));
    // both go out before the worker has its model: these are the server's first streams
    const a = connect(server.url);
    const b = connect(server.url);
    await Promise.all([a.opened, b.opened]);
    for (const frame of [START, first, END, rest, END]) a.ws.send(frame);
    const held = pcm16(new Float32Array(61 * SAMPLE_RATE));
    b.ws.send(START);
    b.ws.send(held.subarray(0, held.length / 2));
    b.ws.send(held.subarray(held.length / 2));
    expect(await b.closed).toMatchObject({ code: 1009 });
    expect(b.messages).toEqual([expect.objectContaining({ type: 'error', code: 'E_AUDIO_TOO_LONG' })]);
    expect(await a.closed).toMatchObject({ code: 1000 });
    expect(a.messages.filter((m) => m.type === 'error')).toEqual([]);
    expect(a.messages[0]).toMatchObject({ type: 'ready' });
    expect(received(a.messages)).toBeCloseTo(3, 3);
    expect(finalsOf(a.messages).map((f) => f.text).join('')).not.toMatch(/country/i);

    // the same sequence on a stream that runs
    const c = connect(server.url);
    await c.opened;
    c.ws.send(START);
    await waitFor('ready', async () => c.messages.some((m) => m.type === 'ready'));
    for (const frame of [first, END, rest, END]) c.ws.send(frame);
    expect(await c.closed).toMatchObject({ code: 1000 });
    expect(c.messages.filter((m) => m.type === 'error')).toEqual([]);
    expect(received(c.messages)).toBeCloseTo(3, 3);
  }, 120_000);
});

describe('serve --max-streams 0: the live endpoint is turned off', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess(['--model', TINY_EN, '--concurrency', '1', '--max-streams', '0']);
  });
  afterAll(async () => {
    expect(await server?.stop()).toBe(0);
  });

  it('answers /v1/realtime with 503 E_UNAVAILABLE, to a plain GET and to an upgrade (then closes the socket)', async () => {
    const res = await fetch(server.url + '/v1/realtime');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: { code: 'E_UNAVAILABLE', message: expect.stringMatching(/--max-streams 0/) } });
    const { response, serverEnded } = await rawUpgrade(server.url, '/v1/realtime');
    expect(head(response)).toEqual({ status: 'HTTP/1.1 503 Service Unavailable', connection: 'close' });
    expect(serverEnded).toBe(true);
  });
});

describe('serve: the live half of the page in Chromium, with a fake microphone', () => {
  let server: ServerProcess;
  let profile: string;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    server = await startServerProcess(['--model', TINY_EN, '--concurrency', '1']);
    profile = mkdtempSync(join(tmpdir(), 'wts-chromium-live-'));
  });
  afterAll(async () => {
    if (profile) rmSync(profile, { recursive: true, force: true });
    expect(await server?.stop()).toBe(0);
  });

  it('records jfk.wav from the fake microphone and shows partial and final text', async () => {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        `--use-file-for-fake-audio-capture=${JFK}`,
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(server.url);
      await page.click('#live-start');
      // a partial shows up while recording, then committed text
      await page.locator('#live-partial', { hasText: /\w/ }).waitFor({ timeout: 120_000 });
      await page.locator('#live-final', { hasText: /country/i }).waitFor({ timeout: 120_000 });
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'stream-page-live.png'), fullPage: true });
      await page.click('#live-stop');
      await page.locator('#live-status', { hasText: /^done: \d+ final/ }).waitFor({ timeout: 60_000 });
      expect(await page.isHidden('#live-stop')).toBe(true);
      expect(await page.textContent('#live-final')).toMatch(/fellow americans|ask not|your country/i);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 300_000);
});
