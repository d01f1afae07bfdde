import { N_FRAMES, N_SAMPLES, logMelSpectrogram, melWindow } from '../audio/index.js';
import { throwIfAborted } from '../errors.js';
import { argmax } from '../decoding/logit-filters.js';
import type { WhisperModel } from './whisper-model.js';

export interface ModelProfile {
  /** Milliseconds of one encoder run on one 30-s window (median of the runs). */
  encoderMsPerWindow: number;
  /** Milliseconds of one decoder step with one row and a growing cache (mean over the steps after the prompt). */
  decoderMsPerToken: number;
  windows: number;
  tokens: number;
}

export interface ProfileOptions {
  /** Encoder runs (default 3; the median is reported). */
  windows?: number;
  /** Decoder steps after the prompt (default 64). */
  tokens?: number;
  signal?: AbortSignal;
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v.length === 0 ? Number.NaN : v.length % 2 ? (v[(v.length - 1) / 2] as number) : ((v[v.length / 2 - 1] as number) + (v[v.length / 2] as number)) / 2;
}

/**
 * The two figures of the guide's hardware table that whole-file timings hide: encoder milliseconds per 30-s window,
 * and decoder milliseconds per token (one row, the cache growing by one position per step; the step's tokens are the
 * model's own greedy choices, continued past end-of-text so that every run takes `tokens` steps). `audio` (16 kHz
 * mono, its first 30 s) is what the encoder sees; one warm-up run of each is not counted.
 */
export async function profileModel(model: WhisperModel, audio: Float32Array, o: ProfileOptions = {}): Promise<ModelProfile> {
  const windows = Math.max(1, o.windows ?? 3);
  const tokens = Math.max(1, o.tokens ?? 64);
  const mel = melWindow(logMelSpectrogram(audio.subarray(0, N_SAMPLES), model.config.nMels, N_SAMPLES), 0, N_FRAMES);
  let hidden = await model.encode(mel, 1, o.signal); // warm-up
  const encodeMs: number[] = [];
  for (let i = 0; i < windows; i++) {
    throwIfAborted(o.signal);
    const t = performance.now();
    hidden = await model.encode(mel, 1, o.signal);
    encodeMs.push(performance.now() - t);
  }
  const tk = model.tokenizer;
  const prompt = [tk.special.sot];
  if (tk.isMultilingual) prompt.push(tk.languageToken('en'), tk.special.transcribe ?? tk.special.sot);
  const steps = async (count: number): Promise<number> => {
    const cache = model.newCache(hidden);
    let out = await model.decode(prompt, cache);
    const t = performance.now();
    for (let i = 0; i < count; i++) {
      throwIfAborted(o.signal);
      const next = argmax(out.logits);
      out = await model.decode([next === tk.special.eot ? tk.special.timestampBegin : next], cache);
    }
    return performance.now() - t;
  };
  await steps(Math.min(8, tokens)); // warm-up
  const decodeMs = await steps(tokens);
  return { encoderMsPerWindow: median(encodeMs), decoderMsPerToken: decodeMs / tokens, windows, tokens };
}
