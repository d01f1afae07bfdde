/**
 * The library's contract as a consumer meets it: the types take what a caller naturally passes, the exported
 * defaults cannot be changed, a list is a list, an abort stops the segments, and a disposed model says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, createStream, decodeAudio, formatResult, loadModel, type OutputFormat, type Whisper, type WhisperError } from '../src/index.js';
import { existsSync } from 'node:fs';
import { cudaProviderPath } from '../src/runtime/session.js';
import { JFK, TINY_EN } from './helpers/paths.js';
import { LONGFORM } from './helpers/stream.js';

async function rejection(p: Promise<unknown>): Promise<WhisperError> {
  try {
    await p;
  } catch (err) {
    return err as WhisperError;
  }
  throw new Error('resolved');
}

describe('library contract (whisper-tiny.en)', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    whisper = await loadModel(TINY_EN, { threads: 2 });
  });
  afterAll(async () => {
    await whisper?.dispose();
  });

  it('takes undefined as "the default" and a single temperature as a number', async () => {
    const signal: AbortSignal | undefined = undefined;
    const language: string | undefined = undefined;
    const r = await whisper.transcribeAll(JFK, { language, temperature: 0 }, { signal });
    expect(r.text).toMatch(/ask what you can do for your country/i);
    expect(r.segments.every((s) => s.temperature === 0)).toBe(true);
  });

  it('the exported defaults cannot be changed (every later call would see the change)', async () => {
    expect(Object.isFrozen(DEFAULTS)).toBe(true);
    expect(Object.isFrozen(DEFAULTS.temperature)).toBe(true);
    expect(() => (DEFAULTS.temperature as number[]).push(9)).toThrow(TypeError);
    expect(DEFAULTS.temperature).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1.0]);
  });

  it('formatResult refuses a format it does not know (a JavaScript caller can pass any string)', async () => {
    const result = await whisper.transcribeAll(JFK, { temperature: 0 });
    expect(formatResult(result, 'txt')).toMatch(/ask what you can do for your country/);
    let error: WhisperError | undefined;
    try {
      formatResult(result, 'docx' as OutputFormat);
    } catch (err) {
      error = err as WhisperError;
    }
    expect(error?.code).toBe('E_OPTIONS');
    expect(error?.message).toMatch(/unknown output format "docx" \(known: txt, json, srt, vtt, tsv\)/);
  });

  it('transcribeMany refuses a single path (a string is not a list of paths)', async () => {
    // @ts-expect-error a string iterates over its characters; the type refuses it too
    const e = await rejection(whisper.transcribeMany(JFK));
    expect(e.code).toBe('E_OPTIONS');
    expect(e.message).toMatch(/list of inputs/);
    const prefetch = await rejection(whisper.transcribeMany([JFK], {}, { prefetch: -1 }));
    expect(prefetch.code).toBe('E_OPTIONS');
  });

  it('after an abort, the next segment read rejects, even inside a window that is already decoded', async () => {
    const audio = (await decodeAudio(LONGFORM)).subarray(0, 30 * 16000);
    const controller = new AbortController();
    const { segments } = await whisper.transcribe(audio, { language: 'en' }, { signal: controller.signal });
    const it = segments[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    controller.abort(new Error('enough'));
    const e = await rejection(it.next());
    expect(e.code).toBe('E_ABORTED');
  });
});

describe('device cuda without the CUDA provider (onnxruntime-node installed with onnxruntime-node-install=skip)', () => {
  it.skipIf(existsSync(cudaProviderPath()))('refuses before reading or downloading a model, naming the fix', async () => {
    const local = await rejection(loadModel(TINY_EN, { device: 'cuda' }));
    expect(local.code).toBe('E_OPTIONS');
    expect(local.message).toContain("device 'cuda' is not available");
    expect(local.message).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12');
    // a Hub name is not looked up first (offline, it would be E_HUB_OFFLINE)
    const hub = await rejection(loadModel('onnx-community/whisper-tiny', { device: 'cuda', offline: true }));
    expect(hub.code).toBe('E_OPTIONS');
    expect(await loadModel(TINY_EN, { device: 'cpu' }).then((w) => w.dispose())).toBeUndefined();
  });
});

describe('a disposed model', () => {
  it('refuses new calls and streams with E_DISPOSED, and a call it interrupts ends with E_DISPOSED', async () => {
    const w = await loadModel(TINY_EN, { threads: 2 });
    const audio = (await decodeAudio(LONGFORM)).subarray(0, 90 * 16000);
    const running = w.transcribeAll(audio, { language: 'en' });
    await new Promise((r) => setTimeout(r, 300));
    await w.dispose();
    const e = await rejection(running);
    expect(e.code).toBe('E_DISPOSED');
    expect((await rejection(w.transcribeAll(JFK))).code).toBe('E_DISPOSED');
    expect((await rejection(w.transcribeAll(JFK, { vadFilter: true }))).code).toBe('E_DISPOSED');
    expect((await rejection(createStream(w))).code).toBe('E_DISPOSED');
  });
});
