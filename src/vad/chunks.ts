import { WhisperError } from '../errors.js';
import { VAD_SAMPLE_RATE } from './options.js';
import type { SpeechSpan } from './timestamps.js';

/** A run of consecutive speech spans whose concatenated audio lasts at most `maxDurationS`. */
export interface ChunkPlan {
  /** The spans (in samples of the original audio) joined into this chunk, in order. */
  spans: SpeechSpan[];
  /** Where the chunk starts in the concatenated speech audio, in seconds. */
  offset: number;
  /** Length of the chunk's audio, in seconds. */
  duration: number;
}

/** A chunk with its audio: the samples of its spans, joined. */
export interface SpeechChunk extends ChunkPlan {
  samples: Float32Array;
}

function checkSpans(spans: readonly SpeechSpan[], length?: number): void {
  let previousEnd = 0;
  for (const span of spans) {
    const ok =
      Number.isInteger(span.start) &&
      Number.isInteger(span.end) &&
      span.start >= previousEnd &&
      span.end > span.start &&
      (length === undefined || span.end <= length);
    if (!ok) {
      throw new WhisperError(
        'E_OPTIONS',
        `speech spans must be sorted, non-overlapping, non-empty whole samples inside the audio; got ${span.start}–${span.end}`,
      );
    }
    previousEnd = span.end;
  }
}

/**
 * Groups speech spans into chunks of at most `maxDurationS` seconds of speech each, without the audio (see
 * `collectChunks`): the batched pipeline can plan every chunk and cut the audio of a few at a time.
 *
 * The grouping of faster-whisper's `collect_chunks` (faster_whisper/vad.py): spans are added to the current chunk
 * while its speech stays within `maxDurationS`. Unlike there, no empty first chunk is made when the first span is
 * already too long, each new chunk lists the span that opened it, no spans give no chunks, and a span longer than
 * `maxDurationS` is cut into pieces of `maxDurationS` (so every chunk fits one 30 s Whisper window; contiguous pieces
 * leave the time map unchanged).
 *
 * `cutAtPauses` (the batched pipeline): a full chunk ends at its longest pause instead of at its last span boundary
 * (`longestPauseCut`); on longform_en that gives 13 chunks instead of 10, and batched WER 15.40 → 14.31 %.
 */
export function planChunks(
  spans: readonly SpeechSpan[],
  maxDurationS = 30,
  options: { cutAtPauses?: boolean } = {},
): ChunkPlan[] {
  if (!(maxDurationS > 0)) {
    throw new WhisperError('E_OPTIONS', `maxDurationS must be a positive number, got ${maxDurationS}`);
  }
  checkSpans(spans);
  const maxSamples = Number.isFinite(maxDurationS) ? Math.floor(maxDurationS * VAD_SAMPLE_RATE) : Infinity;
  const pieces: SpeechSpan[] = [];
  for (const span of spans) {
    for (let start = span.start; start < span.end; start += maxSamples) {
      pieces.push({ start, end: Math.min(span.end, start + maxSamples) });
    }
  }

  const plans: ChunkPlan[] = [];
  let current: SpeechSpan[] = [];
  let currentSamples = 0;
  let totalSamples = 0;
  const close = (): void => {
    plans.push({
      spans: current,
      offset: totalSamples / VAD_SAMPLE_RATE,
      duration: currentSamples / VAD_SAMPLE_RATE,
    });
    totalSamples += currentSamples;
    current = [];
    currentSamples = 0;
  };
  for (const piece of pieces) {
    const length = piece.end - piece.start;
    if (current.length > 0 && currentSamples + length > maxSamples) {
      const carry = options.cutAtPauses === true ? longestPauseCut(current, maxSamples) : current.length;
      const rest = current.slice(carry);
      current = current.slice(0, carry);
      currentSamples = speechSamplesOf(current);
      close();
      current = rest;
      currentSamples = speechSamplesOf(rest);
      // what was carried over and the new piece do not fit together: the carried spans make a chunk of their own
      if (current.length > 0 && currentSamples + length > maxSamples) close();
    }
    current.push(piece);
    currentSamples += length;
  }
  if (current.length > 0) close();
  return plans;
}

function speechSamplesOf(spans: readonly SpeechSpan[]): number {
  return spans.reduce((n, span) => n + span.end - span.start, 0);
}

/**
 * Where to end a full chunk (`cutAtPauses`): the index of the first span of the next chunk. Among the boundaries
 * between the chunk's spans that leave it at least half full, the one with the longest pause in the original audio
 * (the gap between one span's end and the next one's start); the latest of equals, so with no pause anywhere (spans
 * that touch) the chunk ends where collect_chunks ends it. A chunk cut inside a sentence starts the next window in the
 * middle of it, without the context the decoder needs; a cut at a pause rarely does.
 */
function longestPauseCut(spans: readonly SpeechSpan[], maxSamples: number): number {
  let best = spans.length;
  let bestGap = -1;
  let filled = 0;
  for (let k = 1; k < spans.length; k++) {
    const prev = spans[k - 1] as SpeechSpan;
    filled += prev.end - prev.start;
    if (filled < maxSamples / 2) continue;
    const gap = (spans[k] as SpeechSpan).start - prev.end;
    if (gap > 0 && gap >= bestGap) {
      best = k;
      bestGap = gap;
    }
  }
  return best;
}

/** The audio of a planned chunk: the samples of its spans, joined. */
export function chunkSamples(samples: Float32Array, plan: ChunkPlan): Float32Array {
  const out = new Float32Array(plan.spans.reduce((n, span) => n + span.end - span.start, 0));
  let offset = 0;
  for (const span of plan.spans) {
    if (span.end > samples.length) {
      throw new WhisperError('E_OPTIONS', `speech span ${span.start}–${span.end} ends after the audio (${samples.length} samples)`);
    }
    out.set(samples.subarray(span.start, span.end), offset);
    offset += span.end - span.start;
  }
  return out;
}

/**
 * Merges speech spans into chunks of at most `maxDurationS` seconds of speech, each with its audio (faster-whisper's
 * `collect_chunks`, faster_whisper/vad.py; see `planChunks` for where this differs).
 */
export function collectChunks(samples: Float32Array, spans: readonly SpeechSpan[], maxDurationS = 30): SpeechChunk[] {
  checkSpans(spans, samples.length);
  return planChunks(spans, maxDurationS).map((plan) => ({ ...plan, samples: chunkSamples(samples, plan) }));
}

/** The audio of all spans, joined (what a sequential transcriber reads when VAD filtering is on). */
export function speechSamples(samples: Float32Array, spans: readonly SpeechSpan[]): Float32Array {
  checkSpans(spans, samples.length);
  return chunkSamples(samples, { spans: [...spans], offset: 0, duration: 0 });
}

/**
 * Maps times in the concatenated speech audio (the spans joined, silence removed) back to times in the original
 * audio: faster-whisper's `SpeechTimestampsMap` (faster_whisper/vad.py). Times are in seconds and not rounded
 * (faster-whisper rounds to 2 decimals; rounding is left to the writers).
 */
export class SpeechTimeMap {
  readonly sampleRate: number;
  /** For each span: where it ends in the concatenated audio, in samples. */
  readonly #chunkEndSample: number[] = [];
  /** For each span: seconds of silence removed before it. */
  readonly #silenceBefore: number[] = [];

  constructor(spans: readonly SpeechSpan[], sampleRate = VAD_SAMPLE_RATE) {
    checkSpans(spans);
    this.sampleRate = sampleRate;
    let previousEnd = 0;
    let silentSamples = 0;
    for (const span of spans) {
      silentSamples += span.start - previousEnd;
      previousEnd = span.end;
      this.#chunkEndSample.push(span.end - silentSamples);
      this.#silenceBefore.push(silentSamples / sampleRate);
    }
  }

  /** Number of spans in the map. */
  get size(): number {
    return this.#chunkEndSample.length;
  }

  /**
   * Index of the span a time of the concatenated audio falls in (SpeechTimestampsMap.get_chunk_index). A time
   * exactly at the end of a span belongs to that span when `isEnd`, to the next one otherwise.
   */
  chunkIndex(seconds: number, isEnd = false): number {
    const ends = this.#chunkEndSample;
    if (ends.length === 0) return 0;
    // faster-whisper takes int(time * sr); rounding instead keeps a time that is exactly a span boundary (e.g. 0.52 s,
    // 8319.999… samples in floating point) in the right span.
    const sample = Math.round(seconds * this.sampleRate);
    if (isEnd) {
      const exact = ends.indexOf(sample);
      if (exact >= 0) return exact;
    }
    // bisect.bisect (bisect_right): the first end strictly after `sample`
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((ends[mid] as number) <= sample) lo = mid + 1;
      else hi = mid;
    }
    return Math.min(lo, ends.length - 1);
  }

  /**
   * The original-audio time of `seconds` in the concatenated audio (SpeechTimestampsMap.get_original_time). Pass
   * `isEnd` for the end of a segment, so an end that falls exactly on a span's end stays in that span; pass
   * `chunkIndex` to resolve a time inside a given span (faster-whisper's restore_speech_timestamps maps both times of
   * a word through the span of the word's middle).
   */
  toOriginal(seconds: number, isEnd = false, chunkIndex?: number): number {
    if (this.#silenceBefore.length === 0) return seconds;
    const index = chunkIndex ?? this.chunkIndex(seconds, isEnd);
    const silence = this.#silenceBefore[Math.max(0, Math.min(index, this.#silenceBefore.length - 1))] as number;
    return silence + seconds;
  }
}
