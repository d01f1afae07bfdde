/**
 * Band-limited resampling of mono audio: a polyphase windowed-sinc (Kaiser) interpolator.
 *
 * Why hand-written: the maintained npm resamplers are WASM builds (libsamplerate-js, speex-resampler) that load
 * asynchronously and add a native-ish dependency for ~80 lines of arithmetic, or simple linear/cubic interpolators
 * that alias. More importantly, the reference (openai/whisper audio.py load_audio) resamples with ffmpeg's
 * libswresample, so we use the same design and the same default parameters as its `swr` engine — a Kaiser-windowed
 * sinc with 32 zero crossings in the filter (16 each side), Kaiser β = 9, cut-off at 0.97 of the output Nyquist
 * frequency when downsampling, every phase normalised to unit DC gain, the signal mirrored at both ends — which keeps
 * our output within one 16-bit step of ffmpeg's for 24-bit input and a few steps for 16-bit input, where ffmpeg filters
 * in fixed point (see test/audio.decode.test.ts), while being written from the textbook definition.
 */

import { WhisperError } from '../errors.js';

const ZERO_CROSSINGS = 16; // per side (libswresample filter_size 32)
const CUTOFF = 0.97; // libswresample's default cutoff
const KAISER_BETA = 9; // libswresample default kaiser_beta
const MAX_PHASES = 1024; // beyond this many distinct phases, interpolate linearly between 1024 (as swr does)

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0 (power series; converges fast for the β used here). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/** Resamples `input` from `fromRate` to `toRate` Hz (both positive integers). Returns the input when they match. */
export function resample(input: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (!Number.isInteger(fromRate) || !Number.isInteger(toRate) || fromRate <= 0 || toRate <= 0) {
    throw new WhisperError('E_OPTIONS', `sample rates must be positive integers, got ${fromRate} → ${toRate}`);
  }
  if (fromRate === toRate) return input;
  const g = gcd(fromRate, toRate);
  const up = toRate / g; // output sample n sits at input position n·down/up
  const down = fromRate / g;
  const nIn = input.length;
  const nOut = Math.ceil((nIn * up) / down);
  const out = new Float32Array(nOut);
  if (nIn === 0) return out;

  // Filter in units of input samples: sinc with its first zero at 1/factor samples, Kaiser window over ±halfWidth.
  // As in libswresample, factor = min(1, cutoff · to/from): when downsampling the cut-off sits at 0.97 of the output
  // Nyquist frequency; when upsampling (factor 1) at the input's Nyquist frequency.
  const factor = Math.min(1, (CUTOFF * toRate) / fromRate);
  const halfWidth = ZERO_CROSSINGS / factor;
  const K = Math.ceil(halfWidth);
  const taps = 2 * K; // offsets j = 1-K .. K around floor(position)
  const exact = up <= MAX_PHASES;
  const phases = exact ? up : MAX_PHASES;
  // Row p holds the taps for fractional position p/phases; one extra row (p = phases) for interpolation.
  const table = new Float64Array((phases + 1) * taps);
  const i0Beta = besselI0(KAISER_BETA);
  for (let p = 0; p <= phases; p++) {
    const frac = p / phases;
    let sum = 0;
    for (let t = 0; t < taps; t++) {
      const d = frac - (t + 1 - K); // distance from the output position to input sample floor(pos) + j
      const r = d / halfWidth;
      let h = 0;
      if (r > -1 && r < 1) {
        const x = Math.PI * factor * d;
        const sinc = x === 0 ? 1 : Math.sin(x) / x;
        h = (sinc * besselI0(KAISER_BETA * Math.sqrt(1 - r * r))) / i0Beta;
      }
      table[p * taps + t] = h;
      sum += h;
    }
    for (let t = 0; t < taps; t++) table[p * taps + t] = (table[p * taps + t] as number) / sum;
  }

  let base = 0; // floor(n·down/up)
  let rem = 0; // (n·down) mod up
  for (let n = 0; n < nOut; n++) {
    const first = base + 1 - K;
    let acc: number;
    if (exact) {
      acc = dot(input, first, table, rem * taps, taps);
    } else {
      const pos = (rem * phases) / up;
      const p = Math.floor(pos);
      const w = pos - p;
      const a = dot(input, first, table, p * taps, taps);
      const b = dot(input, first, table, (p + 1) * taps, taps);
      acc = a + (b - a) * w;
    }
    out[n] = acc;
    rem += down;
    if (rem >= up) {
      base += Math.floor(rem / up);
      rem %= up;
    }
  }
  return out;
}

/**
 * Σ_t x[first + t] · table[row + t]. Beyond its ends the signal is extended by mirroring, as libswresample does
 * (a mirror about the first sample at the start, x[-i] = x[i]; a mirror that repeats the last sample at the end,
 * x[n + i] = x[n - 1 - i]), so that the first and last few milliseconds match ffmpeg's output too.
 */
function dot(x: Float32Array, first: number, table: Float64Array, row: number, taps: number): number {
  let acc = 0;
  const n = x.length;
  if (first >= 0 && first + taps <= n) {
    // Four partial sums: independent additions keep the FPU busy instead of waiting on one long chain.
    let a1 = 0, a2 = 0, a3 = 0;
    let t = 0;
    for (; t + 4 <= taps; t += 4) {
      acc += (x[first + t] as number) * (table[row + t] as number);
      a1 += (x[first + t + 1] as number) * (table[row + t + 1] as number);
      a2 += (x[first + t + 2] as number) * (table[row + t + 2] as number);
      a3 += (x[first + t + 3] as number) * (table[row + t + 3] as number);
    }
    for (; t < taps; t++) acc += (x[first + t] as number) * (table[row + t] as number);
    acc += a1 + a2 + a3;
  } else {
    for (let t = 0; t < taps; t++) {
      let i = first + t;
      if (i < 0) i = -i;
      else if (i >= n) i = 2 * n - 1 - i;
      if (i >= 0 && i < n) acc += (x[i] as number) * (table[row + t] as number);
    }
  }
  return acc;
}
