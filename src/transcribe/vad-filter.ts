import { HOP_LENGTH, SAMPLE_RATE } from '../audio/index.js';
import { throwIfAborted } from '../errors.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ResolvedTranscribeOptions } from '../options.js';
import type { Segment, Word } from '../types.js';
import { SpeechTimeMap, VAD_DEFAULTS, speechSamples, type SpeechSpan, type VadModel } from '../vad/index.js';
import type { CallContext, Transcription } from './sequential.js';

/** A transcriber of 16 kHz mono samples: the sequential loop, or anything with its contract. */
export type Transcriber = (
  model: WhisperModel,
  audio: Float32Array,
  o: ResolvedTranscribeOptions,
  ctx: CallContext,
) => Promise<Transcription>;

/**
 * Moves a segment (and its words) from the speech-only audio to the original audio: faster-whisper transcribe.py
 * restore_speech_timestamps. Words keep both times in the span of their middle, and the segment then spans its words;
 * without words, the start maps as a start and the end as an end (an end exactly at a span's end stays in that span).
 */
export function restoreSegmentTimes(segment: Segment, map: SpeechTimeMap): Segment {
  const frames = SAMPLE_RATE / HOP_LENGTH;
  const seek = Math.round(map.toOriginal(segment.seek / frames) * frames);
  if (segment.words && segment.words.length > 0) {
    const words: Word[] = segment.words.map((w) => {
      const index = map.chunkIndex((w.start + w.end) / 2);
      return { ...w, start: round3(map.toOriginal(w.start, false, index)), end: round3(map.toOriginal(w.end, false, index)) };
    });
    return {
      ...segment,
      seek,
      start: (words[0] as Word).start,
      end: (words[words.length - 1] as Word).end,
      words,
    };
  }
  return {
    ...segment,
    seek,
    start: round3(map.toOriginal(segment.start)),
    end: round3(map.toOriginal(segment.end, true)),
  };
}

/**
 * The `vadFilter` stage (faster-whisper transcribe.py WhisperModel.transcribe with vad_filter): Silero VAD finds the
 * speech (VAD_DEFAULTS under the caller's `vadOptions`), the speech alone, joined, goes to the inner transcriber, and
 * every time it reports (segments, words, progress) is mapped back to the original audio with SpeechTimeMap. Audio
 * with no speech gives no segments (the language is then detected on silence, as faster-whisper does).
 */
export async function transcribeWithVad(
  model: WhisperModel,
  vad: VadModel,
  audio: Float32Array,
  o: ResolvedTranscribeOptions,
  ctx: CallContext,
  inner: Transcriber,
): Promise<Transcription> {
  throwIfAborted(ctx.signal);
  const spans: SpeechSpan[] = await vad.speechTimestamps(audio, { ...VAD_DEFAULTS, ...o.vadOptions }, ctx.signal);
  const map = new SpeechTimeMap(spans);
  const speech = speechSamples(audio, spans);
  const duration = audio.length / SAMPLE_RATE;
  const speechDuration = speech.length / SAMPLE_RATE;
  const { info, segments } = await inner(model, speech, o, {
    signal: ctx.signal,
    windowDecoder: ctx.windowDecoder,
    onProgress: (p) => {
      if (!ctx.onProgress) return;
      const done = p.done >= speechDuration ? duration : map.toOriginal(p.done, true);
      ctx.onProgress({ done: Math.min(duration, done), total: duration });
    },
  });
  async function* restored(): AsyncGenerator<Segment, void, undefined> {
    for await (const segment of segments) yield restoreSegmentTimes(segment, map);
    ctx.onProgress?.({ done: duration, total: duration });
  }
  return { info: { ...info, duration, durationAfterVad: speechDuration }, segments: restored() };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
