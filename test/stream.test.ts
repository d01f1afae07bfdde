import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SAMPLE_RATE, decodeAudio } from '../src/audio/index.js';
import { loadModel, type Whisper } from '../src/index.js';
import {
  LocalAgreement,
  STREAM_DEFAULTS,
  createStream,
  resolveStreamOptions,
  type LiveTranscriber,
  type TimedWord,
} from '../src/stream/index.js';
import { resolveTranscribeOptions } from '../src/options.js';
import { FALLBACK_MIN_BUFFER_S, decodeStep, draftAfter, tokensToPieces } from '../src/stream/window.js';
import type { StreamEvent, StreamFinalEvent } from '../src/types.js';
import {
  SpeechGate,
  VadStream,
  loadVad,
  resolveVadOptions,
  speechSpansFromProbabilities,
  type VadModel,
} from '../src/vad/index.js';
import { join } from 'node:path';
import { BASE_TS, EVAL, JFK, TINY_EN } from './helpers/paths.js';
import { LONGFORM, type ClockedEvent } from './helpers/stream.js';

const plain = (text: string): string => text.toLowerCase().replace(/[^a-z' ]/g, '').replace(/ +/g, ' ');
const w = (word: string, start = 0, end = 0): TimedWord => ({ word, start, end, probability: 1 });
const words = (text: string): TimedWord[] => text.split(/(?= )/).map((x, i) => w(x, i, i + 1));

describe('LocalAgreement', () => {
  it('commits the longest common prefix of two consecutive hypotheses, word by word', () => {
    const a = new LocalAgreement(2);
    expect(a.insert(words(' the cat sat'))).toEqual([]);
    expect(a.insert(words(' the cat sat on')).map((x) => x.word)).toEqual([' the', ' cat']);
    // ' sat' ended the older hypothesis: it waits for one that heard more after it
    expect(a.tentative.map((x) => x.word)).toEqual([' sat', ' on']);
    // the committed words are gone from both hypotheses: ' sat on' vs ' sat on the mat'
    expect(a.insert(words(' sat on the mat')).map((x) => x.word)).toEqual([' sat']);
    // a change ends the agreement at the changed word
    expect(a.insert(words(' on a mat')).map((x) => x.word)).toEqual([' on']);
    expect(a.insert(words(' a mat. The')).map((x) => x.word)).toEqual([' a']);
    expect(a.insert(words(' mat. The dog')).map((x) => x.word)).toEqual([' mat.']);
  });

  it('compares words without case and punctuation, and takes the newest spelling and times', () => {
    const a = new LocalAgreement(2);
    a.insert([w(' Hello', 0, 1), w(' world', 1, 2), w(' and', 2, 3)]);
    const c = a.insert([w(' hello,', 0.1, 0.9), w(' World.', 1.1, 2.1), w(' But', 2.1, 3)]);
    expect(c).toEqual([w(' hello,', 0.1, 0.9), w(' World.', 1.1, 2.1)]);
  });

  it('n = 3 needs three hypotheses; n = 1 commits everything at once', () => {
    const a = new LocalAgreement(3);
    expect(a.insert(words(' one two'))).toEqual([]);
    expect(a.insert(words(' one two'))).toEqual([]);
    expect(a.insert(words(' one three')).map((x) => x.word)).toEqual([' one']);
    expect(a.insert(words(' three four'))).toEqual([]);
    const b = new LocalAgreement(1);
    expect(b.insert(words(' one two')).map((x) => x.word)).toEqual([' one', ' two']);
    expect(b.tentative).toEqual([]);
  });

  it('a forced commit takes words of the newest hypothesis', () => {
    const a = new LocalAgreement(2);
    a.insert(words(' x y'));
    a.insert(words(' a b c'));
    expect(a.commit(2).map((x) => x.word)).toEqual([' a', ' b']);
    expect(a.tentative.map((x) => x.word)).toEqual([' c']);
  });
});

describe('stream options', () => {
  it('fills the defaults and takes the table options', () => {
    const o = resolveStreamOptions({ language: 'de', task: 'translate', minChunkSeconds: '0.4', agreement: 3 });
    expect(o.stream).toEqual({ ...STREAM_DEFAULTS, minChunkSeconds: 0.4, agreement: 3 });
    expect(o.transcribe.language).toBe('de');
    expect(o.transcribe.task).toBe('translate');
    expect(o.vad.minSilenceDurationMs).toBe(500);
    expect(resolveStreamOptions({ vadOptions: { minSilenceDurationMs: 800 } }).vad.minSilenceDurationMs).toBe(800);
  });

  it('refuses what a stream cannot honour, naming it', () => {
    const refused: [object, RegExp][] = [
      [{ batchSize: 4 }, /batchSize/],
      [{ vadFilter: false }, /vadFilter/],
      [{ withoutTimestamps: true }, /withoutTimestamps/],
      [{ prefix: 'x' }, /prefix/],
      [{ clipTimestamps: [1, 2] }, /clipTimestamps/],
      [{ languageDetection: 'window' }, /languageDetection/],
      [{ vadOptions: { maxSpeechDurationS: 10 } }, /maxSpeechDurationS/],
      [{ minChunkSeconds: 0 }, /minChunkSeconds/],
      [{ agreement: 0 }, /agreement/],
      [{ windowPaddingSeconds: 0.5 }, /windowPaddingSeconds/],
      [{ windowPaddingSeconds: 31 }, /windowPaddingSeconds/],
      [{ chunkSize: 1 }, /unknown stream option "chunkSize"/],
    ];
    for (const [input, message] of refused) {
      expect(() => resolveStreamOptions(input), JSON.stringify(input)).toThrow(message);
    }
  });
});

describe('window tokens → segments', () => {
  it('cuts at timestamp tokens and keeps an open last segment to the end of the audio', () => {
    const tb = 1000;
    const ts = (s: number): number => tb + Math.round(s / 0.02);
    const pieces = tokensToPieces([ts(0), 1, 2, ts(1.5), ts(1.5), 3, ts(2.2), ts(2.4), 4, 5], tb, 3.1);
    expect(pieces.map((p) => [p.start, p.end, p.tokens])).toEqual([
      [0, 1.5, [1, 2]],
      [1.5, 2.2, [3]],
      [2.4, 3.1, [4, 5]],
    ]);
    // a forced <|0.00|> then the prefix and a single closing timestamp
    expect(tokensToPieces([ts(0), 7, 8, ts(0.8)], tb, 2).map((p) => [p.start, p.end])).toEqual([[0, 0.8]]);
  });
});

describe('VAD on audio in pieces', () => {
  let vad: VadModel;
  let audio: Float32Array;
  beforeAll(async () => {
    vad = await loadVad();
    audio = (await decodeAudio(LONGFORM)).subarray(0, 40 * SAMPLE_RATE);
  });
  afterAll(async () => vad.dispose());

  it('VadStream gives the whole-audio probabilities whatever the piece sizes, and SpeechGate the same spans', async () => {
    const whole = await vad.speechProbabilities(audio);
    const stream = new VadStream(vad);
    const got: number[] = [];
    const sizes = [1, 511, 512, 513, 1600, 7, 16000, 4096, 333];
    for (let at = 0, k = 0; at < audio.length; k++) {
      const n = sizes[k % sizes.length] as number;
      got.push(...(await stream.push(audio.subarray(at, at + n))));
      at += n;
    }
    got.push(...(await stream.flush()));
    // faster-whisper scores one window more when the length is a multiple of 512; a stream has no such end
    expect(got.length).toBe(Math.ceil(audio.length / 512));
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++) maxDiff = Math.max(maxDiff, Math.abs((got[i] as number) - (whole[i] as number)));
    expect(maxDiff).toBeLessThan(1e-4);

    // the online gate finds the spans get_speech_timestamps finds (before its padding)
    const options = resolveVadOptions({ minSilenceDurationMs: 500, speechPadMs: 0 });
    const spans = speechSpansFromProbabilities(whole, audio.length, options);
    const gate = new SpeechGate(options);
    const changes = gate.update(got);
    const fromGate: { start: number; end: number }[] = [];
    for (const c of changes) {
      if (c.type === 'start') fromGate.push({ start: c.sample, end: audio.length });
      else (fromGate[fromGate.length - 1] as { end: number }).end = c.sample;
    }
    expect(spans.length).toBeGreaterThan(3);
    expect(fromGate).toEqual(spans);
  });
});

/** Plays `audio` through the stream in `chunk`-second pushes, each processed before the next arrives. */
async function play(stream: LiveTranscriber, audio: Float32Array, chunk = 0.1): Promise<ClockedEvent[]> {
  const events: ClockedEvent[] = [];
  let pushedAt = 0;
  let wallAt = performance.now();
  // an event's time: the audio pushed so far plus the time spent since that push (the compute it waited for)
  stream.on((e) => events.push({ ...e, at: pushedAt + (performance.now() - wallAt) / 1000 }));
  const step = Math.round(chunk * SAMPLE_RATE);
  for (let i = 0; i < audio.length; i += step) {
    wallAt = performance.now();
    pushedAt = Math.min(audio.length, i + step) / SAMPLE_RATE;
    stream.push(audio.subarray(i, i + step));
    await stream.drain();
  }
  wallAt = performance.now();
  await stream.end();
  return events;
}

function checkFinals(events: readonly StreamEvent[]): StreamFinalEvent[] {
  const finals = events.filter((e): e is StreamFinalEvent => e.type === 'final');
  finals.forEach((f, i) => {
    expect(f.id).toBe(i);
    expect(f.text).toBe(f.words.map((x) => x.word).join(''));
    expect(f.end).toBeGreaterThanOrEqual(f.start);
  });
  // times never go back: every word starts at or after the end of the word before, across finals
  const all = finals.flatMap((f) => f.words);
  for (let i = 1; i < all.length; i++) expect(all[i]!.start).toBeGreaterThanOrEqual(all[i - 1]!.end);
  return finals;
}

// the whole of longform_en at real speed through the library, the CLI and the WebSocket: stream.longform.test.ts

describe('a stream the VAD never calls paused', () => {
  it('is cut at committed sentence ends and stays within its bounds (threshold 0: every window is speech)', async () => {
    const whisper = await loadModel(TINY_EN, { threads: 2 });
    try {
      const audio = (await decodeAudio(LONGFORM)).subarray(0, 34 * SAMPLE_RATE);
      const stream = await createStream(whisper, {
        language: 'en',
        minChunkSeconds: 1,
        bufferTrimSeconds: 8,
        vadOptions: { threshold: 0, negThreshold: 0 },
      });
      const events = await play(stream, audio, 0.5);
      const finals = checkFinals(events);
      // no pause ever: what is final came from agreement, cuts, or the end of the stream
      expect(finals.every((f) => f.reason !== 'pause')).toBe(true);
      expect(finals.filter((f) => f.reason === 'agreement').length).toBeGreaterThan(5);
      expect(stream.stats.peakBufferSeconds).toBeLessThanOrEqual(8 + 6);
      expect(plain(finals.map((f) => f.text).join(''))).toMatch(/hugely pleased.*worst of her/);
    } finally {
      await whisper.dispose();
    }
  }, 600_000);
});

describe('live translation with whisper-base_timestamped: language detected once, words from cross-attention', () => {
  it('a German FLEURS file comes out in English, close to the sequential translation, with word times in order', async () => {
    const whisper = await loadModel(BASE_TS, { threads: 2 });
    try {
      const audio = await decodeAudio(join(EVAL, 'fleurs_de', 'fleurs-de-001.ogg'));
      const stream = await createStream(whisper, { task: 'translate', wordTimestamps: true });
      const events = await play(stream, audio);
      const language = events.filter((e) => e.type === 'language');
      expect(language).toEqual([expect.objectContaining({ language: 'de' })]);
      const finals = checkFinals(events);
      const text = finals.map((f) => f.text).join('');
      const sequential = await whisper.transcribeAll(audio, { task: 'translate' });
      // the same English words, mostly (the live text is decoded from shorter audio)
      const bag = (t: string): string[] => plain(t).split(' ').filter((x) => x.length > 2);
      const seq = new Set(bag(sequential.text));
      const live = bag(text);
      const shared = live.filter((x) => seq.has(x)).length;
      console.log(`live translate de→en: "${text.trim()}" | sequential: "${sequential.text.trim()}"`);
      expect(live.length).toBeGreaterThan(5);
      expect(shared / live.length).toBeGreaterThan(0.4);
      expect(plain(text)).not.toMatch(/\b(die|und|der|auch|nicht|wasser)\b/);
      for (const f of finals) for (const x of f.words) expect(x.end).toBeLessThanOrEqual(audio.length / SAMPLE_RATE + 0.01);
    } finally {
      await whisper.dispose();
    }
  }, 600_000);
});

describe('end, abort and errors', () => {
  let whisper: Whisper;
  let jfk: Float32Array;
  beforeAll(async () => {
    whisper = await loadModel(TINY_EN, { threads: 2 });
    jfk = await decodeAudio(JFK);
  });
  afterAll(async () => whisper.dispose());

  it('a hypothesis that loops at every temperature is neither shown nor committed (repetitive, no words)', async () => {
    // the committed words of the buffer are the decoder's prefix; a prefix that is itself a loop keeps tiny.en in it
    const prefix = Array.from({ length: 9 }, (_, i) => [
      { word: ' ask', start: i * 0.4, end: i * 0.4 + 0.2, probability: 1 },
      { word: ' not', start: i * 0.4 + 0.2, end: i * 0.4 + 0.4, probability: 1 },
    ]).flat();
    const request = { audio: jfk, offset: 0, language: 'en', prompt: [], prefix, seed: 0, windowPadding: 30 };
    const looped = await decodeStep(whisper.model, resolveTranscribeOptions({ temperature: [0] }), request);
    expect(looped.repetitive).toBe(true);
    expect(looped.words).toEqual([]);
    // without the compression check the same decoding is taken as it is: the loop itself
    const kept = await decodeStep(
      whisper.model,
      resolveTranscribeOptions({ temperature: [0], compressionRatioThreshold: null }),
      request,
    );
    expect(kept.repetitive).toBe(false);
    const text = kept.words.map((w) => w.word).join('');
    expect(text.match(/ask not/g)?.length ?? 0).toBeGreaterThan(5);
  });

  it('a buffer shorter than FALLBACK_MIN_BUFFER_S is decoded at the first temperature only (no sampled best-of rows)', async () => {
    // jfk 2.0–2.6 s: a file transcription of it falls back to T = 0.2 (and hears "We'll see you next time.")
    const audio = jfk.slice(2 * SAMPLE_RATE, 2.6 * SAMPLE_RATE);
    expect(audio.length / SAMPLE_RATE).toBeLessThan(FALLBACK_MIN_BUFFER_S);
    const counted = vi.spyOn(whisper.model, 'decode');
    const file = await whisper.transcribeAll(audio, { language: 'en' });
    expect(file.segments[0]?.temperature).toBeGreaterThan(0);
    expect(counted.mock.calls.some(([, cache]) => cache.batch > 1)).toBe(true);
    counted.mockClear();
    const step = await decodeStep(whisper.model, resolveTranscribeOptions({}), { audio, offset: 0, language: 'en', prompt: [], prefix: [], seed: 0, windowPadding: 30 });
    expect(step.temperature).toBe(0);
    expect(counted.mock.calls.length).toBeGreaterThan(0);
    expect(counted.mock.calls.every(([, cache]) => cache.batch === 1)).toBe(true);
    counted.mockRestore();
  });

  it("a step's tokens are the next step's draft: what follows the words committed since, timestamps moved with the buffer", async () => {
    const o = resolveTranscribeOptions({});
    const tk = whisper.model.tokenizer;
    const tb = tk.special.timestampBegin;
    const first = await decodeStep(whisper.model, o, { audio: jfk.subarray(0, 7 * SAMPLE_RATE), offset: 0, language: 'en', prompt: [], prefix: [], seed: 0, windowPadding: 30 });
    expect(first.words.length).toBeGreaterThan(5);
    expect(tk.decode(first.tokens.filter((t) => t < tb))).toBe(first.words.map((x) => x.word).join(''));
    const committed = first.words.slice(0, 3);
    const chars = committed.map((x) => x.word).join('').length;
    const draft = draftAfter(tk, first.tokens, chars, 0);
    expect(tk.decode(draft.filter((t) => t < tb))).toBe(first.words.slice(3).map((x) => x.word).join(''));
    // the buffer's start moved 0.4 s: timestamps move 20 steps back; one that would fall before the buffer ends the draft
    expect(draft.some((t) => t >= tb + 20)).toBe(true);
    expect(draftAfter(tk, first.tokens, chars, 20)).toEqual(draft.map((t) => (t >= tb ? t - 20 : t)));
    const firstStamp = draft.findIndex((t) => t >= tb);
    expect(draftAfter(tk, first.tokens, chars, 1500)).toEqual(draft.slice(0, firstStamp));
    expect(draftAfter(tk, first.tokens, 0, 20)).toEqual([]); // its <|0.00|> would be before the buffer
    expect(draftAfter(tk, first.tokens, chars - 1, 0)).toEqual([]); // not where a token ends
    // the next step (more audio, the three words committed) gives the same words with the draft as without
    const request = { audio: jfk, offset: 0, language: 'en', prompt: [], prefix: committed, seed: 1, windowPadding: 30 };
    const calls = vi.spyOn(whisper.model, 'decode');
    const plain = await decodeStep(whisper.model, o, request);
    const plainRuns = calls.mock.calls.length;
    const drafted = await decodeStep(whisper.model, o, { ...request, draft });
    const draftedRuns = calls.mock.calls.length - plainRuns;
    calls.mockRestore();
    expect(drafted.tokens).toEqual(plain.tokens);
    // the draft's tokens were checked in the prompt run, not decoded one run each
    // (here 24 → 15 runs, with 9 of the draft's 10 tokens kept)
    expect(draftedRuns).toBeLessThan(plainRuns - 4);
    const timed = (r: typeof plain): unknown[] => r.words.map((x) => [x.word, x.start, x.end]);
    expect(timed(drafted)).toEqual(timed(plain));
    // a word's probability is the window's mean log-probability: the same up to the arithmetic (mixed activations: the
    // draft's tokens scored by the float prompt run, the others by int8 cached steps; 0.003 apart measured)
    const digits = whisper.model.activations === 'mixed' ? 2 : 4;
    drafted.words.forEach((x, i) => expect(x.probability).toBeCloseTo(plain.words[i]!.probability, digits));
  });

  it('short windows: a step encodes the buffer and windowPadding seconds of silence, not 30 s; jfk reads the same', async () => {
    const o = resolveTranscribeOptions({});
    expect(whisper.model.shortWindows).toBe(true);
    const encode = vi.spyOn(whisper.model, 'encode');
    const request = { audio: jfk, offset: 0, language: 'en', prompt: [], prefix: [], seed: 0 };
    const whole = await decodeStep(whisper.model, o, { ...request, windowPadding: 30 });
    const short = await decodeStep(whisper.model, o, { ...request, windowPadding: 5 });
    // 11.0 s of jfk: 1100 frames of audio; +5 s of silence: 1600 (30 s: the whole window)
    const audioFrames = Math.floor(jfk.length / 160);
    expect(encode.mock.calls.map(([mel, batch]) => mel.length / (batch * 80))).toEqual([3000, 2 * Math.ceil((audioFrames + 500) / 2)]);
    encode.mockRestore();
    expect(plain(short.words.map((x) => x.word).join(''))).toBe(plain(whole.words.map((x) => x.word).join('')));
    for (const x of short.words) expect(x.end).toBeLessThanOrEqual(jfk.length / SAMPLE_RATE + 0.02);
  });

  it('a model whose encoder takes whole windows only: short windows refused by name when asked for, 30 s by default', async () => {
    // the files as they are (no graph rewrite): a fixed 3000-frame input
    const fixed = await loadModel(TINY_EN, { threads: 2, activations: 'int8', optimizeDecoder: false });
    try {
      expect(fixed.model.shortWindows).toBe(false);
      await expect(createStream(fixed, { windowPaddingSeconds: 5 })).rejects.toMatchObject({
        code: 'E_OPTIONS',
        message: expect.stringMatching(/windowPaddingSeconds.*whole 30-s windows/) as string,
      });
      await expect(fixed.model.encode(new Float32Array(80 * 1600), 1)).rejects.toMatchObject({
        code: 'E_INFERENCE',
        message: expect.stringContaining('takes 3000 mel frames (30 s) per window, not 1600') as string,
      });
      const stream = await createStream(fixed, {}); // the default padding: whole windows on this model
      const finals: string[] = [];
      stream.on((e) => void (e.type === 'final' && finals.push(e.text)));
      stream.push(jfk);
      await stream.end();
      expect(plain(finals.join(''))).toContain('ask not what your country can do for you');
    } finally {
      await fixed.dispose();
    }
  });

  it('end() flushes the tail as final; the whole file pushed at once works too; the iterator ends', async () => {
    const stream = await createStream(whisper, {});
    const seen: StreamEvent[] = [];
    const reading = (async () => {
      for await (const e of stream) seen.push(e);
    })();
    stream.push(jfk);
    await stream.end();
    await reading;
    const finals = checkFinals(seen);
    const text = finals.map((f) => f.text).join('');
    expect(plain(text)).toContain('ask not what your country can do for you');
    expect(finals[finals.length - 1]?.reason).toMatch(/pause|end/);
    expect(() => stream.push(jfk)).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }) as Error);
  });

  it('an abort sends the last hypothesis as final and ends the stream', async () => {
    const controller = new AbortController();
    const events: StreamEvent[] = [];
    const stream = await createStream(whisper, { vadOptions: { minSilenceDurationMs: 5000 } }, {
      signal: controller.signal,
      onEvent: (e) => events.push(e),
    });
    for (let i = 0; i < 6 * SAMPLE_RATE; i += 1600) {
      stream.push(jfk.subarray(i, i + 1600));
      await stream.drain();
    }
    controller.abort();
    await stream.end();
    const finals = checkFinals(events);
    expect(stream.closed).toBe(true);
    expect(finals.length).toBeGreaterThan(0);
    expect(finals[finals.length - 1]?.reason).toBe('abort');
    expect(plain(finals.map((f) => f.text).join(''))).toContain('fellow americans');
    expect(() => stream.push(jfk)).toThrow(expect.objectContaining({ code: 'E_ABORTED' }) as Error);
  });

  it('refuses bad audio and impossible options', async () => {
    const stream = await createStream(whisper, {});
    expect(() => stream.push(Float32Array.of(0, Number.NaN))).toThrow(expect.objectContaining({ code: 'E_AUDIO_DECODE' }) as Error);
    await stream.end();
    await expect(createStream(whisper, { language: 'de' })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(createStream(whisper, { task: 'translate' })).rejects.toMatchObject({ code: 'E_OPTIONS' });
    await expect(createStream(whisper, { wordTimestamps: true })).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });
});
