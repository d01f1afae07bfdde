/**
 * A small mixed-radix FFT, sized once and reused, for the STFT of the log-mel spectrogram.
 *
 * Why hand-written: Whisper's STFT has n = 400 (= 2^4 · 5^2), which the popular pure-JS FFTs on npm do not handle
 * (fft.js and ml-fft take powers of two only; fft-js/fftjs are radix-2 recursive and slow), and the WASM ports
 * (kissfft, pffft) either refuse n = 400 for real input (pffft needs a multiple of 32) or cost a copy across the WASM
 * boundary for every frame. A planned, iterative mixed-radix Cooley–Tukey transform with precomputed twiddles is
 * about a hundred lines and does 400 points in roughly a microsecond.
 *
 * The real transform of even length n runs one complex transform of length n/2 on the interleaved even/odd samples
 * and untangles the result (the standard "packing" trick), halving the work.
 */

import { WhisperError } from '../errors.js';

/**
 * Radices with hand-written butterflies; any other prime factor goes through the generic (slow) butterfly. A first
 * radix of 8 (twiddle-free, since the first stage combines length-1 transforms) saves a pass: 200 = 8 · 5 · 5.
 */
function factorize(n: number): number[] {
  const radices: number[] = [];
  let m = n;
  if (m % 8 === 0) {
    radices.push(8);
    m /= 8;
  }
  for (const r of [4, 2, 3, 5]) {
    while (m % r === 0) {
      radices.push(r);
      m /= r;
    }
  }
  for (let p = 7; m > 1; p += 2) {
    while (m % p === 0) {
      radices.push(p);
      m /= p;
    }
  }
  return radices;
}

/**
 * Input permutation of an iterative decimation-in-time FFT whose stages use `radices` in order: stage s combines
 * `radices[s]` transforms of length L/radices[s] into one of length L. Built from the recursive definition: the
 * last stage's radix R splits x into its R residue classes mod R, each transformed (recursively) into a contiguous
 * block of length n/R.
 */
function digitReversal(n: number, radices: readonly number[]): Int32Array {
  if (radices.length === 0) return Int32Array.of(0);
  const r = radices[radices.length - 1] as number;
  const m = n / r;
  const sub = digitReversal(m, radices.slice(0, -1));
  const perm = new Int32Array(n);
  for (let q = 0; q < r; q++) {
    for (let i = 0; i < m; i++) perm[q * m + i] = q + r * (sub[i] as number);
  }
  return perm;
}

interface Stage {
  radix: number;
  /** Length of the sub-transforms this stage combines. */
  span: number;
  /** Twiddles w_{span·radix}^{j·q} for j < span, 1 ≤ q < radix, as [re, im] pairs, j-major. */
  twiddles: Float64Array;
}

/** Forward complex FFT of a fixed length n (X[k] = Σ x[t] e^{-2πi kt/n}), on split re/im Float64Arrays. */
export class ComplexFft {
  readonly n: number;
  /** Input order of the iterative transform: slot i takes x[perm[i]]. */
  readonly perm: Int32Array;
  private readonly stages: Stage[];

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 1) {
      throw new WhisperError('E_OPTIONS', `FFT length must be a positive integer, got ${n}`);
    }
    this.n = n;
    const radices = factorize(n);
    this.perm = digitReversal(n, radices);
    this.stages = [];
    let span = 1;
    for (const radix of radices) {
      const len = span * radix;
      const twiddles = new Float64Array(2 * span * (radix - 1));
      for (let j = 0; j < span; j++) {
        for (let q = 1; q < radix; q++) {
          const a = (-2 * Math.PI * j * q) / len;
          const o = 2 * (j * (radix - 1) + q - 1);
          twiddles[o] = Math.cos(a);
          twiddles[o + 1] = Math.sin(a);
        }
      }
      this.stages.push({ radix, span, twiddles });
      span = len;
    }
  }

  /** Transforms (inRe, inIm) into (re, im); the output arrays must not alias the input. */
  transform(inRe: Float64Array, inIm: Float64Array, re: Float64Array, im: Float64Array): void {
    const { n, perm } = this;
    for (let i = 0; i < n; i++) {
      const p = perm[i] as number;
      re[i] = inRe[p] as number;
      im[i] = inIm[p] as number;
    }
    this.transformPermuted(re, im);
  }

  /**
   * The in-place transform of input already laid out in `perm` order (re[i] = x[perm[i]]): lets a caller fuse
   * that gather with its own (windowing, even/odd packing).
   */
  transformPermuted(re: Float64Array, im: Float64Array): void {
    const n = this.n;
    for (const stage of this.stages) {
      switch (stage.radix) {
        case 8:
          firstRadix8(re, im, n);
          break;
        case 2:
          radix2(re, im, n, stage.span, stage.twiddles);
          break;
        case 4:
          radix4(re, im, n, stage.span, stage.twiddles);
          break;
        case 5:
          radix5(re, im, n, stage.span, stage.twiddles);
          break;
        default:
          radixGeneric(re, im, n, stage.radix, stage.span, stage.twiddles);
      }
    }
  }
}

const SQRT1_2 = Math.SQRT1_2;

/** The first stage when its radix is 8: length-8 DFTs of consecutive elements (all twiddles are 1). */
function firstRadix8(re: Float64Array, im: Float64Array, n: number): void {
  for (let b = 0; b < n; b += 8) {
    const a0r = re[b] as number, a0i = im[b] as number;
    const a1r = re[b + 1] as number, a1i = im[b + 1] as number;
    const a2r = re[b + 2] as number, a2i = im[b + 2] as number;
    const a3r = re[b + 3] as number, a3i = im[b + 3] as number;
    const a4r = re[b + 4] as number, a4i = im[b + 4] as number;
    const a5r = re[b + 5] as number, a5i = im[b + 5] as number;
    const a6r = re[b + 6] as number, a6i = im[b + 6] as number;
    const a7r = re[b + 7] as number, a7i = im[b + 7] as number;
    // 4-point DFTs of the even (a0 a2 a4 a6) and odd (a1 a3 a5 a7) elements
    const t0r = a0r + a4r, t0i = a0i + a4i, t1r = a0r - a4r, t1i = a0i - a4i;
    const t2r = a2r + a6r, t2i = a2i + a6i, t3r = a2r - a6r, t3i = a2i - a6i;
    const t4r = a1r + a5r, t4i = a1i + a5i, t5r = a1r - a5r, t5i = a1i - a5i;
    const t6r = a3r + a7r, t6i = a3i + a7i, t7r = a3r - a7r, t7i = a3i - a7i;
    const e0r = t0r + t2r, e0i = t0i + t2i, e2r = t0r - t2r, e2i = t0i - t2i;
    const e1r = t1r + t3i, e1i = t1i - t3r, e3r = t1r - t3i, e3i = t1i + t3r; // t1 ∓ i·t3
    const o0r = t4r + t6r, o0i = t4i + t6i, o2r = t4r - t6r, o2i = t4i - t6i;
    const o1r = t5r + t7i, o1i = t5i - t7r, o3r = t5r - t7i, o3i = t5i + t7r;
    // X[k] = E[k] + w^k O[k], X[k+4] = E[k] - w^k O[k], w = e^{-iπ/4}
    const w1r = SQRT1_2 * (o1r + o1i), w1i = SQRT1_2 * (o1i - o1r); // o1 · (1 - i)/√2
    const w2r = o2i, w2i = -o2r; // o2 · (-i)
    const w3r = SQRT1_2 * (o3i - o3r), w3i = -SQRT1_2 * (o3r + o3i); // o3 · (-1 - i)/√2
    re[b] = e0r + o0r;
    im[b] = e0i + o0i;
    re[b + 4] = e0r - o0r;
    im[b + 4] = e0i - o0i;
    re[b + 1] = e1r + w1r;
    im[b + 1] = e1i + w1i;
    re[b + 5] = e1r - w1r;
    im[b + 5] = e1i - w1i;
    re[b + 2] = e2r + w2r;
    im[b + 2] = e2i + w2i;
    re[b + 6] = e2r - w2r;
    im[b + 6] = e2i - w2i;
    re[b + 3] = e3r + w3r;
    im[b + 3] = e3i + w3i;
    re[b + 7] = e3r - w3r;
    im[b + 7] = e3i - w3i;
  }
}

function radix2(re: Float64Array, im: Float64Array, n: number, span: number, tw: Float64Array): void {
  const len = 2 * span;
  for (let b = 0; b < n; b += len) {
    for (let j = 0; j < span; j++) {
      const i0 = b + j;
      const i1 = i0 + span;
      const wr = tw[2 * j] as number;
      const wi = tw[2 * j + 1] as number;
      const xr = re[i1] as number;
      const xi = im[i1] as number;
      const tr = xr * wr - xi * wi;
      const ti = xr * wi + xi * wr;
      const ar = re[i0] as number;
      const ai = im[i0] as number;
      re[i0] = ar + tr;
      im[i0] = ai + ti;
      re[i1] = ar - tr;
      im[i1] = ai - ti;
    }
  }
}

function radix4(re: Float64Array, im: Float64Array, n: number, span: number, tw: Float64Array): void {
  const len = 4 * span;
  for (let b = 0; b < n; b += len) {
    for (let j = 0; j < span; j++) {
      const i0 = b + j;
      const i1 = i0 + span;
      const i2 = i1 + span;
      const i3 = i2 + span;
      const o = 6 * j;
      const w1r = tw[o] as number, w1i = tw[o + 1] as number;
      const w2r = tw[o + 2] as number, w2i = tw[o + 3] as number;
      const w3r = tw[o + 4] as number, w3i = tw[o + 5] as number;
      const x0r = re[i0] as number, x0i = im[i0] as number;
      let xr = re[i1] as number, xi = im[i1] as number;
      const x1r = xr * w1r - xi * w1i, x1i = xr * w1i + xi * w1r;
      xr = re[i2] as number;
      xi = im[i2] as number;
      const x2r = xr * w2r - xi * w2i, x2i = xr * w2i + xi * w2r;
      xr = re[i3] as number;
      xi = im[i3] as number;
      const x3r = xr * w3r - xi * w3i, x3i = xr * w3i + xi * w3r;
      const s02r = x0r + x2r, s02i = x0i + x2i;
      const d02r = x0r - x2r, d02i = x0i - x2i;
      const s13r = x1r + x3r, s13i = x1i + x3i;
      const d13r = x1r - x3r, d13i = x1i - x3i;
      re[i0] = s02r + s13r;
      im[i0] = s02i + s13i;
      // X1 = d02 - i·d13, X3 = d02 + i·d13 (forward transform, w = e^{-iπ/2} = -i)
      re[i1] = d02r + d13i;
      im[i1] = d02i - d13r;
      re[i2] = s02r - s13r;
      im[i2] = s02i - s13i;
      re[i3] = d02r - d13i;
      im[i3] = d02i + d13r;
    }
  }
}

const C5_1 = Math.cos((2 * Math.PI) / 5);
const C5_2 = Math.cos((4 * Math.PI) / 5);
const S5_1 = Math.sin((2 * Math.PI) / 5);
const S5_2 = Math.sin((4 * Math.PI) / 5);

function radix5(re: Float64Array, im: Float64Array, n: number, span: number, tw: Float64Array): void {
  const len = 5 * span;
  for (let b = 0; b < n; b += len) {
    for (let j = 0; j < span; j++) {
      const i0 = b + j;
      const i1 = i0 + span;
      const i2 = i1 + span;
      const i3 = i2 + span;
      const i4 = i3 + span;
      const o = 8 * j;
      const x0r = re[i0] as number, x0i = im[i0] as number;
      let xr = re[i1] as number, xi = im[i1] as number;
      let wr = tw[o] as number, wi = tw[o + 1] as number;
      const x1r = xr * wr - xi * wi, x1i = xr * wi + xi * wr;
      xr = re[i2] as number;
      xi = im[i2] as number;
      wr = tw[o + 2] as number;
      wi = tw[o + 3] as number;
      const x2r = xr * wr - xi * wi, x2i = xr * wi + xi * wr;
      xr = re[i3] as number;
      xi = im[i3] as number;
      wr = tw[o + 4] as number;
      wi = tw[o + 5] as number;
      const x3r = xr * wr - xi * wi, x3i = xr * wi + xi * wr;
      xr = re[i4] as number;
      xi = im[i4] as number;
      wr = tw[o + 6] as number;
      wi = tw[o + 7] as number;
      const x4r = xr * wr - xi * wi, x4i = xr * wi + xi * wr;
      // X_k = x0 + Σ_q x_q e^{-2πi kq/5}; pair q with 5-q: sums carry the cosines, differences the sines.
      const s14r = x1r + x4r, s14i = x1i + x4i;
      const d14r = x1r - x4r, d14i = x1i - x4i;
      const s23r = x2r + x3r, s23i = x2i + x3i;
      const d23r = x2r - x3r, d23i = x2i - x3i;
      const ar = x0r + C5_1 * s14r + C5_2 * s23r, ai = x0i + C5_1 * s14i + C5_2 * s23i;
      const br = x0r + C5_2 * s14r + C5_1 * s23r, bi = x0i + C5_2 * s14i + C5_1 * s23i;
      // -i·(S1·d14 + S2·d23) for X1, -i·(S2·d14 - S1·d23) for X2
      const cr = S5_1 * d14i + S5_2 * d23i, ci = -(S5_1 * d14r + S5_2 * d23r);
      const dr = S5_2 * d14i - S5_1 * d23i, di = -(S5_2 * d14r - S5_1 * d23r);
      re[i0] = x0r + s14r + s23r;
      im[i0] = x0i + s14i + s23i;
      re[i1] = ar + cr;
      im[i1] = ai + ci;
      re[i4] = ar - cr;
      im[i4] = ai - ci;
      re[i2] = br + dr;
      im[i2] = bi + di;
      re[i3] = br - dr;
      im[i3] = bi - di;
    }
  }
}

/** Direct DFT of each group of `radix` elements (used for 3 and any prime > 5; n = 400 never needs it). */
function radixGeneric(
  re: Float64Array,
  im: Float64Array,
  n: number,
  radix: number,
  span: number,
  tw: Float64Array,
): void {
  const len = radix * span;
  const xr = new Float64Array(radix);
  const xi = new Float64Array(radix);
  const cos = new Float64Array(radix);
  const sin = new Float64Array(radix);
  for (let q = 0; q < radix; q++) {
    cos[q] = Math.cos((-2 * Math.PI * q) / radix);
    sin[q] = Math.sin((-2 * Math.PI * q) / radix);
  }
  for (let b = 0; b < n; b += len) {
    for (let j = 0; j < span; j++) {
      for (let q = 0; q < radix; q++) {
        const i = b + j + q * span;
        const vr = re[i] as number;
        const vi = im[i] as number;
        if (q === 0) {
          xr[0] = vr;
          xi[0] = vi;
        } else {
          const o = 2 * (j * (radix - 1) + q - 1);
          const wr = tw[o] as number;
          const wi = tw[o + 1] as number;
          xr[q] = vr * wr - vi * wi;
          xi[q] = vr * wi + vi * wr;
        }
      }
      for (let k = 0; k < radix; k++) {
        let sr = 0;
        let si = 0;
        for (let q = 0; q < radix; q++) {
          const c = cos[(k * q) % radix] as number;
          const s = sin[(k * q) % radix] as number;
          const ar = xr[q] as number;
          const ai = xi[q] as number;
          sr += ar * c - ai * s;
          si += ar * s + ai * c;
        }
        re[b + j + k * span] = sr;
        im[b + j + k * span] = si;
      }
    }
  }
}

/** Power spectrum |X[k]|², k = 0..n/2, of a real signal of fixed even length n. */
export class RealFft {
  readonly n: number;
  private readonly half: ComplexFft;
  /** Index into the real signal of the even sample that feeds slot i of the half-length transform. */
  private readonly src: Int32Array;
  private readonly re: Float64Array;
  private readonly im: Float64Array;
  /** e^{-2πik/n} for k ≤ n/2, used to untangle the packed transform. */
  private readonly wr: Float64Array;
  private readonly wi: Float64Array;

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 2 || n % 2 !== 0) {
      throw new WhisperError('E_OPTIONS', `real FFT length must be even, got ${n}`);
    }
    this.n = n;
    const h = n / 2;
    this.half = new ComplexFft(h);
    this.src = this.half.perm.map((p) => 2 * p);
    this.re = new Float64Array(h);
    this.im = new Float64Array(h);
    this.wr = new Float64Array(h + 1);
    this.wi = new Float64Array(h + 1);
    for (let k = 0; k <= h; k++) {
      this.wr[k] = Math.cos((-2 * Math.PI * k) / n);
      this.wi[k] = Math.sin((-2 * Math.PI * k) / n);
    }
  }

  /** Writes |X[k]|² for k = 0..n/2 of the real input x (length n) into out (length ≥ n/2 + 1). */
  powerSpectrum(x: Float64Array, out: Float64Array): void {
    const { src, re, im } = this;
    // Pack z[t] = x[2t] + i·x[2t+1], gathered straight into the half transform's input order.
    for (let i = 0; i < src.length; i++) {
      const j = src[i] as number;
      re[i] = x[j] as number;
      im[i] = x[j + 1] as number;
    }
    this.finish(out);
  }

  /** powerSpectrum of samples[offset + t] · window[t], t < n, without building the windowed frame. */
  windowedPowerSpectrum(samples: Float32Array, offset: number, window: Float64Array, out: Float64Array): void {
    const { src, re, im } = this;
    for (let i = 0; i < src.length; i++) {
      const j = src[i] as number;
      re[i] = (samples[offset + j] as number) * (window[j] as number);
      im[i] = (samples[offset + j + 1] as number) * (window[j + 1] as number);
    }
    this.finish(out);
  }

  private finish(out: Float64Array): void {
    const h = this.n / 2;
    const { re: fr, im: fi, wr, wi } = this;
    this.half.transformPermuted(fr, fi);
    // With Z = FFT(even + i·odd), A = Z[k], B = conj Z[h-k]: X[k] = E + w^k·O with E = (A + B)/2, O = (A - B)/2i,
    // w = e^{-2πi/n}. Bin h-k has E' = conj E, O' = conj O and w^{h-k} = -conj w^k, so
    // |X[k]|² = |E|² + |O|² + 2·Re(conj E · w^k·O) and |X[h-k]|² = |E|² + |O|² - 2·Re(conj E · w^k·O):
    // one pass over k ≤ h/2 gives both. Below, e = 2E and o = 2O; at k = 0 and k = h, X = Re Z[0] ± Im Z[0].
    const r0 = fr[0] as number;
    const i0 = fi[0] as number;
    out[0] = (r0 + i0) * (r0 + i0);
    out[h] = (r0 - i0) * (r0 - i0);
    for (let k = 1; 2 * k <= h; k++) {
      const ar = fr[k] as number, ai = fi[k] as number;
      const br = fr[h - k] as number, bi = -(fi[h - k] as number);
      const er = ar + br, ei = ai + bi;
      const or = ai - bi, oi = br - ar; // (A - B)/i
      const c = wr[k] as number, s = wi[k] as number;
      const wor = c * or - s * oi, woi = c * oi + s * or;
      const p = 0.25 * (er * er + ei * ei + or * or + oi * oi);
      const q = 0.5 * (er * wor + ei * woi);
      out[k] = p + q;
      out[h - k] = p - q; // the same bin when k = h/2, where q = 0 (e and o are real, w^k·o imaginary)
    }
  }
}
