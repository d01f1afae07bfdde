import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAudio } from '../src/audio/index.js';
import { WhisperError } from '../src/errors.js';
import {
  SpeechTimeMap,
  VAD_DEFAULTS,
  collectChunks,
  getSpeechTimestamps,
  loadVad,
  planChunks,
  resolveVadOptions,
  sileroModelPath,
  speechSamples,
  spansToSeconds,
  type SpeechSpan,
  type VadModel,
  type VadOptions,
} from '../src/vad/index.js';

const SR = 16000;
const LONGFORM = '/work/shared/eval/longform_en/librispeech_test_other_3ch_concat.flac';
const SEGMENTS = '/work/shared/eval/longform_en/segments.tsv';
const JFK = '/work/shared/eval/jfk/jfk.wav';

interface FwFixture {
  samples: number;
  audio_sha256_f32: string;
  option_sets: Record<string, { options: Record<string, number>; fw_v6: [number, number][]; fw_algo_v5: [number, number][] }>;
  time_map: { times: number[]; original: number[]; original_is_end: number[] };
  chunks_30s: [number, number][];
}
const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/vad/fw_spans_longform_en.json', import.meta.url), 'utf8'),
) as FwFixture;


/** fw_spans' option names (snake_case) → VadOptions. */
function toVadOptions(options: Record<string, number>): Partial<VadOptions> {
  const names: Record<string, keyof VadOptions> = {
    threshold: 'threshold',
    min_speech_duration_ms: 'minSpeechDurationMs',
    max_speech_duration_s: 'maxSpeechDurationS',
    min_silence_duration_ms: 'minSilenceDurationMs',
    speech_pad_ms: 'speechPadMs',
  };
  const out: Partial<Record<keyof VadOptions, number>> = {};
  for (const [key, value] of Object.entries(options)) out[names[key] as keyof VadOptions] = value;
  return out as Partial<VadOptions>;
}

/** Deterministic uniform noise in [-1, 1). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * 2 - 1;
  };
}

function normalise(x: Float32Array, peak: number): Float32Array {
  let max = 0;
  for (const v of x) max = Math.max(max, Math.abs(v));
  if (max > 0) for (let i = 0; i < x.length; i++) x[i] = ((x[i] as number) / max) * peak;
  return x;
}

const N60 = 60 * SR;
const nonSpeech: Record<string, () => Float32Array> = {
  'digital silence': () => new Float32Array(N60),
  'white noise': () => {
    const rand = prng(1);
    return Float32Array.from({ length: N60 }, () => 0.3 * rand());
  },
  'pink noise': () => {
    // Paul Kellet's refined pink filter over white noise
    const rand = prng(2);
    const out = new Float32Array(N60);
    let b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0;
    for (let i = 0; i < N60; i++) {
      const w = rand();
      b0 = 0.99886 * b0 + w * 0.0555179;
      b1 = 0.99332 * b1 + w * 0.0750759;
      b2 = 0.969 * b2 + w * 0.153852;
      b3 = 0.8665 * b3 + w * 0.3104856;
      b4 = 0.55 * b4 + w * 0.5329522;
      b5 = -0.7616 * b5 - w * 0.016898;
      out[i] = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
      b6 = w * 0.115926;
    }
    return normalise(out, 0.5);
  },
  'mix of tones': () => {
    const freqs = [110, 220, 440, 660, 1000, 2500, 4000];
    return normalise(
      Float32Array.from({ length: N60 }, (_, i) => freqs.reduce((sum, f) => sum + Math.sin((2 * Math.PI * f * i) / SR), 0)),
      0.5,
    );
  },
  'synth melody': () => {
    // a square-ish lead (odd harmonics) over a bass line, 4 notes a second, with attack/decay envelopes
    const lead = [60, 64, 67, 72, 71, 67, 64, 62, 60, 65, 69, 72, 74, 72, 69, 65];
    const bass = [36, 36, 43, 43, 41, 41, 38, 38];
    const hz = (midi: number) => 440 * 2 ** ((midi - 69) / 12);
    const out = new Float32Array(N60);
    const note = SR / 4;
    for (let i = 0; i < N60; i++) {
      const n = Math.floor(i / note);
      const t = (i % note) / SR;
      const env = Math.min(1, t / 0.01) * Math.exp(-t * 6);
      const f = hz(lead[n % lead.length] as number);
      let v = 0;
      for (let k = 1; k <= 7; k += 2) v += Math.sin(2 * Math.PI * f * k * (i / SR)) / k;
      const fb = hz(bass[Math.floor(n / 2) % bass.length] as number);
      out[i] = 0.6 * env * v + 0.4 * Math.sin(2 * Math.PI * fb * (i / SR));
    }
    return normalise(out, 0.5);
  },
};

let vad: VadModel;
let longform: Float32Array;
let jfk: Float32Array;

beforeAll(async () => {
  vad = await loadVad();
  longform = await decodeAudio(LONGFORM);
  jfk = await decodeAudio(JFK);
});

afterAll(async () => {
  await vad.dispose();
});

describe('options', () => {
  it('has faster-whisper 1.2.1 defaults, frozen', () => {
    expect(VAD_DEFAULTS).toEqual({
      threshold: 0.5,
      negThreshold: null,
      minSpeechDurationMs: 0,
      maxSpeechDurationS: Infinity,
      minSilenceDurationMs: 2000,
      speechPadMs: 400,
    });
    expect(Object.isFrozen(VAD_DEFAULTS)).toBe(true);
    const resolved = resolveVadOptions();
    expect(resolved.negThreshold).toBeCloseTo(0.35, 12);
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(resolveVadOptions({ threshold: 0.1 }).negThreshold).toBe(0.01);
    expect(resolveVadOptions({ threshold: 0.7, negThreshold: 0.2 }).negThreshold).toBe(0.2);
  });

  const cases: [string, Record<string, unknown>][] = [
    ['threshold', { threshold: 1.5 }],
    ['threshold', { threshold: Number.NaN }],
    ['threshold', { threshold: '0.5' }],
    ['negThreshold', { threshold: 0.5, negThreshold: 0.6 }],
    ['negThreshold', { negThreshold: -0.1 }],
    ['minSpeechDurationMs', { minSpeechDurationMs: -1 }],
    ['minSilenceDurationMs', { minSilenceDurationMs: Infinity }],
    ['speechPadMs', { speechPadMs: 'x' }],
    ['maxSpeechDurationS', { maxSpeechDurationS: 0 }],
    ['maxSpeechDurationS', { maxSpeechDurationS: 0.5, speechPadMs: 400 }],
    ['maxSpeechDurationS', { maxSpeechDurationS: Number.NaN }],
    ['minSilenceMs', { minSilenceMs: 100 }],
  ];
  for (const [name, options] of cases) {
    it(`rejects ${JSON.stringify(options)} naming ${name}`, async () => {
      const call = () => resolveVadOptions(options as Partial<VadOptions>);
      expect(call).toThrow(WhisperError);
      expect(call).toThrow(name);
      await expect(vad.speechTimestamps(new Float32Array(16000), options as Partial<VadOptions>)).rejects.toMatchObject({
        code: 'E_OPTIONS',
        message: expect.stringContaining(name) as unknown,
      });
    });
  }
});

describe('Silero v5 on longform_en', () => {
  it('decodes the audio the fixture was made from', () => {
    expect(longform.length).toBe(fixture.samples);
  });

  it('loads the v5 file rewritten to score sequences of windows', () => {
    expect(vad.engine).toBe('sequence');
    expect(vad.modelPath).toMatch(/@ricky0123[/\\]vad-web[/\\]dist[/\\]silero_vad_v5\.onnx$/);
  });

  it('gives the probabilities of the model as shipped, run window by window', async () => {
    const stepwise = await loadVad({ engine: 'stepwise' });
    try {
      expect(stepwise.engine).toBe('stepwise');
      const expected = await stepwise.speechProbabilities(longform);
      const actual = await vad.speechProbabilities(longform);
      expect(actual.length).toBe(Math.floor(longform.length / 512) + 1);
      expect(actual.length).toBe(expected.length);
      let maxDiff = 0;
      for (let i = 0; i < actual.length; i++) maxDiff = Math.max(maxDiff, Math.abs((actual[i] as number) - (expected[i] as number)));
      expect(maxDiff).toBeLessThan(1e-4);
    } finally {
      await stepwise.dispose();
    }
  });

  for (const [name, set] of Object.entries(fixture.option_sets)) {
    it(`equals faster-whisper's get_speech_timestamps run with the v5 model within 0.1 s (${name})`, async () => {
      const spans = await vad.speechTimestamps(longform, toVadOptions(set.options));
      const expected = set.fw_algo_v5;
      expect(spans.length).toBe(expected.length);
      spans.forEach((span, i) => {
        const [start, end] = expected[i] as [number, number];
        expect(Math.abs(span.start - start)).toBeLessThanOrEqual(0.1 * SR);
        expect(Math.abs(span.end - end)).toBeLessThanOrEqual(0.1 * SR);
      });
    });
  }

  it("covers the speech that faster-whisper 1.2.1's own pipeline (Silero v6) finds", async () => {
    // faster-whisper ships a different Silero (v6); spans differ in detail, not in what is speech.
    for (const set of Object.values(fixture.option_sets)) {
      const spans = await vad.speechTimestamps(longform, toVadOptions(set.options));
      const ours = coverage(spans, longform.length);
      const theirs = coverage(
        set.fw_v6.map(([start, end]) => ({ start, end })),
        longform.length,
      );
      let both = 0;
      let either = 0;
      for (let i = 0; i < ours.length; i++) {
        both += ours[i]! & theirs[i]!;
        either += ours[i]! | theirs[i]!;
      }
      expect(both / either).toBeGreaterThan(0.9);
    }
    const defaults = fixture.option_sets['defaults']!.fw_v6;
    const spans = await vad.speechTimestamps(longform);
    expect(spans.length).toBe(defaults.length);
    spans.forEach((span, i) => {
      expect(Math.abs(span.start - defaults[i]![0])).toBeLessThanOrEqual(0.1 * SR);
      expect(Math.abs(span.end - defaults[i]![1])).toBeLessThanOrEqual(0.1 * SR);
    });
  });

  const pieces = readFileSync(SEGMENTS, 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [start, end] = line.split('\t');
      return { start: Number(start), end: Number(end) };
    });

  for (const [label, options] of [
    ['defaults', {}],
    ['minSilenceDurationMs 300, speechPadMs 100', { minSilenceDurationMs: 300, speechPadMs: 100 }],
  ] as [string, Partial<VadOptions>][]) {
    it(`finds every reference piece and nothing in the 0.5 s gaps alone (${label})`, async () => {
      const spans = spansToSeconds(await vad.speechTimestamps(longform, options));
      expect(spans.length).toBeGreaterThan(0);
      for (const piece of pieces) {
        expect(spans.some((s) => s.start < piece.end && s.end > piece.start)).toBe(true);
      }
      for (const span of spans) {
        const insideGap = pieces.some((p, i) => {
          const next = pieces[i + 1];
          return next !== undefined && span.start >= p.end && span.end <= next.start;
        });
        expect(insideGap).toBe(false);
      }
    });
  }

  it('splits at the gaps with a short minimum silence', async () => {
    const spans = spansToSeconds(await vad.speechTimestamps(longform, { minSilenceDurationMs: 300, speechPadMs: 100 }));
    // every 0.5 s gap between pieces ends one span and starts the next
    const gaps = pieces.slice(1).map((p, i) => ({ start: pieces[i]!.end, end: p.start }));
    const split = gaps.filter((g) => spans.some((s, i) => i + 1 < spans.length && s.end <= g.end && spans[i + 1]!.start >= g.start));
    expect(split.length).toBe(gaps.length);
  });

  it('splits spans longer than maxSpeechDurationS', async () => {
    const spans = await vad.speechTimestamps(longform, { maxSpeechDurationS: 10, minSilenceDurationMs: 2000 });
    expect(spans.length).toBeGreaterThan(1);
    for (const span of spans) expect(span.end - span.start).toBeLessThanOrEqual(10 * SR);
  });
});

describe('non-speech (60 s each, made here)', () => {
  for (const [name, make] of Object.entries(nonSpeech)) {
    it(`finds no speech in ${name}`, async () => {
      const spans = await vad.speechTimestamps(make());
      expect(spans).toEqual([]);
    });
  }

  it('finds no speech in the 20 s of silence after speech', async () => {
    const speech = jfk;
    const audio = new Float32Array(speech.length + 20 * SR);
    audio.set(speech);
    const spans = await vad.speechTimestamps(audio);
    expect(spans.length).toBeGreaterThan(0);
    const pad = (VAD_DEFAULTS.speechPadMs / 1000) * SR;
    for (const span of spans) {
      expect(span.start).toBeLessThan(speech.length);
      expect(span.end).toBeLessThanOrEqual(speech.length + pad);
    }
  });
});

describe('calls', () => {
  it('gives no spans for empty input', async () => {
    expect(await vad.speechTimestamps(new Float32Array(0))).toEqual([]);
  });

  it('keeps state per call: concurrent calls equal one alone', async () => {
    const options = { minSilenceDurationMs: 300 };
    const alone = await vad.speechTimestamps(jfk, options);
    const [a, b, c] = await Promise.all([
      vad.speechTimestamps(jfk, options),
      vad.speechTimestamps(longform.subarray(0, 20 * SR), options),
      vad.speechTimestamps(jfk, options),
    ]);
    expect(a).toEqual(alone);
    expect(c).toEqual(alone);
    expect(b!.length).toBeGreaterThan(0);
  });

  it('stops with E_ABORTED', async () => {
    const done = new AbortController();
    done.abort();
    await expect(vad.speechTimestamps(longform, {}, done.signal)).rejects.toMatchObject({ code: 'E_ABORTED' });
    const later = new AbortController();
    const running = vad.speechTimestamps(longform, {}, later.signal);
    later.abort(); // fires after the first of several runs has started
    await expect(running).rejects.toMatchObject({ code: 'E_ABORTED' });
  });

  it('has a shared default model behind getSpeechTimestamps', async () => {
    expect(await getSpeechTimestamps(jfk)).toEqual(await vad.speechTimestamps(jfk));
  });

  it('refuses calls after dispose with E_DISPOSED', async () => {
    const own = await loadVad();
    await own.dispose();
    await expect(own.speechTimestamps(new Float32Array(SR))).rejects.toMatchObject({ code: 'E_DISPOSED' });
  });

  it('loads Silero v6 from the same package', async () => {
    const v6 = await loadVad({ version: 'v6' });
    try {
      expect(v6.engine).toBe('sequence');
      const spans = await v6.speechTimestamps(jfk);
      expect(spans.length).toBeGreaterThan(0);
    } finally {
      await v6.dispose();
    }
  });

  it('finishes a running call when disposed, and refuses new ones', async () => {
    const own = await loadVad();
    const running = own.speechTimestamps(longform);
    const disposed = own.dispose();
    expect((await running).length).toBe(1);
    await disposed;
    await expect(own.speechTimestamps(jfk)).rejects.toMatchObject({ code: 'E_DISPOSED' });
  });

  it('refuses a Silero file of another interface (v4)', async () => {
    const legacy = sileroModelPath('v5').replace(/silero_vad_v5\.onnx$/, 'silero_vad_legacy.onnx');
    await expect(loadVad({ modelPath: legacy })).rejects.toMatchObject({ code: 'E_MODEL_INVALID' });
  });

  it('reports a missing model file', async () => {
    await expect(loadVad({ modelPath: '/nonexistent/silero.onnx' })).rejects.toMatchObject({ code: 'E_MODEL_FILE_MISSING' });
  });
});

describe('chunks and the time map', () => {
  const split = fixture.option_sets['split_gaps']!.fw_algo_v5.map(([start, end]) => ({ start, end }));

  it("groups spans as faster-whisper's collect_chunks (30 s)", () => {
    const chunks = collectChunks(longform, split, 30);
    expect(chunks.map((c) => [c.offset, c.duration])).toEqual(
      fixture.chunks_30s.map(([offset, duration]) => [expect.closeTo(offset, 9), expect.closeTo(duration, 9)]),
    );
    for (const chunk of chunks) {
      expect(chunk.duration).toBeLessThanOrEqual(30);
      expect(chunk.samples.length).toBe(Math.round(chunk.duration * SR));
    }
    // every span lands in exactly one chunk, in order, and the chunk audio is the span audio
    expect(chunks.flatMap((c) => c.spans)).toEqual(split);
    const first = chunks[0]!;
    expect(first.samples.subarray(0, split[0]!.end - split[0]!.start)).toEqual(longform.subarray(split[0]!.start, split[0]!.end));
  });

  it('cuts a span longer than the chunk length, and makes no chunk without speech', () => {
    const spans: SpeechSpan[] = [
      { start: 0, end: 16000 },
      { start: 32000, end: 32000 + 70 * SR },
      { start: 32000 + 71 * SR, end: 32000 + 72 * SR },
    ];
    const plans = planChunks(spans, 30);
    // the 70 s span becomes pieces of 30, 30 and 10 s; the 1 s spans join their neighbours while the sum fits
    expect(plans.map((p) => p.duration)).toEqual([1, 30, 30, 11]);
    expect(plans.map((p) => p.offset)).toEqual([0, 1, 31, 61]);
    expect(plans[1]!.spans).toEqual([{ start: 32000, end: 32000 + 30 * SR }]);
    expect(plans[3]!.spans).toEqual([
      { start: 32000 + 60 * SR, end: 32000 + 70 * SR },
      { start: 32000 + 71 * SR, end: 32000 + 72 * SR },
    ]);
    expect(planChunks([], 30)).toEqual([]);
    expect(() => planChunks([{ start: 10, end: 5 }])).toThrow(WhisperError);
  });

  it('cutAtPauses ends a full chunk at its longest pause that leaves it half full (the batched pipeline)', () => {
    const s = (a: number, b: number): SpeechSpan => ({ start: Math.round(a * SR), end: Math.round(b * SR) });
    // 8 s spans; pauses of 0.3 s (after 8 s of speech), 1.2 s (after 16 s) and 0.5 s (after 24 s)
    const spans = [s(0, 8), s(8.3, 16.3), s(17.5, 25.5), s(26, 34), s(34, 42)];
    const greedy = planChunks(spans, 30);
    expect(greedy.map((p) => p.spans.length)).toEqual([3, 2]); // collect_chunks: 24 s, then the rest
    const paused = planChunks(spans, 30, { cutAtPauses: true });
    // the 0.3-s pause would leave the chunk under half full; the 1.2-s one is the longest of the others
    expect(paused.map((p) => p.spans)).toEqual([spans.slice(0, 2), spans.slice(2)]);
    expect(paused.map((p) => p.duration)).toEqual([16, 24]);
    expect(paused.map((p) => p.offset)).toEqual([0, 16]);
    // spans that touch (no pause anywhere): the same chunks as collect_chunks
    const touching = [s(0, 8), s(8, 16), s(16, 24), s(24, 32), s(32, 40)];
    expect(planChunks(touching, 30, { cutAtPauses: true })).toEqual(planChunks(touching, 30));
    // every span still lands in exactly one chunk, in order, and none exceeds 30 s
    const many = Array.from({ length: 40 }, (_, i) => s(i * 3.1 + (i % 7 === 0 ? 0.4 : 0), i * 3.1 + 2.9));
    const plans = planChunks(many, 30, { cutAtPauses: true });
    expect(plans.flatMap((p) => p.spans)).toEqual(many);
    for (const p of plans) expect(p.duration).toBeLessThanOrEqual(30);
  });

  it("maps joined-speech times back as faster-whisper's SpeechTimestampsMap", () => {
    const map = new SpeechTimeMap(split);
    fixture.time_map.times.forEach((t, i) => {
      expect(map.toOriginal(t)).toBeCloseTo(fixture.time_map.original[i]!, 5);
      expect(map.toOriginal(t, true)).toBeCloseTo(fixture.time_map.original_is_end[i]!, 5);
    });
  });

  it('maps the start of every span in the joined audio to its start in the original', () => {
    const map = new SpeechTimeMap(split);
    const joined = speechSamples(longform, split);
    let position = 0;
    split.forEach((span, i) => {
      expect(map.chunkIndex(position / SR)).toBe(i);
      expect(map.toOriginal(position / SR)).toBeCloseTo(span.start / SR, 9);
      expect(joined[position]).toBe(longform[span.start]);
      position += span.end - span.start;
      expect(map.toOriginal(position / SR, true)).toBeCloseTo(span.end / SR, 9);
    });
    expect(position).toBe(joined.length);
  });
});

/** 1 for every sample inside a span. */
function coverage(spans: SpeechSpan[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (const span of spans) out.fill(1, span.start, Math.min(length, span.end));
  return out;
}
