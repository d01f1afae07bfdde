/**
 * Helpers of the streaming tests and benchmarks: slices of longform_en with their reference text, reference word
 * times by forced alignment, word alignment of a hypothesis to the reference, and the latency figures.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { N_FRAMES, N_SAMPLES, SAMPLE_RATE, logMelSpectrogram, melWindow } from '../../src/audio/index.js';
import { alignTokens, splitTokensOnSpaces } from '../../src/alignment/index.js';
import type { WhisperModel } from '../../src/model/whisper-model.js';
import { comparable } from '../../src/stream/index.js';
import type { StreamEvent, StreamFinalEvent } from '../../src/types.js';
import { EVAL, ROOT } from './paths.js';
import { score } from './score.js';

export const LONGFORM = join(EVAL, 'longform_en', 'librispeech_test_other_3ch_concat.flac');

export interface Piece {
  start: number;
  end: number;
  text: string;
}

export function longformPieces(): Piece[] {
  return readFileSync(join(EVAL, 'longform_en', 'segments.tsv'), 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim())
    .map((l) => {
      const [start, end, , text] = l.split('\t');
      return { start: Number(start), end: Number(end), text: text ?? '' };
    });
}

/** Pieces `first`..`last` of longform_en: the slice runs from the middle of the gap before to the middle after. */
export function longformSlice(first: number, last: number): { from: number; to: number; pieces: Piece[] } {
  const all = longformPieces();
  const pieces = all.slice(first, last + 1);
  const before = all[first - 1];
  const after = all[last + 1];
  const p0 = pieces[0] as Piece;
  const pn = pieces[pieces.length - 1] as Piece;
  const from = before ? (before.end + p0.start) / 2 : 0;
  const to = after ? (pn.end + after.start) / 2 : pn.end + 0.25;
  return {
    from,
    to,
    pieces: pieces.map((p) => ({ start: p.start - from, end: p.end - from, text: p.text })),
  };
}

/** WER of `hypothesis` against `reference` with the reference scorer (openai's English normaliser + jiwer). */
export function wer(reference: string, hypothesis: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'wts-stream-set-'));
  writeFileSync(join(dir, 'transcripts.tsv'), `slice.wav\t${reference}\n`);
  return score(dir, new Map([['slice.wav', hypothesis]]), 'en');
}

export interface RefWord {
  word: string;
  start: number;
  end: number;
}

/**
 * Reference word times: each piece's reference text force-aligned to its audio with the alignment heads of a model
 * with cross-attentions (openai timing.py's DTW, src/alignment), in seconds of `audio`.
 */
export async function referenceWords(model: WhisperModel, audio: Float32Array, pieces: Piece[]): Promise<RefWord[]> {
  const out: RefWord[] = [];
  for (const p of pieces) {
    const a = Math.max(0, Math.floor((p.start - 0.1) * SAMPLE_RATE));
    const b = Math.min(audio.length, Math.ceil((p.end + 0.1) * SAMPLE_RATE));
    const samples = audio.subarray(a, b);
    const mel = logMelSpectrogram(samples, model.config.nMels, N_SAMPLES);
    const frames = Math.min(N_FRAMES, mel.nFrames - N_FRAMES);
    const hidden = await model.encode(melWindow(mel, 0, N_FRAMES, frames), 1);
    const tokens = model.tokenizer.encode(' ' + p.text.toLowerCase());
    const { jumpTimes } = await alignTokens(model, hidden, tokens, { language: 'en', task: 'transcribe', numFrames: frames });
    let at = 0;
    for (const w of splitTokensOnSpaces(model.tokenizer, tokens)) {
      const start = (jumpTimes[at] as number) + a / SAMPLE_RATE;
      at += w.tokens.length;
      out.push({ word: w.word.trim(), start, end: (jumpTimes[at] as number) + a / SAMPLE_RATE });
    }
  }
  return out;
}

/**
 * `referenceWords` of the whole of longform_en with whisper-base_timestamped, kept in the repository: the alignment
 * takes ~20 s of the two cores, and it depends only on the model and the reference transcripts. Rewritten by
 * `WTS_REFRESH_FIXTURES=1 npx vitest run test/stream.longform.test.ts` (or when missing).
 */
export const LONGFORM_WORDS_FIXTURE = join(ROOT, 'test', 'fixtures', 'longform_en.reference-words.json');

/**
 * The fixture's words when it is there and still fits `pieces` (the same words in order, each inside its piece);
 * undefined when it is missing, stale or refresh is asked for.
 */
export function readLongformWords(pieces: readonly Piece[]): RefWord[] | undefined {
  if (process.env.WTS_REFRESH_FIXTURES === '1' || !existsSync(LONGFORM_WORDS_FIXTURE)) return undefined;
  const words = JSON.parse(readFileSync(LONGFORM_WORDS_FIXTURE, 'utf8')) as RefWord[];
  const expected = pieces.flatMap((p) => p.text.toLowerCase().split(/\s+/).filter((w) => w !== ''));
  if (words.map((w) => w.word).join(' ') !== expected.join(' ')) return undefined;
  const first = pieces[0]?.start ?? 0;
  const last = pieces[pieces.length - 1]?.end ?? 0;
  if (words.some((w) => !(w.start >= first - 0.2 && w.end <= last + 0.2 && w.end >= w.start))) return undefined;
  return words;
}

export function writeLongformWords(words: readonly RefWord[]): void {
  writeFileSync(LONGFORM_WORDS_FIXTURE, JSON.stringify(words.map((w) => ({ ...w, start: +w.start.toFixed(3), end: +w.end.toFixed(3) })), null, 0) + '\n');
}

/** Pairs of equal words (after `comparable`) of a minimum-edit alignment of `hyp` to `ref`: [hypIndex, refIndex]. */
export function matchWords(hyp: readonly string[], ref: readonly string[]): [number, number][] {
  const h = hyp.map(comparable);
  const r = ref.map(comparable);
  const n = h.length;
  const m = r.length;
  const d = Array.from({ length: n + 1 }, (_, i) => {
    const row = new Int32Array(m + 1);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= m; j++) (d[0] as Int32Array)[j] = j;
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      const sub = (d[i - 1] as Int32Array)[j - 1]! + (h[i - 1] === r[j - 1] ? 0 : 1);
      (d[i] as Int32Array)[j] = Math.min(sub, (d[i - 1] as Int32Array)[j]! + 1, (d[i] as Int32Array)[j - 1]! + 1);
    }
  }
  const pairs: [number, number][] = [];
  let i = n;
  let j = m;
  while (i > 0 && j > 0) {
    const here = (d[i] as Int32Array)[j]!;
    const same = h[i - 1] === r[j - 1];
    if (here === (d[i - 1] as Int32Array)[j - 1]! + (same ? 0 : 1)) {
      if (same) pairs.push([i - 1, j - 1]);
      i--;
      j--;
    } else if (here === (d[i - 1] as Int32Array)[j]! + 1) i--;
    else j--;
  }
  return pairs.reverse();
}

export function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const k = Math.floor(v.length / 2);
  return v.length % 2 ? (v[k] as number) : ((v[k - 1] as number) + (v[k] as number)) / 2;
}

/** An event with the stream time at which it was sent (the audio position plus the time spent computing it). */
export type ClockedEvent = StreamEvent & { at: number };

export interface Latency {
  /** Words of the reference found in the finals (in order). */
  matched: number;
  /** Median seconds from a word's end in the audio to the final that holds it. */
  finalMedian: number;
  finalP90: number;
  /** The same, counting only the audio the decision waited for (no compute time): the policy's own delay. */
  finalPolicyMedian: number;
  /** Median seconds from a word's end to its first appearance in a partial (or final). */
  partialMedian: number;
}

/**
 * Delays of words: each final word matched to a reference word by a minimum-edit alignment of the transcript; a
 * partial word counts for a reference word when it is the same word ending within 1.5 s of it.
 */
export function latency(events: readonly ClockedEvent[], ref: readonly RefWord[]): Latency {
  const finals = events.filter((e): e is StreamFinalEvent & { at: number } => e.type === 'final');
  const hypWords = finals.flatMap((f) => f.words.map((w) => ({ word: w.word, at: f.at, audioEnd: f.audioEnd })));
  const pairs = matchWords(
    hypWords.map((w) => w.word),
    ref.map((w) => w.word),
  );
  const delays = pairs.map(([h, r]) => (hypWords[h] as { at: number }).at - (ref[r] as RefWord).end);
  const policy = pairs.map(([h, r]) => (hypWords[h] as { audioEnd: number }).audioEnd - (ref[r] as RefWord).end);
  // the words of every partial and final, compared once (a whole-file stream has thousands of events)
  const seen = events
    .filter((ev) => ev.type === 'partial' || ev.type === 'final')
    .map((ev) => ({ at: ev.at, words: (ev as StreamFinalEvent).words.map((w) => ({ key: comparable(w.word), end: w.end })) }));
  const firstSeen: number[] = [];
  for (const r of ref) {
    const key = comparable(r.word);
    const e = seen.find((ev) => ev.words.some((w) => w.key === key && Math.abs(w.end - r.end) < 1.5));
    if (e !== undefined) firstSeen.push(e.at - r.end);
  }
  const sorted = [...delays].sort((a, b) => a - b);
  return {
    matched: pairs.length,
    finalMedian: median(delays),
    finalP90: sorted[Math.floor(sorted.length * 0.9)] ?? Number.NaN,
    finalPolicyMedian: median(policy),
    partialMedian: median(firstSeen),
  };
}
