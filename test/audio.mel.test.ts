import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  decodeAudio,
  HOP_LENGTH,
  logMelSpectrogram,
  melFilterbank,
  melWindow,
  N_FRAMES,
  N_SAMPLES,
} from '../src/audio/index.js';
import { ComplexFft, RealFft } from '../src/audio/fft.js';

const FILTERS = new URL('./fixtures/audio/mel_filters.json', import.meta.url).pathname;
const JFK = new URL('../../shared/eval/jfk/jfk.wav', import.meta.url).pathname;
const REFERENCE = new URL('../../shared/models/whisper-base/reference/jfk_mel.f32', import.meta.url).pathname;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

describe('log-mel spectrogram', () => {
  it('matches the reference log-mel of jfk.wav within 1e-4', async () => {
    const samples = await decodeAudio(JFK);
    expect(samples.length).toBe(176000);
    const mel = logMelSpectrogram(samples, 80, N_SAMPLES);
    expect(mel.nMels).toBe(80);
    expect(mel.nFrames).toBe((176000 + N_SAMPLES) / HOP_LENGTH);
    const buf = readFileSync(REFERENCE);
    const reference = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    expect(reference.length).toBe(80 * N_FRAMES);
    const window = melWindow(mel, 0);
    const diff = maxAbsDiff(window, reference);
    expect(diff).toBeLessThan(1e-4);
  });
});

describe('log-mel against a direct implementation', () => {
  // A slow, literal transcription of audio.py log_mel_spectrogram: build the padded signal as torch.stft(center=True,
  // pad_mode='reflect') does, DFT each windowed frame, drop the last frame, dense filterbank, log10, clamp, scale.
  function direct(samples: Float32Array, nMels: number, padding: number): Float32Array {
    const x = new Float64Array(samples.length + padding);
    x.set(samples);
    const L = x.length;
    const padded = new Float64Array(L + 400);
    for (let i = 0; i < padded.length; i++) {
      const j = i - 200;
      padded[i] = x[j < 0 ? -j : j >= L ? 2 * (L - 1) - j : j] as number;
    }
    const nFrames = 1 + Math.floor(L / 160) - 1;
    const filters = melFilterbank(nMels);
    const out = new Float32Array(nMels * nFrames);
    for (let t = 0; t < nFrames; t++) {
      const power = new Float64Array(201);
      for (let k = 0; k <= 200; k++) {
        let re = 0;
        let im = 0;
        for (let i = 0; i < 400; i++) {
          const v = (padded[t * 160 + i] as number) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / 400));
          re += v * Math.cos((-2 * Math.PI * ((k * i) % 400)) / 400);
          im += v * Math.sin((-2 * Math.PI * ((k * i) % 400)) / 400);
        }
        power[k] = re * re + im * im;
      }
      for (let m = 0; m < nMels; m++) {
        let acc = 0;
        for (let k = 0; k <= 200; k++) acc += (filters[m * 201 + k] as number) * (power[k] as number);
        out[m * nFrames + t] = Math.log10(Math.max(acc, 1e-10));
      }
    }
    const max = out.reduce((a, b) => Math.max(a, b), -Infinity);
    return out.map((v) => (Math.max(v, max - 8) + 4) / 4);
  }

  function chirp(n: number): Float32Array {
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      x[i] = 0.5 * Math.sin(2 * Math.PI * (100 + (3 * i) / 16) * (i / 16000)) + 0.01 * Math.sin(i);
    }
    return x;
  }

  it.each([
    [2000, 0, 80],
    [2000, 1000, 128],
    [1605, 333, 80],
    [250, 0, 80],
  ])('%i samples, padding %i, %i mels', (n, padding, nMels) => {
    const samples = chirp(n);
    const got = logMelSpectrogram(samples, nMels, padding);
    expect(got.nFrames).toBe(Math.floor((n + padding) / 160));
    expect(maxAbsDiff(got.data, direct(samples, nMels, padding))).toBeLessThan(1e-5);
  });

  it('gives no frames for fewer than 160 samples', () => {
    expect(logMelSpectrogram(new Float32Array(100), 80).nFrames).toBe(0);
  });

  it('rejects bad arguments with E_OPTIONS', () => {
    const x = new Float32Array(1000);
    for (const call of [
      () => logMelSpectrogram(x, 0),
      () => logMelSpectrogram(x, 80.5),
      () => logMelSpectrogram(x, 80, -1),
      () => melWindow(logMelSpectrogram(x, 80), -1),
    ]) {
      expect(call).toThrow(expect.objectContaining({ code: 'E_OPTIONS' }));
    }
  });
});

describe('FFT', () => {
  function naiveDft(re: Float64Array, im: Float64Array): [Float64Array, Float64Array] {
    const n = re.length;
    const outRe = new Float64Array(n);
    const outIm = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      let sr = 0;
      let si = 0;
      for (let t = 0; t < n; t++) {
        const a = (-2 * Math.PI * ((k * t) % n)) / n;
        sr += (re[t] as number) * Math.cos(a) - (im[t] as number) * Math.sin(a);
        si += (re[t] as number) * Math.sin(a) + (im[t] as number) * Math.cos(a);
      }
      outRe[k] = sr;
      outIm[k] = si;
    }
    return [outRe, outIm];
  }

  function noise(n: number, seed: number): Float64Array {
    const x = new Float64Array(n);
    let s = seed;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      x[i] = s / 1073741824 - 1;
    }
    return x;
  }

  // 200 is the size the STFT uses (8 · 5 · 5); the others exercise every butterfly: 8 (first stage only), 4, 2, 5,
  // the generic one (3, 7, 11) and their mixes.
  const sizes = [1, 2, 3, 4, 5, 8, 12, 20, 24, 25, 40, 50, 77, 100, 200, 400];
  it.each(sizes)('complex FFT of length %i equals the DFT', (n) => {
    const re = noise(n, n);
    const im = noise(n, n + 1);
    const [wantRe, wantIm] = naiveDft(re, im);
    const gotRe = new Float64Array(n);
    const gotIm = new Float64Array(n);
    new ComplexFft(n).transform(re, im, gotRe, gotIm);
    expect(maxAbsDiff(gotRe, wantRe)).toBeLessThan(1e-9 * n);
    expect(maxAbsDiff(gotIm, wantIm)).toBeLessThan(1e-9 * n);
  });

  it.each([2, 10, 400])('real power spectrum of length %i equals |DFT|²', (n) => {
    const x = noise(n, 7 * n);
    const [wantRe, wantIm] = naiveDft(x, new Float64Array(n));
    const want = new Float64Array(n / 2 + 1);
    for (let k = 0; k <= n / 2; k++) want[k] = (wantRe[k] as number) ** 2 + (wantIm[k] as number) ** 2;
    const got = new Float64Array(n / 2 + 1);
    new RealFft(n).powerSpectrum(x, got);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-8 * n * n);
  });
});

describe('mel filterbank', () => {
  const reference = JSON.parse(readFileSync(FILTERS, 'utf8')) as {
    filters: Record<string, { start: number; weights: number[] }[]>;
  };

  it.each([80, 128])('%i filters equal librosa-style slaney filters (faster-whisper) to float32 rounding', (nMels) => {
    const rows = reference.filters[String(nMels)];
    expect(rows).toHaveLength(nMels);
    const got = melFilterbank(nMels);
    const want = new Float32Array(nMels * 201);
    rows?.forEach((row, m) => want.set(row.weights, m * 201 + row.start));
    // Both are float32 roundings of the same float64 formula (weights ≤ 0.03, float32 ulp there ≈ 2e-9).
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-8);
    for (let i = 0; i < got.length; i++) expect(got[i] === 0).toBe(want[i] === 0);
  });
});

describe('melWindow', () => {
  const mel = { nMels: 2, nFrames: 5, data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) };

  it('slices frames of every row', () => {
    expect(Array.from(melWindow(mel, 1, 3))).toEqual([2, 3, 4, 7, 8, 9]);
  });

  it('pads with zeros beyond the end, as pad_or_trim does', () => {
    expect(Array.from(melWindow(mel, 3, 4))).toEqual([4, 5, 0, 0, 9, 10, 0, 0]);
    expect(Array.from(melWindow(mel, 7, 2))).toEqual([0, 0, 0, 0]);
  });

  it('reads frames at or past endFrame as zeros (openai transcribe.py: segment_size ≤ content_frames - seek)', () => {
    expect(Array.from(melWindow(mel, 1, 3, 3))).toEqual([2, 3, 0, 7, 8, 0]);
    expect(Array.from(melWindow(mel, 3, 2, 2))).toEqual([0, 0, 0, 0]);
    expect(Array.from(melWindow(mel, 3, 4, 99))).toEqual([4, 5, 0, 0, 9, 10, 0, 0]);
  });

  it('defaults to N_FRAMES frames', () => {
    expect(melWindow(mel, 0)).toHaveLength(2 * N_FRAMES);
  });
});
