import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAudio } from '../src/audio/index.js';
import { loadModel, type Segment, type Whisper } from '../src/index.js';
import { BASE, BASE_TS, JFK } from './helpers/paths.js';

const THREADS = 2;
const SR = 16000;

/** A small seeded generator (mulberry32), so that the noise is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SECONDS = 60;

/** Non-speech made here, 60 s each at 16 kHz. */
function nonSpeech(): Record<string, Float32Array> {
  const n = SECONDS * SR;
  const silence = new Float32Array(n);
  const white = new Float32Array(n);
  const r = rng(1);
  for (let i = 0; i < n; i++) white[i] = 0.2 * (r() * 2 - 1);
  // pink noise: white noise through Paul Kellet's economy 1/f filter
  const pink = new Float32Array(n);
  const q = rng(2);
  let b0 = 0;
  let b1 = 0;
  let b2 = 0;
  for (let i = 0; i < n; i++) {
    const w = q() * 2 - 1;
    b0 = 0.99765 * b0 + w * 0.099046;
    b1 = 0.963 * b1 + w * 0.2965164;
    b2 = 0.57 * b2 + w * 1.0526913;
    pink[i] = 0.1 * (b0 + b1 + b2 + w * 0.1848);
  }
  // a chord of steady tones
  const tones = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / SR;
    tones[i] = 0.08 * (Math.sin(2 * Math.PI * 220 * t) + Math.sin(2 * Math.PI * 330 * t) + Math.sin(2 * Math.PI * 440 * t) + Math.sin(2 * Math.PI * 1000 * t));
  }
  // a short synth sequence: a looped eight-note melody of decaying square-ish notes, 0.25 s each
  const synth = new Float32Array(n);
  const melody = [262, 330, 392, 523, 392, 330, 294, 247];
  const note = SR / 4;
  for (let i = 0; i < n; i++) {
    const k = Math.floor(i / note);
    const f = melody[k % melody.length] as number;
    const t = (i % note) / SR;
    const env = Math.exp(-6 * t);
    const x = Math.sin(2 * Math.PI * f * t);
    synth[i] = 0.3 * env * (x + 0.33 * Math.sin(6 * Math.PI * f * t) + 0.2 * Math.sin(10 * Math.PI * f * t));
  }
  return { 'digital silence': silence, 'white noise': white, 'pink noise': pink, 'tone chord': tones, 'synth sequence': synth };
}

/**
 * The longest segment (in words) each non-speech signal may give without the VAD: "a few words" — except the synth
 * sequence, where the no-speech gate lets an invented sentence through (measured: 9 segments of the same 9 words,
 * "I'm not sure if I can get this right.", 81 words, each window prompted with the one before): the model rates the
 * melody as speech-like (low no-speech probability), so only the VAD keeps it out.
 */
const MOST_WORDS: Record<string, number> = { 'synth sequence': 10 };

const words = (s: Segment): number => s.text.trim().split(/\s+/).filter(Boolean).length;

describe('hallucination guard on non-speech (whisper-base)', () => {
  let whisper: Whisper;
  const signals = nonSpeech();
  beforeAll(async () => {
    whisper = await loadModel(BASE, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  it('with vadFilter: no words at all, sequential or batched', async () => {
    const report: string[] = [];
    const texts: string[] = [];
    for (const [name, audio] of Object.entries(signals)) {
      const seq = await whisper.transcribeAll(audio, { vadFilter: true });
      const batched = await whisper.transcribeAll(audio, { batchSize: 8 });
      expect(seq.info.duration).toBe(SECONDS);
      report.push(`${name}: VAD kept ${seq.info.durationAfterVad?.toFixed(2)} s; text ${JSON.stringify(seq.text)} / batched ${JSON.stringify(batched.text)}`);
      texts.push(seq.text, batched.text);
    }
    console.log(`non-speech with vadFilter, whisper-base:\n  ${report.join('\n  ')}`);
    expect(texts.map((t) => t.trim())).toEqual(texts.map(() => ''));
  });

  it('without the VAD: the no-speech gate keeps every segment to a few words (measured, printed)', async () => {
    const report: string[] = [];
    const most: number[] = [];
    let total = 0;
    for (const [name, audio] of Object.entries(signals)) {
      const r = await whisper.transcribeAll(audio, { language: 'en' });
      const n = r.segments.reduce((k, s) => k + words(s), 0);
      total += n;
      const longest = Math.max(0, ...r.segments.map(words));
      most.push(longest);
      report.push(`${name}: ${r.segments.length} segment(s), ${n} word(s), longest ${longest}${n ? ` ${JSON.stringify(r.text.trim())}` : ''}`);
    }
    console.log(`non-speech without VAD, whisper-base, openai defaults: ${total} word(s) in all\n  ${report.join('\n  ')}`);
    for (const [i, name] of Object.keys(signals).entries()) expect(most[i], name).toBeLessThanOrEqual(MOST_WORDS[name] ?? 4);
  });
});

describe('speech followed by silence; times of the VAD stage (whisper-base)', () => {
  let whisper: Whisper;
  let timestamped: Whisper;
  let jfk: Float32Array;
  beforeAll(async () => {
    whisper = await loadModel(BASE, { threads: THREADS });
    timestamped = await loadModel(BASE_TS, { threads: THREADS });
    jfk = await decodeAudio(JFK);
  });
  afterAll(async () => Promise.all([whisper.dispose(), timestamped.dispose()]));

  it('jfk + 20 s of silence: nothing after the speech, with and without the VAD, sequential and batched', async () => {
    const audio = new Float32Array(jfk.length + 20 * SR);
    audio.set(jfk);
    const speechEnd = jfk.length / SR;
    for (const options of [{}, { vadFilter: true }, { batchSize: 8 }, { batchSize: 8, vadFilter: false }]) {
      const r = await whisper.transcribeAll(audio, { language: 'en', ...options });
      const label = JSON.stringify(options);
      expect(r.text.toLowerCase(), label).toContain('ask not what your country can do for you');
      for (const s of r.segments) expect(s.start, `${label}: ${s.text}`).toBeLessThan(speechEnd);
      expect(r.segments.at(-1)?.end ?? 0, label).toBeLessThanOrEqual(speechEnd + 0.5);
      expect(r.text.toLowerCase().match(/ask not/g)?.length, label).toBe(1);
    }
  });

  it('vadFilter maps segments and words back to the original audio (silence before, between and after)', async () => {
    // 3 s silence, jfk, 8 s silence, jfk, 4 s silence
    const gap1 = 3 * SR;
    const gap2 = 8 * SR;
    const audio = new Float32Array(gap1 + jfk.length + gap2 + jfk.length + 4 * SR);
    audio.set(jfk, gap1);
    const second = gap1 + jfk.length + gap2;
    audio.set(jfk, second);
    const plain = await timestamped.transcribeAll(jfk, { language: 'en', wordTimestamps: true });
    const r = await timestamped.transcribeAll(audio, { language: 'en', wordTimestamps: true, vadFilter: true });
    expect(r.info.duration).toBeCloseTo(audio.length / SR, 6);
    expect(r.info.durationAfterVad).toBeLessThan(2 * (jfk.length / SR) + 2);
    const allWords = r.segments.flatMap((s) => s.words ?? []);
    const plainWords = plain.segments.flatMap((s) => s.words ?? []);
    expect(allWords.length).toBe(2 * plainWords.length);
    // each half's words sit inside that copy of jfk, at the plain transcript's times shifted there (word times in
    // pauses are loose in both, so the median deviation is what is compared)
    const halves = [allWords.slice(0, plainWords.length), allWords.slice(plainWords.length)];
    const copies = [gap1 / SR, second / SR];
    const inside = (w: { start: number; end: number }, shift: number): boolean =>
      w.start >= shift - 0.5 && w.end <= shift + jfk.length / SR + 0.5;
    halves.forEach((half, h) => {
      const shift = copies[h] as number;
      const deviations: number[] = [];
      let elsewhere = 0;
      half.forEach((w, i) => {
        const p = plainWords[i];
        const bare = (x: string | undefined): string => (x ?? '').toLowerCase().replace(/[^a-z]/g, '');
        expect(bare(w.word)).toBe(bare(p?.word));
        // no word lands in a silence the VAD cut out
        expect(copies.some((c) => inside(w, c)), `${w.word} ${w.start}-${w.end}`).toBe(true);
        // the model may time the word that follows a splice before it (seen: the second copy's "And", its
        // sentence joined to the first copy's, timed in the first copy's trailing pad); the mapping keeps the rest
        if (!inside(w, shift)) elsewhere++;
        deviations.push(Math.abs(w.start - ((p?.start ?? 0) + shift)), Math.abs(w.end - ((p?.end ?? 0) + shift)));
      });
      expect(elsewhere, `copy ${h + 1}: words timed in the other copy`).toBeLessThanOrEqual(1);
      deviations.sort((a, b) => a - b);
      expect(deviations[Math.floor(deviations.length / 2)], `copy ${h + 1}: median deviation`).toBeLessThan(0.1);
    });
    let prev = 0;
    for (const s of r.segments) {
      expect(s.start).toBeGreaterThanOrEqual(prev);
      expect(s.start).toBe(s.words?.[0]?.start);
      expect(s.end).toBe(s.words?.at(-1)?.end);
      prev = s.end;
    }
    // the batched pipeline maps its chunks' words the same way
    const batched = await timestamped.transcribeAll(audio, { language: 'en', wordTimestamps: true, batchSize: 4 });
    const batchedWords = batched.segments.flatMap((s) => s.words ?? []);
    expect(batchedWords.length).toBeGreaterThanOrEqual(plainWords.length * 2 - 2);
    let last = 0;
    for (const w of batchedWords) {
      expect(w.start).toBeGreaterThanOrEqual(last - 1e-9);
      const inFirst = w.start >= gap1 / SR - 0.5 && w.end <= (gap1 + jfk.length) / SR + 0.5;
      const inSecond = w.start >= second / SR - 0.5 && w.end <= (second + jfk.length) / SR + 0.5;
      expect(inFirst || inSecond, `${w.word} ${w.start}–${w.end}`).toBe(true);
      last = w.end;
    }
    for (const s of batched.segments) expect(s.start).toBe(s.words?.[0]?.start);
    // and without words: segment times too (the first segment starts after the leading silence)
    const noWords = await whisper.transcribeAll(audio, { language: 'en', vadFilter: true });
    expect(noWords.segments[0]?.start).toBeGreaterThan(2.5);
    expect(noWords.segments.at(-1)?.end).toBeGreaterThan(second / SR + 9);
    expect(noWords.segments.at(-1)?.end).toBeLessThanOrEqual((second + jfk.length) / SR + 0.5);
  });
});
