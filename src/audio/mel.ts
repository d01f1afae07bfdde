import { WhisperError } from '../errors.js';
import { HOP_LENGTH, N_FFT, N_FRAMES, SAMPLE_RATE } from './constants.js';
import { RealFft } from './fft.js';

/** A log-mel spectrogram: `data` is row-major [nMels, nFrames] (one row per mel bin). */
export interface MelSpectrogram {
  data: Float32Array;
  nMels: number;
  nFrames: number;
}

const N_BINS = N_FFT / 2 + 1; // 201 frequency bins of the one-sided spectrum

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new WhisperError('E_OPTIONS', `${name} must be an integer ≥ ${min}, got ${value}`);
  }
}

// Slaney's auditory-toolbox mel scale, as librosa.core.convert hz_to_mel / mel_to_hz with htk=False:
// linear below 1 kHz (3 mels per 200 Hz), logarithmic above (27 mels per factor 6.4).
const F_SP = 200 / 3;
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP;
const LOG_STEP = Math.log(6.4) / 27;

function hzToMel(hz: number): number {
  return hz >= MIN_LOG_HZ ? MIN_LOG_MEL + Math.log(hz / MIN_LOG_HZ) / LOG_STEP : hz / F_SP;
}

function melToHz(mel: number): number {
  return mel >= MIN_LOG_MEL ? MIN_LOG_HZ * Math.exp(LOG_STEP * (mel - MIN_LOG_MEL)) : F_SP * mel;
}

/**
 * The mel filterbank of librosa.filters.mel(sr=16000, n_fft=400, n_mels, fmin=0, fmax=8000, htk=False,
 * norm='slaney'), which openai/whisper audio.py `mel_filters` loads from its mel_filters.npz: row-major
 * [nMels, 201]. Computed here rather than shipped; weights are rounded to float32 as in that file.
 */
export function melFilterbank(nMels: number): Float32Array {
  checkCount('nMels', nMels, 1);
  const fmax = SAMPLE_RATE / 2;
  const maxMel = hzToMel(fmax);
  const melF = new Float64Array(nMels + 2);
  for (let i = 0; i < nMels + 2; i++) melF[i] = melToHz((maxMel * i) / (nMels + 1));
  const out = new Float32Array(nMels * N_BINS);
  for (let m = 0; m < nMels; m++) {
    const lo = melF[m] as number;
    const mid = melF[m + 1] as number;
    const hi = melF[m + 2] as number;
    const enorm = 2 / (hi - lo); // Slaney normalisation: each filter has unit area
    for (let k = 0; k < N_BINS; k++) {
      const f = (k * SAMPLE_RATE) / N_FFT;
      const lower = (f - lo) / (mid - lo);
      const upper = (hi - f) / (hi - mid);
      const w = Math.max(0, Math.min(lower, upper));
      out[m * N_BINS + k] = Math.fround(w * enorm);
    }
  }
  return out;
}

/**
 * The filterbank stored sparsely (each triangle is non-zero over a few bins): filter m has weights
 * weights[offset[m] .. offset[m + 1]) for bins start[m], start[m] + 1, …
 */
interface SparseFilterbank {
  start: Int32Array;
  offset: Int32Array;
  weights: Float64Array;
}

const filterbanks = new Map<number, SparseFilterbank>();

function sparseFilterbank(nMels: number): SparseFilterbank {
  let bank = filterbanks.get(nMels);
  if (bank === undefined) {
    const dense = melFilterbank(nMels);
    const start = new Int32Array(nMels);
    const offset = new Int32Array(nMels + 1);
    const weights: number[] = [];
    for (let m = 0; m < nMels; m++) {
      const row = dense.subarray(m * N_BINS, (m + 1) * N_BINS);
      let lo = 0;
      while (lo < N_BINS && row[lo] === 0) lo++;
      let hi = N_BINS;
      while (hi > lo && row[hi - 1] === 0) hi--;
      start[m] = lo;
      for (let k = lo; k < hi; k++) weights.push(row[k] as number);
      offset[m + 1] = weights.length;
    }
    bank = { start, offset, weights: Float64Array.from(weights) };
    filterbanks.set(nMels, bank);
  }
  return bank;
}

/** torch.hann_window(N_FFT) (periodic): 0.5 − 0.5·cos(2πn/N). */
const HANN = new Float64Array(N_FFT);
for (let i = 0; i < N_FFT; i++) HANN[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N_FFT);

let sharedFft: RealFft | undefined;

/**
 * The log-mel spectrogram of 16 kHz mono samples, as openai/whisper audio.py `log_mel_spectrogram` computes it:
 * the input right-padded with `padding` zeros, torch.stft(n_fft=400, hop=160, periodic Hann, center=True with
 * reflect padding), |X|², the last frame dropped, the Slaney mel filterbank, log10(max(x, 1e-10)), clamped to
 * (global max − 8), then (x + 4) / 4. transcribe.py calls it with padding = N_SAMPLES; the result has
 * floor((samples + padding) / 160) frames.
 */
export function logMelSpectrogram(samples: Float32Array, nMels: number, padding = 0): MelSpectrogram {
  checkCount('padding', padding, 0);
  const { start: binStart, offset, weights } = sparseFilterbank(nMels);
  const n = samples.length;
  const total = n + padding; // length of the zero-padded signal the STFT sees
  // center=True pads N_FFT/2 on each side, giving 1 + floor(total / HOP) frames; the last is dropped (stft[..., :-1]).
  const nFrames = Math.floor(total / HOP_LENGTH);
  const data = new Float32Array(nMels * nFrames);
  if (nFrames === 0) return { data, nMels, nFrames };

  const fft = (sharedFft ??= new RealFft(N_FFT));
  const edgeFrame = new Float32Array(N_FFT);
  const power = new Float64Array(N_BINS);
  const half = N_FFT / 2;
  const LOG_FLOOR = -10; // log10(1e-10), the value of a silent frame
  let maxLog = -Infinity;
  // Frames that lie wholly in the zero padding (one contiguous run) are filled in at the end.
  let zeroFrom = nFrames;
  let zeroTo = nFrames;

  for (let t = 0; t < nFrames; t++) {
    const start = t * HOP_LENGTH - half; // first sample of the frame in the unpadded signal
    if (start >= 0 && start + N_FFT <= n) {
      fft.windowedPowerSpectrum(samples, start, HANN, power);
    } else if (start >= n && start + N_FFT <= total) {
      // Entirely inside the zero padding: the spectrum is exactly 0, every bin log10(1e-10).
      if (zeroFrom === nFrames) zeroFrom = t;
      zeroTo = t + 1;
      continue;
    } else {
      // Frames that reach past either end (the first two, the last few): build them with reflect padding.
      for (let i = 0; i < N_FFT; i++) {
        const j = reflect(start + i, total);
        edgeFrame[i] = j < n ? (samples[j] as number) : 0;
      }
      fft.windowedPowerSpectrum(edgeFrame, 0, HANN, power);
    }
    for (let m = 0; m < nMels; m++) {
      let acc = 0;
      const end = offset[m + 1] as number;
      for (let k = offset[m] as number, b = binStart[m] as number; k < end; k++, b++) {
        acc += (weights[k] as number) * (power[b] as number);
      }
      const v = Math.log(acc > 1e-10 ? acc : 1e-10) * Math.LOG10E;
      data[m * nFrames + t] = v;
      if (v > maxLog) maxLog = v;
    }
  }

  if (zeroTo > zeroFrom && LOG_FLOOR > maxLog) maxLog = LOG_FLOOR;
  const floor = Math.fround(maxLog) - 8;
  const zeroValue = (Math.max(LOG_FLOOR, floor) + 4) / 4;
  for (let m = 0; m < nMels; m++) {
    const row = m * nFrames;
    for (let i = row; i < row + zeroFrom; i++) {
      const v = data[i] as number;
      data[i] = ((v > floor ? v : floor) + 4) / 4;
    }
    data.fill(zeroValue, row + zeroFrom, row + zeroTo);
    for (let i = row + zeroTo; i < row + nFrames; i++) {
      const v = data[i] as number;
      data[i] = ((v > floor ? v : floor) + 4) / 4;
    }
  }
  return { data, nMels, nFrames };
}

/**
 * Index into a signal of length `len` with numpy/torch "reflect" padding (the edge sample is not repeated),
 * folding as many times as needed so that even signals shorter than the pad are defined.
 */
function reflect(i: number, len: number): number {
  if (len === 1) return 0;
  const period = 2 * (len - 1);
  let j = i % period;
  if (j < 0) j += period;
  return j < len ? j : period - j;
}

/**
 * Frames [offsetFrame, offsetFrame + nFrames) of a spectrogram as a new row-major [nMels, nFrames] array; frames at
 * or past `endFrame` (default: the end of the spectrogram) are zeros, as pad_or_trim pads.
 *
 * Two callers in the reference differ here, for a spectrogram computed with padding = N_SAMPLES:
 * - openai/whisper transcribe.py decodes `pad_or_trim(mel[:, seek:seek + segment_size], N_FRAMES)` with
 *   segment_size ≤ content_frames − seek: pass `endFrame = content frames (mel.nFrames − N_FRAMES)`, and the
 *   padding's own log-mel never reaches the model (zeros do); transformers' long-form generate does the same.
 * - language detection there (`pad_or_trim(mel, N_FRAMES)`), and transformers' short-form features (audio padded to
 *   30 s), keep the padding's log-mel: leave `endFrame` at its default. The reference tokens in
 *   shared/models/<model>/reference were made that way for files up to 30 s.
 */
export function melWindow(
  mel: MelSpectrogram,
  offsetFrame: number,
  nFrames: number = N_FRAMES,
  endFrame: number = mel.nFrames,
): Float32Array {
  checkCount('offsetFrame', offsetFrame, 0);
  checkCount('nFrames', nFrames, 0);
  checkCount('endFrame', endFrame, 0);
  const out = new Float32Array(mel.nMels * nFrames);
  const available = Math.max(0, Math.min(nFrames, Math.min(endFrame, mel.nFrames) - offsetFrame));
  if (available === 0) return out;
  for (let m = 0; m < mel.nMels; m++) {
    const src = m * mel.nFrames + offsetFrame;
    out.set(mel.data.subarray(src, src + available), m * nFrames);
  }
  return out;
}
