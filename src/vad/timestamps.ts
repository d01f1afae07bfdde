import { VAD_SAMPLE_RATE, VAD_WINDOW_SAMPLES, type ResolvedVadOptions } from './options.js';

/** A stretch of speech, in samples of the 16 kHz input: `start` inclusive, `end` exclusive. */
export interface SpeechSpan {
  start: number;
  end: number;
}

/** A speech span in seconds. */
export interface SpeechSpanSeconds {
  start: number;
  end: number;
}

/** Converts a span in samples (16 kHz) to seconds. */
export function spanToSeconds(span: SpeechSpan, sampleRate = VAD_SAMPLE_RATE): SpeechSpanSeconds {
  return { start: span.start / sampleRate, end: span.end / sampleRate };
}

/** Converts spans in samples (16 kHz) to seconds. */
export function spansToSeconds(spans: readonly SpeechSpan[], sampleRate = VAD_SAMPLE_RATE): SpeechSpanSeconds[] {
  return spans.map((span) => spanToSeconds(span, sampleRate));
}

/**
 * Turns per-window speech probabilities into speech spans: the decision loop and padding of faster-whisper's
 * `get_speech_timestamps` (faster_whisper/vad.py), itself adapted from snakers4/silero-vad's utils_vad.py.
 *
 * `probabilities[i]` belongs to samples [512 i, 512 (i + 1)); `audioLength` is the length of the unpadded audio.
 */
export function speechSpansFromProbabilities(
  probabilities: ArrayLike<number>,
  audioLength: number,
  options: ResolvedVadOptions,
): SpeechSpan[] {
  const sr = VAD_SAMPLE_RATE;
  const window = VAD_WINDOW_SAMPLES;
  const { threshold, negThreshold } = options;
  const minSpeechSamples = (sr * options.minSpeechDurationMs) / 1000;
  const speechPadSamples = (sr * options.speechPadMs) / 1000;
  const maxSpeechSamples = sr * options.maxSpeechDurationS - window - 2 * speechPadSamples;
  const minSilenceSamples = (sr * options.minSilenceDurationMs) / 1000;
  // a silence must last this long to be a place where an over-long span may be split
  const minSilenceSamplesAtMaxSpeech = (sr * 98) / 1000;

  const speeches: SpeechSpan[] = [];
  let triggered = false;
  let currentStart: number | null = null; // the open span's start; null when there is none
  let tempEnd = 0; // a possible end of the open span (tolerating a short silence); 0: none
  let prevEnd = 0; // the last silence long enough to split at, for max-speech splits; 0: none
  let nextStart = 0; // where speech resumed after prevEnd

  for (let i = 0; i < probabilities.length; i++) {
    const prob = probabilities[i] ?? 0;
    const position = window * i;

    if (prob >= threshold && tempEnd !== 0) {
      tempEnd = 0;
      if (nextStart < prevEnd) nextStart = position;
    }

    if (prob >= threshold && !triggered) {
      triggered = true;
      currentStart = position;
      continue;
    }

    if (triggered && currentStart !== null && position - currentStart > maxSpeechSamples) {
      if (prevEnd !== 0) {
        speeches.push({ start: currentStart, end: prevEnd });
        currentStart = null;
        // the audio went silent (below negThreshold) at prevEnd and has not become speech again
        if (nextStart < prevEnd) {
          triggered = false;
        } else {
          currentStart = nextStart;
        }
        prevEnd = nextStart = tempEnd = 0;
      } else {
        speeches.push({ start: currentStart, end: position });
        currentStart = null;
        prevEnd = nextStart = tempEnd = 0;
        triggered = false;
        continue;
      }
    }

    if (prob < negThreshold && triggered) {
      if (tempEnd === 0) tempEnd = position;
      // remember silences long enough to split at, so a max-speech split does not cut into a very short pause
      if (position - tempEnd > minSilenceSamplesAtMaxSpeech) prevEnd = tempEnd;
      if (position - tempEnd < minSilenceSamples) continue;
      if (currentStart !== null && tempEnd - currentStart > minSpeechSamples) {
        speeches.push({ start: currentStart, end: tempEnd });
      }
      currentStart = null;
      prevEnd = nextStart = tempEnd = 0;
      triggered = false;
      continue;
    }
  }

  if (currentStart !== null && audioLength - currentStart > minSpeechSamples) {
    speeches.push({ start: currentStart, end: audioLength });
  }

  // Padding: speechPad on each side, or half the gap each when two spans are closer than twice the pad.
  // Python's int() truncates toward zero; // floors (the gap is never negative here).
  for (let i = 0; i < speeches.length; i++) {
    const speech = speeches[i] as SpeechSpan;
    if (i === 0) speech.start = Math.trunc(Math.max(0, speech.start - speechPadSamples));
    const next = speeches[i + 1];
    if (next !== undefined) {
      const silence = next.start - speech.end;
      if (silence < 2 * speechPadSamples) {
        const half = Math.floor(silence / 2);
        speech.end += half;
        next.start = Math.trunc(Math.max(0, next.start - half));
      } else {
        speech.end = Math.trunc(Math.min(audioLength, speech.end + speechPadSamples));
        next.start = Math.trunc(Math.max(0, next.start - speechPadSamples));
      }
    } else {
      speech.end = Math.trunc(Math.min(audioLength, speech.end + speechPadSamples));
    }
  }
  return speeches;
}
