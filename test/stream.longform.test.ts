/**
 * The whole of longform_en (4.85 min) played at real speed through the three live paths at once — the library's
 * stream, `whisper-ts live --input --realtime` and the server's WebSocket /v1/realtime — with whisper-tiny.en. Each
 * path's finals must never change, keep their times in order, and reach the model's sequential long-form WER (its
 * README) plus a margin; the delay from a word's end in the audio to its final is measured and printed (three streams share
 * two cores here, so it is higher than one stream's: bench figures are in the README). Needs the build and ffmpeg.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAMPLE_RATE, decodeAudio } from '../src/audio/index.js';
import { STREAM_DEFAULTS, createStream, loadModel, type Whisper } from '../src/index.js';
import type { StreamEvent, StreamFinalEvent } from '../src/types.js';
import { BASE_TS, ROOT, TINY_EN } from './helpers/paths.js';
import { connect, sendAudio } from './helpers/realtime.js';
import {
  LONGFORM,
  latency,
  longformPieces,
  readLongformWords,
  referenceWords,
  wer,
  writeLongformWords,
  type ClockedEvent,
} from './helpers/stream.js';
import { startServerProcess, type ServerProcess } from './server-helpers.js';

const run = promisify(execFile);

/**
 * The whole-file bound for whisper-tiny.en: its sequential long-form WER in ../shared/models/whisper-tiny.en/README.md
 * (18.35 %) plus 3.5 points. (whisper-ts's own seek loop with conditioning scores 25.19 % on this file with tiny.en,
 * which repeats itself in two windows; the live paths score 17–19 %.)
 */
const TINY_EN_LONGFORM_BOUND = 0.2185;

/** Finals in id order, each one's text its words, word times never going back across finals. */
function checkFinals(finals: readonly StreamFinalEvent[], path: string): string {
  finals.forEach((f, i) => {
    expect(f.id, path).toBe(i);
    expect(f.text, path).toBe(f.words.map((x) => x.word).join(''));
  });
  const words = finals.flatMap((f) => f.words);
  for (let i = 1; i < words.length; i++) expect(words[i]!.start, path).toBeGreaterThanOrEqual(words[i - 1]!.end);
  return finals.map((f) => f.text).join('');
}

interface LibraryRun {
  events: ClockedEvent[];
  stats: { peak: number; prompt: number; left: number; dropped: number; steps: number; stepSeconds: number };
  /** Resident memory of this process (MiB) at each 30 s of audio. */
  rss: number[];
}

/**
 * Settings of the library path to measure other than the defaults: `WTS_STREAM_OPTIONS` (stream options) and
 * `WTS_STREAM_LOAD` (load options), JSON, e.g. the low-latency ones in the README (`{"minChunkSeconds":0.3}` and
 * `{"activations":"int8"}`).
 */
function envJson(name: string): Record<string, unknown> {
  const value = process.env[name];
  return value ? (JSON.parse(value) as Record<string, unknown>) : {};
}

/** The library path: 100-ms pushes at real speed (each when its audio has been "heard"), decoding in the background. */
async function playLibrary(whisper: Whisper, audio: Float32Array): Promise<LibraryRun> {
  const stream = await createStream(whisper, { language: 'en', ...envJson('WTS_STREAM_OPTIONS') });
  const events: ClockedEvent[] = [];
  const rss: number[] = [];
  const started = performance.now();
  stream.on((e) => events.push({ ...e, at: (performance.now() - started) / 1000 }));
  const step = SAMPLE_RATE / 10;
  for (let i = 0; i < audio.length; i += step) {
    const wait = started + ((i + step) / SAMPLE_RATE) * 1000 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    stream.push(audio.subarray(i, i + step));
    if ((i / step) % 300 === 0) rss.push(process.memoryUsage().rss / 2 ** 20);
  }
  await stream.end();
  const s = stream.stats;
  return { events, stats: { peak: s.peakBufferSeconds, prompt: s.promptTokens, left: s.bufferSeconds, dropped: s.droppedSeconds, steps: s.steps, stepSeconds: s.stepSeconds }, rss };
}

/** The CLI path: `whisper-ts live --input wav --realtime --json`; an event's time is its `wall` field. */
function playCli(wav: string): Promise<ClockedEvent[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin', 'whisper-ts.js'), 'live', '--input', wav, '--realtime', '--json', '--model', TINY_EN, '--threads', '2', '--language', 'en'],
      { env: { ...process.env, HF_HUB_OFFLINE: '1' } },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`whisper-ts live exited with ${code}: ${err}`));
      const events = out
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as StreamEvent & { wall: number })
        .map((e) => ({ ...e, at: e.wall }) as ClockedEvent);
      expect(events[0]).toMatchObject({ type: 'language', language: 'en' });
      resolve(events);
    });
  });
}

/** The WebSocket path; message times counted from the first audio frame. */
async function playWebSocket(url: string, audio: Float32Array): Promise<ClockedEvent[]> {
  const s = connect(url);
  await s.opened;
  s.ws.send(JSON.stringify({ type: 'start', options: { language: 'en' }, format: 'pcm16', sample_rate: 16000 }));
  const started = performance.now();
  await sendAudio(s, audio, true, started);
  s.ws.send(JSON.stringify({ type: 'end' }));
  expect(await s.closed).toEqual({ code: 1000, reason: 'done' });
  const types = s.messages.map((m) => m.type);
  expect(types[0]).toBe('ready');
  expect(types[1]).toBe('language');
  expect(types[types.length - 1]).toBe('done');
  expect(types).toContain('partial');
  return s.messages
    .filter((m) => m.type === 'partial' || m.type === 'final' || m.type === 'language')
    .map((m) => ({ ...m, at: m.at - started / 1000 }) as ClockedEvent);
}

describe('longform_en whole, at real speed, through the library, the CLI and the WebSocket at once (whisper-tiny.en)', () => {
  let whisper: Whisper;
  let server: ServerProcess;
  let audio: Float32Array;
  let wav: string;
  beforeAll(async () => {
    whisper = await loadModel(TINY_EN, { threads: 2, ...envJson('WTS_STREAM_LOAD') });
    server = await startServerProcess(['--model', TINY_EN, '--concurrency', '1', '--max-streams', '1', '--threads', '2']);
    audio = await decodeAudio(LONGFORM);
    wav = join(mkdtempSync(join(tmpdir(), 'wts-live-long-')), 'longform.wav');
    await run('ffmpeg', ['-v', 'error', '-i', LONGFORM, '-ac', '1', '-ar', '16000', wav]);
  });
  afterAll(async () => {
    await whisper?.dispose();
    expect(await server?.stop()).toBe(0);
  });

  it('finals never change, stay in order, reach the long-form WER bound on every path; delays printed', async () => {
    // WTS_STREAM_PATHS=cli (or library, websocket, comma-separated) plays only those: one stream alone on the box
    // gives the latency of one stream (three at once share two cores)
    const only = (process.env.WTS_STREAM_PATHS ?? 'library,cli,websocket').split(',');
    const none: LibraryRun = { events: [], stats: { peak: 0, prompt: 0, left: 0, dropped: 0, steps: 0, stepSeconds: 0 }, rss: [] };
    const [lib, cli, ws]: [LibraryRun, ClockedEvent[], ClockedEvent[]] = await Promise.all([
      only.includes('library') ? playLibrary(whisper, audio) : none,
      only.includes('cli') ? playCli(wav) : [],
      only.includes('websocket') ? playWebSocket(server.url, audio) : [],
    ]);

    const pieces = longformPieces();
    const reference = pieces.map((p) => p.text).join(' ');
    let ref = readLongformWords(pieces);
    if (ref === undefined) {
      const aligner = await loadModel(BASE_TS, { threads: 2 });
      ref = await referenceWords(aligner.model, audio, pieces);
      await aligner.dispose();
      try {
        writeLongformWords(ref);
      } catch (cause) {
        console.log(`reference word times not kept (${String(cause)})`); // a read-only checkout: computed each run
      }
    }

    const lines: string[] = [];
    for (const [path, events] of [
      ['library', lib.events],
      ['CLI', cli],
      ['WebSocket', ws],
    ] as const) {
      if (!only.includes(path.toLowerCase())) continue;
      const finals = events.filter((e): e is StreamFinalEvent & { at: number } => e.type === 'final');
      const text = checkFinals(finals, path);
      // an event can only come after the audio it was decided on was heard
      for (const e of events) if (e.type === 'final' || e.type === 'partial') expect(e.at, path).toBeGreaterThanOrEqual(e.audioEnd - 0.05);
      const streamWer = wer(reference, text);
      const lat = latency(events, ref);
      lines.push(
        `${path}: WER ${(streamWer * 100).toFixed(2)} %, ${finals.length} finals; word end → final: median ${lat.finalMedian.toFixed(2)} s ` +
          `(p90 ${lat.finalP90.toFixed(2)} s, audio waited ${lat.finalPolicyMedian.toFixed(2)} s), → first partial: median ` +
          `${lat.partialMedian.toFixed(2)} s; ${lat.matched}/${ref.length} words matched`,
      );
      if (streamWer > TINY_EN_LONGFORM_BOUND) console.log(`${path} finals over the bound:\n${finals.map((f) => `[${f.start.toFixed(1)}–${f.end.toFixed(1)} at ${f.at.toFixed(1)}]${f.text}`).join('\n')}`);
      expect(streamWer, path).toBeLessThanOrEqual(TINY_EN_LONGFORM_BOUND);
      expect(lat.matched, path).toBeGreaterThan(ref.length * 0.8);
    }
    console.log(lines.join('\n'));
    // a partial never holds text that is already final: after each final, the next partial starts after it
    const libEvents = lib.events;
    for (let i = 0; i < libEvents.length - 1; i++) {
      const e = libEvents[i] as ClockedEvent;
      const next = libEvents.slice(i + 1).find((x) => x.type === 'partial');
      if (e.type === 'final' && next?.type === 'partial' && next.words.length > 0) expect(next.start).toBeGreaterThanOrEqual(e.end);
    }
    // bounded however long the stream: the audio buffer (cut at committed sentence ends; at most the 30-s window when
    // the decoder falls behind and a backlog arrives at once) and the prompt; and no audio let go undecoded
    console.log(
      `library stream: peak buffer ${lib.stats.peak.toFixed(1)} s (trim length ${STREAM_DEFAULTS.bufferTrimSeconds} s), ` +
        `${lib.stats.steps} steps of ${((lib.stats.stepSeconds / Math.max(1, lib.stats.steps)) * 1000).toFixed(0)} ms`,
    );
    expect(lib.stats.dropped).toBe(0);
    expect(lib.stats.prompt).toBeLessThanOrEqual(224);
    expect(lib.stats.left).toBe(0);
    if (only.includes('library')) {
      // no gross leak (slow ones are bench/stream-soak.mjs's to find: 30 minutes, flat at 550–610 MB for one stream).
      // Three streams on two cores leave this one far behind at times, and its resident memory then reaches new highs
      // late, once per heavier step (a longer buffer, the fallback's sampled rows), with or without ONNX Runtime's CPU
      // arena: rises from 60 s to the end of +2, +11, +71, +89, +108, +133 and +203 MiB in eight runs. A leak of what a
      // step handles (its 2 MB of audio, or a row's 18 MB of cross-attention keys/values) would pass 320 MiB in 160 steps.
      console.log(`library stream RSS at each 30 s: ${lib.rss.map((m) => m.toFixed(0)).join(' ')} MiB`);
      const after = lib.rss.slice(2);
      expect(after.length).toBeGreaterThanOrEqual(8);
      expect(Math.max(...after) - (after[0] as number)).toBeLessThan(320);
    }
  }, 900_000);
});
