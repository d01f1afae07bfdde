/**
 * openai/whisper transcribe.py's hallucination_silence_threshold rule: segments whose words look anomalous (improbable,
 * very short or very long) and that are surrounded by silence are dropped, and the silence before them is skipped.
 */
import { FRAMES_PER_SECOND, N_FRAMES } from '../audio/index.js';
import type { WindowSegment } from '../alignment/index.js';
import type { Word } from '../types.js';

/** openai/whisper transcribe.py get_end: the end of the last word, else of the last segment. */
export function getEnd(segments: readonly WindowSegment[]): number | undefined {
  for (let i = segments.length - 1; i >= 0; i--) {
    const words = segments[i]?.words ?? [];
    const last = words[words.length - 1];
    if (last !== undefined) return last.end;
  }
  return segments[segments.length - 1]?.end;
}

/** openai/whisper transcribe.py word_anomaly_score: improbable, very short or very long words. */
export function wordAnomalyScore(w: Word): number {
  const duration = w.end - w.start;
  let score = 0;
  if (w.probability < 0.15) score += 1;
  if (duration < 0.133) score += (0.133 - duration) * 15;
  if (duration > 2.0) score += duration - 2.0;
  return score;
}

const PUNCTUATION = '"\'“¿([{-"\'.。,，!！?？:：”)]}、';

/** openai/whisper transcribe.py is_segment_anomaly: the first 8 non-punctuation words look hallucinated. */
export function isSegmentAnomaly(segment: WindowSegment | undefined): boolean {
  if (segment?.words === undefined || segment.words.length === 0) return false;
  // Python's `word not in punctuation` is a substring test; kept as upstream has it
  const words = segment.words.filter((w) => !PUNCTUATION.includes(w.word)).slice(0, 8);
  const score = words.reduce((sum, w) => sum + wordAnomalyScore(w), 0);
  return score >= 3 || score + 0.01 >= words.length;
}

function nextWordsSegment(segments: readonly WindowSegment[]): WindowSegment | undefined {
  return segments.find((s) => s.words !== undefined && s.words.length > 0);
}

export interface HallucinationContext {
  threshold: number;
  singleTimestampEnding: boolean;
  /** Frame the window started at (openai's previous_seek) and its frames of real audio (segment_size). */
  windowSeek: number;
  segmentSize: number;
  /** Seek after the window as the timestamps and words set it. */
  seek: number;
  /** Mel frames of the whole audio. */
  contentFrames: number;
  lastSpeechTimestamp: number;
}

export interface HallucinationDecision {
  /** Where the next window starts, in frames. */
  seek: number;
  /** Drop the whole window: it starts with a possible hallucination after a silence, which is skipped. */
  dropWindow: boolean;
  /** Keep only the segments before this index (the rest starts with a hallucination). */
  keep: number;
}

/**
 * openai/whisper transcribe.py, hallucination_silence_threshold: skip the silence before a possible hallucination
 * (a segment of anomalous words surrounded by silence or more hallucinations) and drop it. Times in seconds,
 * seeks in mel frames.
 */
export function skipHallucinations(segments: readonly WindowSegment[], c: HallucinationContext): HallucinationDecision {
  const { threshold } = c;
  const timeOffset = c.windowSeek / FRAMES_PER_SECOND;
  const windowEndTime = (c.windowSeek + N_FRAMES) / FRAMES_PER_SECOND;
  const segmentDuration = c.segmentSize / FRAMES_PER_SECOND;
  const contentDuration = c.contentFrames / FRAMES_PER_SECOND;
  let seek = c.seek;
  if (!c.singleTimestampEnding) {
    const lastWordEnd = getEnd(segments);
    if (lastWordEnd !== undefined && lastWordEnd > timeOffset) {
      const remaining = windowEndTime - lastWordEnd;
      seek = remaining > threshold ? Math.round(lastWordEnd * FRAMES_PER_SECOND) : c.windowSeek + c.segmentSize;
    }
  }
  // if the first segment might be a hallucination, skip the leading silence
  const first = nextWordsSegment(segments);
  if (first !== undefined && isSegmentAnomaly(first)) {
    const gap = first.start - timeOffset;
    if (gap > threshold) {
      return { seek: c.windowSeek + Math.round(gap * FRAMES_PER_SECOND), dropWindow: true, keep: 0 };
    }
  }
  // skip silence before any possible hallucination surrounded by silence or more hallucinations
  let halLastEnd = c.lastSpeechTimestamp;
  for (let si = 0; si < segments.length; si++) {
    const segment = segments[si] as WindowSegment;
    if (!segment.words || segment.words.length === 0) continue;
    if (isSegmentAnomaly(segment)) {
      const next = nextWordsSegment(segments.slice(si + 1));
      const halNextStart = next?.words?.[0]?.start ?? timeOffset + segmentDuration;
      const silenceBefore =
        segment.start - halLastEnd > threshold || segment.start < threshold || segment.start - timeOffset < 2.0;
      const silenceAfter =
        halNextStart - segment.end > threshold || isSegmentAnomaly(next) || windowEndTime - segment.end < 2.0;
      if (silenceBefore && silenceAfter) {
        seek = Math.round(Math.max(timeOffset + 1, segment.start) * FRAMES_PER_SECOND);
        if (contentDuration - segment.end < threshold) seek = c.contentFrames;
        return { seek, dropWindow: false, keep: si };
      }
    }
    halLastEnd = segment.end;
  }
  return { seek, dropWindow: false, keep: segments.length };
}
