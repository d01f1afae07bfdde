/**
 * Output writers: txt, json (OpenAI verbose_json shape), srt, vtt, tsv — as openai/whisper utils.py's writers lay
 * them out. Pure functions of a result; the CLI and the server pick the file names and content types.
 */
import type { Segment, TranscriptionResult } from '../types.js';
import { WhisperError } from '../errors.js';
import { LANGUAGE_NAMES } from '../languages.js';

export const OUTPUT_FORMATS = ['txt', 'json', 'srt', 'vtt', 'tsv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function isOutputFormat(value: string): value is OutputFormat {
  return (OUTPUT_FORMATS as readonly string[]).includes(value);
}

/** HH:MM:SS,mmm (srt) or HH:MM:SS.mmm (vtt); openai/whisper utils.py format_timestamp. */
export function formatTimestamp(seconds: number, decimalMarker: ',' | '.'): string {
  let ms = Math.round(Math.max(0, seconds) * 1000);
  const h = Math.floor(ms / 3_600_000);
  ms -= h * 3_600_000;
  const m = Math.floor(ms / 60_000);
  ms -= m * 60_000;
  const s = Math.floor(ms / 1000);
  ms -= s * 1000;
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${p(h)}:${p(m)}:${p(s)}${decimalMarker}${p(ms, 3)}`;
}

/**
 * Options of the srt and vtt writers (openai/whisper utils.py SubtitlesWriter); they take effect on results with word
 * timestamps. Line width and count are counted in characters (Unicode code points).
 */
export interface SubtitleOptions {
  /** One cue per word, with the word underlined (`<u>…</u>`) in the cue's text. */
  highlightWords?: boolean;
  /** Break lines before they grow longer than this; with `maxLineCount`, cues are cut across segments. */
  maxLineWidth?: number | null;
  /** With `maxLineWidth`: lines per cue. */
  maxLineCount?: number | null;
  /** Without `maxLineWidth`: words per cue. */
  maxWordsPerLine?: number | null;
}

interface Cue {
  start: string;
  end: string;
  text: string;
}

/** Python's len() of a string: code points. */
function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function firstStart(segments: readonly Segment[]): number | undefined {
  for (const s of segments) for (const w of s.words ?? []) return w.start;
  return segments[0]?.start;
}

/**
 * openai/whisper utils.py SubtitlesWriter.iterate_result: cues from segments, or — when the result has word
 * timestamps — from words, broken into lines by width, count and words per line, optionally one cue per word with it
 * highlighted. Times are formatted with `marker` (and compared formatted, as upstream does).
 */
export function subtitleCues(r: TranscriptionResult, o: SubtitleOptions, marker: ',' | '.'): Cue[] {
  const fmt = (t: number): string => formatTimestamp(t, marker);
  // "-->" inside text would break the cue
  const clean = (t: string): string => t.replace(/-->/g, '->');
  if (r.segments[0]?.words === undefined) {
    return r.segments.map((s) => ({ start: fmt(s.start), end: fmt(s.end), text: clean(s.text.trim()) }));
  }
  const maxLineCount = o.maxLineCount || null;
  const preserveSegments = maxLineCount === null || !o.maxLineWidth;
  const maxLineWidth = o.maxLineWidth || 1000;
  const maxWordsPerLine = o.maxWordsPerLine || 1000;

  type Timing = { word: string; start: number; end: number };
  const subtitles: Timing[][] = [];
  let lineLen = 0;
  let lineCount = 1;
  let subtitle: Timing[] = [];
  let last = firstStart(r.segments) ?? 0;
  for (const segment of r.segments) {
    const words = segment.words ?? [];
    let chunkIndex = 0;
    let wordsCount = maxWordsPerLine;
    while (chunkIndex < words.length) {
      const remaining = words.length - chunkIndex;
      if (maxWordsPerLine > remaining) wordsCount = remaining;
      words.slice(chunkIndex, chunkIndex + wordsCount).forEach((original, i) => {
        const timing: Timing = { word: original.word, start: original.start, end: original.end };
        const longPause = !preserveSegments && timing.start - last > 3.0;
        const hasRoom = lineLen + pyLen(timing.word) <= maxLineWidth;
        const segBreak = i === 0 && subtitle.length > 0 && preserveSegments;
        if (lineLen > 0 && hasRoom && !longPause && !segBreak) {
          lineLen += pyLen(timing.word); // line continuation
        } else {
          timing.word = timing.word.trim();
          if ((subtitle.length > 0 && maxLineCount !== null && (longPause || lineCount >= maxLineCount)) || segBreak) {
            subtitles.push(subtitle); // subtitle break
            subtitle = [];
            lineCount = 1;
          } else if (lineLen > 0) {
            lineCount++; // line break
            timing.word = '\n' + timing.word;
          }
          lineLen = pyLen(timing.word.trim());
        }
        subtitle.push(timing);
        last = timing.start;
      });
      chunkIndex += maxWordsPerLine;
    }
  }
  if (subtitle.length > 0) subtitles.push(subtitle);

  const cues: Cue[] = [];
  for (const sub of subtitles) {
    const start = fmt((sub[0] as Timing).start);
    const end = fmt((sub[sub.length - 1] as Timing).end);
    const all = sub.map((w) => w.word);
    const text = all.join('');
    if (!o.highlightWords) {
      cues.push({ start, end, text: clean(text) });
      continue;
    }
    let lastTime = start;
    sub.forEach((w, i) => {
      const ws = fmt(w.start);
      const we = fmt(w.end);
      if (lastTime !== ws) cues.push({ start: lastTime, end: ws, text: clean(text) });
      const marked = all.map((word, j) => (j === i ? word.replace(/^(\s*)(.*)$/, '$1<u>$2</u>') : word)).join('');
      cues.push({ start: ws, end: we, text: clean(marked) });
      lastTime = we;
    });
  }
  return cues;
}

export function toTxt(r: TranscriptionResult): string {
  return r.segments.map((s) => s.text.trim() + '\n').join('');
}

export function toSrt(r: TranscriptionResult, o: SubtitleOptions = {}): string {
  return subtitleCues(r, o, ',')
    .map((c, i) => `${i + 1}\n${c.start} --> ${c.end}\n${c.text}\n`)
    .join('\n');
}

export function toVtt(r: TranscriptionResult, o: SubtitleOptions = {}): string {
  return 'WEBVTT\n\n' + subtitleCues(r, o, '.').map((c) => `${c.start} --> ${c.end}\n${c.text}\n`).join('\n');
}

/** openai/whisper utils.py WriteTSV: integer milliseconds, tabs in text replaced. */
export function toTsv(r: TranscriptionResult): string {
  return (
    'start\tend\ttext\n' +
    r.segments
      .map((s) => `${Math.round(s.start * 1000)}\t${Math.round(s.end * 1000)}\t${s.text.trim().replace(/\t/g, ' ')}\n`)
      .join('')
  );
}

/** The OpenAI audio API's verbose_json object. */
export interface VerboseJson {
  task: string;
  language: string;
  duration: number;
  text: string;
  segments: {
    id: number;
    seek: number;
    start: number;
    end: number;
    text: string;
    tokens: number[];
    temperature: number;
    avg_logprob: number;
    compression_ratio: number;
    no_speech_prob: number;
    /** The segment's words as Whisper writes them (leading space kept), with `segmentWords` (openai/whisper's JSON). */
    words?: VerboseWord[];
  }[];
  /** Every word, as the OpenAI API's verbose_json lists them: no leading space (Whisper's tokens carry one). */
  words?: VerboseWord[];
}

export interface VerboseWord {
  word: string;
  start: number;
  end: number;
  probability: number;
}

function verboseWord(w: { word: string; start: number; end: number; probability: number }, trim: boolean): VerboseWord {
  return { word: trim ? w.word.trim() : w.word, start: w.start, end: w.end, probability: w.probability };
}

/**
 * A result in the OpenAI API's verbose_json shape. `segmentWords`: also give each segment its words (the CLI's json
 * file, so that a word can be tied to its segment; the API lists them once, at the top).
 */
export function toVerboseJson(r: TranscriptionResult, options: { segmentWords?: boolean } = {}): VerboseJson {
  const out: VerboseJson = {
    task: r.info.task,
    language: LANGUAGE_NAMES[r.info.language] ?? r.info.language,
    duration: r.info.duration,
    text: r.text,
    segments: r.segments.map((s) => ({
      id: s.id,
      seek: s.seek,
      start: s.start,
      end: s.end,
      text: s.text,
      tokens: s.tokens,
      temperature: s.temperature,
      avg_logprob: s.avgLogprob,
      compression_ratio: s.compressionRatio,
      no_speech_prob: s.noSpeechProb,
      ...(options.segmentWords === true && s.words ? { words: s.words.map((w) => verboseWord(w, false)) } : {}),
    })),
  };
  const words = r.segments.flatMap((s) => s.words ?? []);
  if (words.length) out.words = words.map((w) => verboseWord(w, true));
  return out;
}

/** Writes a result in one format; `subtitles` applies to srt and vtt. */
export function formatResult(r: TranscriptionResult, format: OutputFormat, subtitles: SubtitleOptions = {}): string {
  switch (format) {
    case 'txt':
      return toTxt(r);
    case 'json':
      return JSON.stringify(toVerboseJson(r, { segmentWords: true }), null, 2) + '\n';
    case 'srt':
      return toSrt(r, subtitles);
    case 'vtt':
      return toVtt(r, subtitles);
    case 'tsv':
      return toTsv(r);
  }
  // a JavaScript caller can pass any string
  throw new WhisperError('E_OPTIONS', `unknown output format ${JSON.stringify(format)} (known: ${OUTPUT_FORMATS.join(', ')})`);
}
