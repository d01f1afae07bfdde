/**
 * One decoding step of the live transcriber: the buffer's audio as one 30-s window, the committed words inside the
 * buffer forced as the decoder's prefix, the committed text before it as the prompt; the result is the words after
 * the prefix with their times in the stream.
 */
import { FRAMES_PER_SECOND, HOP_LENGTH, N_FFT, N_FRAMES, N_SAMPLES, SAMPLE_RATE, logMelSpectrogram, melWindow } from '../audio/index.js';
import { addWordTimestamps, mergePunctuations, splitToWordTokens, type WindowSegment } from '../alignment/index.js';
import { decodeWindow, detectLanguage, initialTokens, type DecodeWindowOptions } from '../decoding/decode.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ResolvedTranscribeOptions } from '../options.js';
import { ort } from '../runtime/session.js';
import { decodeWithFallback } from '../transcribe/fallback.js';
import { tableDecodingOptions } from '../transcribe/window-options.js';
import type { TimedWord } from './agreement.js';

export interface StepRequest {
  /** The buffer: 16 kHz mono, at most 30 s. */
  audio: Float32Array;
  /** Stream time of `audio[0]`, seconds. */
  offset: number;
  /** Language to decode with; null detects it on this window. */
  language: string | null;
  /** Prompt tokens (committed text before the buffer). */
  prompt: readonly number[];
  /** Committed words inside the buffer, forced as the prefix. */
  prefix: readonly TimedWord[];
  /** Seed of the sampler when the fallback samples. */
  seed: number;
  /**
   * Seconds of silence after the audio in the encoded window (`windowPaddingSeconds`); the window is 30 s when the
   * language is still to be detected, the model takes whole windows only, or the audio and padding fill 30 s.
   */
  windowPadding: number;
  /** Tokens guessed to follow the prefix (see `draftAfter`): greedy decoding checks them all in its first run. */
  draft?: readonly number[] | undefined;
  signal?: AbortSignal | undefined;
}

export interface StepResult {
  language: string;
  /** Probability of the language when this step detected it; 1 otherwise. */
  languageProbability: number;
  /** The words after the prefix, times in the stream. */
  words: TimedWord[];
  /** Temperature of the decoding that was kept. */
  temperature: number;
  /**
   * Every temperature came out repetitive (compression ratio over the threshold): a loop such as "the water that came
   * from the water that came …", which the file transcriber would keep (faster-whisper's rule when all fail). A live
   * hypothesis like that is neither shown nor committed: `words` is empty.
   */
  repetitive: boolean;
  /** The decoded tokens after the prefix (text and timestamps, end-of-text excluded): the next step's draft. */
  tokens: number[];
}

const TIME_PRECISION = 0.02; // seconds per timestamp token (openai/whisper: CHUNK_LENGTH / n_audio_ctx)

/** A segment of the window: its tokens and times from the timestamp tokens, seconds from the window start. */
interface Piece extends WindowSegment {
  tokens: number[];
}

/**
 * The window's tokens cut into segments at timestamp tokens, like the seek loop of openai/whisper transcribe.py; the
 * text after the last timestamp (an open segment: the audio ends inside it) runs to the end of the audio.
 */
export function tokensToPieces(tokens: readonly number[], timestampBegin: number, duration: number): Piece[] {
  const pieces: Piece[] = [];
  let start: number | null = null;
  let lastEnd = 0;
  let current: number[] = [];
  const time = (t: number): number => Math.min(duration, (t - timestampBegin) * TIME_PRECISION);
  for (const t of tokens) {
    if (t < timestampBegin) {
      current.push(t);
      continue;
    }
    if (current.length > 0) {
      const s = start ?? lastEnd;
      pieces.push({ start: s, end: Math.max(s, time(t)), tokens: current });
      lastEnd = Math.max(s, time(t));
      current = [];
      start = null;
    } else {
      start = time(t);
    }
  }
  if (current.length > 0) {
    const s = start ?? lastEnd;
    pieces.push({ start: s, end: Math.max(s, duration), tokens: current });
  }
  return pieces;
}

/**
 * Word times inside a segment from its timestamps alone (models without cross-attentions): the segment's span shared
 * among its words in proportion to their length in characters. `from` (≥ the segment start) leaves out the part of
 * the segment that holds words said before.
 */
function interpolate(words: { word: string }[], from: number, to: number): { start: number; end: number }[] {
  const weights = words.map((w) => Math.max(1, w.word.trim().length));
  const total = weights.reduce((a, b) => a + b, 0);
  const span = Math.max(0, to - from);
  let at = from;
  return weights.map((w) => {
    const start = at;
    at += (span * w) / total;
    return { start, end: at };
  });
}

/**
 * Buffers shorter than this are decoded at the first temperature only. A step's text is tentative (the next steps
 * decode the same audio again with more after it, and only agreed words are committed), and on a word or less of
 * audio the fallback's sampled candidates (best-of rows at each temperature) often ran to the length limit: audio sent
 * at 4× real time stalled a stream for 10 s on its first 0.8 s.
 */
export const FALLBACK_MIN_BUFFER_S = 2;

/** Decodes the buffer once (with the temperature fallback) and returns the words after the prefix. */
export async function decodeStep(
  model: WhisperModel,
  o: ResolvedTranscribeOptions,
  req: StepRequest,
): Promise<StepResult> {
  const tk = model.tokenizer;
  const samples = req.audio.length;
  const duration = samples / SAMPLE_RATE;
  // the window's mel: padding past the audio only needs to cover one FFT frame for the frames that hold audio, and
  // the window is filled with zeros after the audio, as openai/whisper transcribe.py pads each segment's mel
  const mel = logMelSpectrogram(req.audio, model.config.nMels, Math.max(N_FFT, N_SAMPLES - samples));
  const contentFrames = Math.min(N_FRAMES, Math.floor(samples / HOP_LENGTH));
  const frames =
    req.language === null || !model.shortWindows
      ? N_FRAMES
      : Math.min(N_FRAMES, 2 * Math.ceil((contentFrames + req.windowPadding * FRAMES_PER_SECOND) / 2));
  const hidden = await model.encode(melWindow(mel, 0, frames, contentFrames), 1, req.signal);

  let language = req.language;
  let languageProbability = 1;
  if (language === null) {
    const d = await detectLanguage(model, hidden);
    language = d.language;
    languageProbability = d.probability;
  }
  const prefixText = req.prefix.map((w) => w.word).join('');
  const prefixTokens = prefixText === '' ? [] : tk.encode(prefixText);
  const hotwords = o.hotwords !== null ? tk.encode(' ' + o.hotwords.trim()) : undefined;
  const window = (temperature: number): DecodeWindowOptions => ({
    ...tableDecodingOptions(o),
    // the live transcriber places words by the timestamp tokens
    withoutTimestamps: false,
    language,
    prompt: req.prompt,
    prefix: prefixTokens,
    hotwords,
    temperature,
    seed: req.seed,
    draft: req.draft,
    signal: req.signal,
  });
  const temperatures = duration < FALLBACK_MIN_BUFFER_S ? { ...o, temperature: o.temperature.slice(0, 1) } : o;
  const result = await decodeWithFallback(temperatures, (temperature) => decodeWindow(model, hidden, window(temperature), ort));
  const tokens = result.tokens.slice(initialTokens(model, window(0)).forced.length);
  const base = { language, languageProbability, temperature: result.temperature, repetitive: false, tokens };
  // openai/whisper transcribe.py: a window the no-speech gate calls silent has no words
  if (o.noSpeechThreshold !== null && result.noSpeechProb > o.noSpeechThreshold) {
    if (o.logprobThreshold === null || result.avgLogprob <= o.logprobThreshold) return { ...base, words: [] };
  }
  if (o.compressionRatioThreshold !== null && result.compressionRatio > o.compressionRatioThreshold) {
    return { ...base, words: [], repetitive: true };
  }

  const pieces = tokensToPieces(result.tokens, tk.special.timestampBegin, duration);
  const prefixEnd = Math.max(0, (req.prefix[req.prefix.length - 1]?.end ?? req.offset) - req.offset);
  const perPiece: TimedWord[][] = [];
  if (o.wordTimestamps) {
    // cross-attention word times (openai/whisper timing.py), in stream time
    await addWordTimestamps(model, hidden, pieces, {
      language,
      task: o.task,
      numFrames: contentFrames,
      timeOffset: req.offset,
      prependPunctuations: o.prependPunctuations,
      appendPunctuations: o.appendPunctuations,
      lastSpeechTimestamp: req.offset + prefixEnd,
      duration: req.offset + duration,
      signal: req.signal,
    });
    for (const p of pieces) perPiece.push(p.words ?? []);
  } else {
    const probability = Math.exp(result.avgLogprob);
    for (const p of pieces) {
      const split = splitToWordTokens(tk, p.tokens.filter((t) => t < tk.special.eot), language);
      mergePunctuations(split, o.prependPunctuations, o.appendPunctuations);
      perPiece.push(
        split
          .filter((w) => w.word !== '')
          .map((w) => ({ word: w.word, start: req.offset + p.start, end: req.offset + p.end, probability })),
      );
    }
  }

  // the words after the prefix: the prefix's text is consumed first (a word that straddles it keeps its new part)
  let skip = prefixText.length;
  const words: TimedWord[] = [];
  perPiece.forEach((pieceWords, pi) => {
    const fresh: TimedWord[] = [];
    for (const w of pieceWords) {
      if (skip >= w.word.length) {
        skip -= w.word.length;
        continue;
      }
      fresh.push(skip > 0 ? { ...w, word: w.word.slice(skip) } : w);
      skip = 0;
    }
    if (fresh.length === 0) return;
    if (!o.wordTimestamps) {
      const p = pieces[pi] as Piece;
      const from = Math.min(p.end, Math.max(p.start, prefixEnd));
      interpolate(fresh, from, p.end).forEach((t, i) => {
        const w = fresh[i] as TimedWord;
        w.start = req.offset + t.start;
        w.end = req.offset + t.end;
      });
    }
    for (const w of fresh) {
      const start = Math.max(w.start, req.offset + prefixEnd);
      words.push({ ...w, start: round3(start), end: round3(Math.max(start, w.end)) });
    }
  });
  return { ...base, words };
}

/**
 * A guess at the tokens that follow the prefix, from the last step's `tokens` (which followed the prefix of then):
 * what comes after their first `chars` characters of text (the words committed since), with the timestamp tokens
 * moved by `shift` (timestamp steps the buffer's start moved since). Empty when the text does not divide there.
 */
export function draftAfter(
  tk: WhisperModel['tokenizer'],
  tokens: readonly number[],
  chars: number,
  shift: number,
): number[] {
  const tb = tk.special.timestampBegin;
  let from = 0;
  if (chars > 0) {
    const text: number[] = [];
    let n = 0;
    for (; from < tokens.length && n < chars; from++) {
      const t = tokens[from] as number;
      if (t >= tb) continue;
      text.push(t);
      n = tk.decode(text).length;
    }
    if (n !== chars) return [];
  }
  const draft: number[] = [];
  for (const t of tokens.slice(from)) {
    if (t < tb) draft.push(t);
    else if (t - shift >= tb) draft.push(t - shift);
    else break;
  }
  return draft;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
