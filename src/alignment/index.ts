/**
 * Word timestamps from the cross-attention of the alignment heads, as openai/whisper timing.py does it: the decoder is
 * re-run on the window's text (teacher forcing), the attention of the heads in `alignment_heads` is normalised,
 * median-filtered and averaged, and dynamic time warping maps each token to an audio frame.
 */
import { TOKENS_PER_SECOND } from '../audio/constants.js';
import { WhisperError, throwIfAborted } from '../errors.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ort } from '../runtime/session.js';
import type { Word } from '../types.js';
import { dtw, medianFilterRows } from './dtw.js';
import { mergePunctuations, pyIn, splitToWordTokens, type WordTokens } from './words.js';

export {
  mergePunctuations,
  splitToWordTokens,
  splitTokensOnSpaces,
  splitTokensOnUnicode,
  type WordTokens,
} from './words.js';
export { dtw, medianFilterRows } from './dtw.js';

export interface TokenTimings {
  /**
   * Seconds (from the window start) at which the alignment path enters each row: row 0 is the position that predicts
   * the first text token, row k the position of text token k − 1; length = text tokens + 1.
   */
  jumpTimes: Float64Array;
  /** Probability of each text token under teacher forcing (softmax over the text vocabulary). */
  tokenProbs: Float64Array;
}

export interface AlignOptions {
  /** Language code of the window (the sot sequence and the word-splitting rule depend on it). */
  language: string;
  task: 'transcribe' | 'translate';
  /** Mel frames of real audio in the window (openai's segment_size); attention beyond them is ignored. */
  numFrames: number;
  signal?: AbortSignal | undefined;
}

/** The word-timestamp error for a decoder without cross-attention outputs, naming the export to use instead. */
export function wordTimestampsUnsupported(model: WhisperModel): WhisperError {
  const dir = model.dir.replace(/[/\\]+$/, '');
  const hub = /models--([^/\\]+)--([^/\\]+)[/\\]snapshots/.exec(dir);
  const repo = hub ? `${hub[1]}/${hub[2]}` : `onnx-community/${dir.split(/[/\\]/).pop() ?? 'whisper-base'}`;
  const name = repo.split('/').pop() ?? '';
  const short = name.replace(/^whisper-/, '');
  return new WhisperError(
    'E_OPTIONS',
    `word timestamps (and hallucinationSilenceThreshold) need a decoder that outputs cross-attentions, and ` +
      `${dir} has none: use the timestamped export of this model, ${repo}_timestamped ` +
      `(model name "${short}_timestamped")`,
  );
}

/**
 * openai/whisper timing.py find_alignment, up to the token level: one teacher-forced decoder pass over
 * `[sot sequence…, <|notimestamps|>, text…, <|endoftext|>]` with cross-attentions, the alignment heads' weights
 * over the window's valid frames, z-scored over tokens, median-filtered along time, averaged over heads, then DTW.
 */
export async function alignTokens(
  model: WhisperModel,
  encoderHidden: ort.Tensor,
  textTokens: readonly number[],
  o: AlignOptions,
): Promise<TokenTimings> {
  if (!model.hasCrossAttentions) throw wordTimestampsUnsupported(model);
  const tk = model.tokenizer;
  const s = tk.special;
  const sot: number[] = [s.sot];
  if (tk.isMultilingual) {
    sot.push(tk.languageToken(o.language));
    const task = o.task === 'translate' ? s.translate : s.transcribe;
    if (task !== undefined) sot.push(task);
  }
  const tokens = [...sot, s.noTimestamps, ...textTokens, s.eot];
  const T = tokens.length;
  const L = textTokens.length;
  throwIfAborted(o.signal);
  const cache = model.newCache(encoderHidden);
  const out = await model.decode(tokens, cache, { allLogits: true, crossAttentions: true });
  const cross = out.crossAttentions;
  if (!cross || cross.length === 0 || !out.allLogits) {
    throw new WhisperError('E_INFERENCE', 'the decoder returned no cross-attentions');
  }

  // token probabilities: openai softmaxes the logits over the text vocabulary (ids below <|endoftext|>)
  const vocab = out.vocab;
  const tokenProbs = new Float64Array(L);
  for (let i = 0; i < L; i++) {
    const row = out.allLogits.subarray((sot.length + i) * vocab, (sot.length + i) * vocab + s.eot);
    let max = -Infinity;
    for (let k = 0; k < row.length; k++) if ((row[k] as number) > max) max = row[k] as number;
    let sum = 0;
    for (let k = 0; k < row.length; k++) sum += Math.exp((row[k] as number) - max);
    tokenProbs[i] = Math.exp((row[textTokens[i] as number] as number) - max) / sum;
  }

  const heads = model.config.alignmentHeads;
  if (heads.length === 0) throw new WhisperError('E_MODEL_INVALID', 'generation_config.json has no alignment_heads');
  const audioCtx = model.config.nAudioCtx;
  const F = Math.max(1, Math.min(audioCtx, Math.floor(o.numFrames / 2)));
  // the rows DTW reads: from <|notimestamps|> to the last text token
  const rows = L + 1;
  const first = sot.length;
  const matrix = new Float32Array(rows * F);
  const w = new Float32Array(T * F);
  for (const [layer, head] of heads) {
    const t = cross[layer];
    if (!t) throw new WhisperError('E_INFERENCE', `the decoder returned no cross-attentions for layer ${layer}`);
    const data = t.data as Float32Array;
    const [, nHeads = 0, nTok = 0, nCtx = 0] = t.dims;
    if (nTok !== T || head >= nHeads) {
      throw new WhisperError('E_INFERENCE', `cross-attentions of layer ${layer} have dims [${t.dims.join(', ')}]`);
    }
    // the export applies softmax over all 1500 positions; openai takes the softmax over the valid frames only,
    // which is the same as renormalising each row over them
    for (let r = 0; r < T; r++) {
      const src = (head * nTok + r) * nCtx;
      let sum = 0;
      for (let c = 0; c < F; c++) sum += data[src + c] as number;
      const inv = sum > 0 ? 1 / sum : 0;
      for (let c = 0; c < F; c++) w[r * F + c] = (data[src + c] as number) * inv;
    }
    // z-score over tokens, per frame (torch.std_mean over dim −2, unbiased=False)
    for (let c = 0; c < F; c++) {
      let mean = 0;
      for (let r = 0; r < T; r++) mean += w[r * F + c] as number;
      mean /= T;
      let v = 0;
      for (let r = 0; r < T; r++) {
        const d = (w[r * F + c] as number) - mean;
        v += d * d;
      }
      const std = Math.sqrt(v / T);
      for (let r = 0; r < T; r++) w[r * F + c] = ((w[r * F + c] as number) - mean) / std;
    }
    // the filter works row by row, so only the rows DTW reads need it
    const filtered = medianFilterRows(w.subarray(first * F, (first + rows) * F), rows, F, model.config.medianFilterWidth);
    for (let k = 0; k < rows * F; k++) matrix[k] = (matrix[k] as number) + (filtered[k] as number);
  }
  // mean over heads, negated as the DTW cost
  const cost = new Float64Array(rows * F);
  const inv = 1 / heads.length;
  for (let k = 0; k < rows * F; k++) cost[k] = -Math.fround((matrix[k] as number) * inv);
  const { textIndices, timeIndices } = dtw(cost, rows, F);
  const jumpTimes = new Float64Array(rows);
  let k = 0;
  for (let p = 0; p < textIndices.length; p++) {
    // a jump: the path enters a new text row (the first step always counts)
    if (p === 0 || textIndices[p] !== textIndices[p - 1]) jumpTimes[k++] = (timeIndices[p] as number) / TOKENS_PER_SECOND;
  }
  return { jumpTimes, tokenProbs };
}

/** A segment of one window as the seek loop holds it before yielding it. */
export interface WindowSegment {
  start: number;
  end: number;
  /** Tokens of the segment; those ≥ <|endoftext|> (timestamps) are ignored here. */
  tokens: readonly number[];
  words?: Word[];
}

export interface WordTimestampOptions extends AlignOptions {
  /** Start of the window in the audio, seconds. */
  timeOffset: number;
  prependPunctuations: string;
  appendPunctuations: string;
  /** End of the last speech before this window (openai's last_speech_timestamp). */
  lastSpeechTimestamp: number;
  /** End of the last word reported before this window; words never start before it. */
  previousWordEnd?: number;
  /** Audio duration; no word ends after it. */
  duration?: number;
}

interface Timing extends WordTokens {
  start: number;
  end: number;
  probability: number;
  segment: number;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return 0;
  return n % 2 ? (v[(n - 1) / 2] as number) : ((v[n / 2 - 1] as number) + (v[n / 2] as number)) / 2;
}

/**
 * openai/whisper timing.py add_word_timestamps for the segments of one window: sets `words` on each segment and
 * moves the segments' start/end to their words (the duration clamps for long words at sentence and segment
 * boundaries included).
 *
 * Two deliberate differences keep every segment's words equal to its text: words are split, and punctuation merged,
 * within each segment (upstream splits the window's tokens as one run, so a word or a merged punctuation mark can
 * straddle two segments and shift the words of the next one); and after upstream's rules, word times are made
 * monotonic (a start never before the previous word's end) and each segment is widened to hold its words.
 */
export async function addWordTimestamps(
  model: WhisperModel,
  encoderHidden: ort.Tensor,
  segments: WindowSegment[],
  o: WordTimestampOptions,
): Promise<void> {
  if (segments.length === 0) return;
  const tk = model.tokenizer;
  const eot = tk.special.eot;
  const textPerSegment = segments.map((s) => s.tokens.filter((t) => t < eot));
  const allText = textPerSegment.flat();
  const timings: Timing[] = [];
  if (allText.length > 0) {
    const { jumpTimes, tokenProbs } = await alignTokens(model, encoderHidden, allText, o);
    let base = 0;
    textPerSegment.forEach((tokens, si) => {
      let at = base;
      for (const w of splitToWordTokens(tk, tokens, o.language)) {
        const end = at + w.tokens.length;
        let p = 0;
        for (let i = at; i < end; i++) p += tokenProbs[i] as number;
        timings.push({
          word: w.word,
          tokens: w.tokens,
          start: jumpTimes[at] as number,
          end: jumpTimes[end] as number,
          probability: p / Math.max(1, w.tokens.length),
          segment: si,
        });
        at = end;
      }
      base += tokens.length;
    });
  }

  const durations = timings.map((t) => t.end - t.start).filter((d) => d !== 0);
  const medianDuration = Math.min(0.7, median(durations));
  const maxDuration = medianDuration * 2;
  // truncate long words at sentence boundaries (timing.py add_word_timestamps)
  if (durations.length > 0) {
    const sentenceEnd = '.。!！?？';
    for (let i = 1; i < timings.length; i++) {
      const t = timings[i] as Timing;
      if (t.end - t.start > maxDuration) {
        if (pyIn(t.word, sentenceEnd)) t.end = t.start + maxDuration;
        else if (pyIn((timings[i - 1] as Timing).word, sentenceEnd)) t.start = t.end - maxDuration;
      }
    }
  }
  segments.forEach((_, si) =>
    mergePunctuations(
      timings.filter((t) => t.segment === si),
      o.prependPunctuations,
      o.appendPunctuations,
    ),
  );

  let lastSpeech = o.lastSpeechTimestamp;
  let previousEnd = o.previousWordEnd ?? 0;
  segments.forEach((segment, si) => {
    const words: Word[] = timings
      .filter((t) => t.segment === si && t.word !== '')
      .map((t) => ({
        word: t.word,
        start: round2(o.timeOffset + t.start),
        end: round2(o.timeOffset + t.end),
        probability: t.probability,
      }));
    const first = words[0];
    const last = words[words.length - 1];
    if (first !== undefined && last !== undefined) {
      // the first and second word after a pause are not longer than twice the median word duration
      const second = words[1];
      if (
        first.end - lastSpeech > medianDuration * 4 &&
        (first.end - first.start > maxDuration || (second !== undefined && second.end - first.start > maxDuration * 2))
      ) {
        if (second !== undefined && second.end - second.start > maxDuration) {
          const boundary = Math.max(second.end / 2, second.end - maxDuration);
          first.end = second.start = boundary;
        }
        first.start = Math.max(0, first.end - maxDuration);
      }
      // prefer the segment-level start timestamp if the first word is too long
      if (segment.start < first.end && segment.start - 0.5 > first.start) {
        first.start = Math.max(0, Math.min(first.end - medianDuration, segment.start));
      } else {
        segment.start = first.start;
      }
      // prefer the segment-level end timestamp if the last word is too long
      if (segment.end > last.start && segment.end + 0.5 < last.end) {
        last.end = Math.max(last.start + medianDuration, segment.end);
      } else {
        segment.end = last.end;
      }
      lastSpeech = segment.end;

      // whisper-ts: monotonic words inside the audio, and segments that hold their words
      for (const w of words) {
        if (o.duration !== undefined) {
          w.end = Math.min(w.end, o.duration);
          w.start = Math.min(w.start, w.end);
        }
        w.start = round2(Math.max(w.start, previousEnd));
        w.end = round2(Math.max(w.end, w.start));
        previousEnd = w.end;
      }
      segment.start = Math.min(segment.start, first.start);
      segment.end = Math.max(segment.end, last.end);
    }
    segment.words = words;
  });
}
