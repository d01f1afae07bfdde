/**
 * Output writers: txt, json (OpenAI verbose_json shape), srt, vtt, tsv — as openai/whisper utils.py's writers lay
 * them out. Pure functions of a result; the CLI and the server pick the file names and content types.
 */
import type { Segment, TranscriptionResult } from '../types.js';
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

function cueText(s: Segment): string {
  // openai/whisper utils.py SubtitlesWriter: "-->" inside text would break the cue
  return s.text.trim().replace(/-->/g, '->');
}

export function toTxt(r: TranscriptionResult): string {
  return r.segments.map((s) => s.text.trim() + '\n').join('');
}

export function toSrt(r: TranscriptionResult): string {
  return r.segments
    .map(
      (s, i) =>
        `${i + 1}\n${formatTimestamp(s.start, ',')} --> ${formatTimestamp(s.end, ',')}\n${cueText(s)}\n`,
    )
    .join('\n');
}

export function toVtt(r: TranscriptionResult): string {
  return (
    'WEBVTT\n\n' +
    r.segments.map((s) => `${formatTimestamp(s.start, '.')} --> ${formatTimestamp(s.end, '.')}\n${cueText(s)}\n`).join('\n')
  );
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
  }[];
  words?: { word: string; start: number; end: number; probability: number }[];
}

export function toVerboseJson(r: TranscriptionResult): VerboseJson {
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
    })),
  };
  const words = r.segments.flatMap((s) => s.words ?? []);
  if (words.length) out.words = words.map((w) => ({ ...w }));
  return out;
}

export function formatResult(r: TranscriptionResult, format: OutputFormat): string {
  switch (format) {
    case 'txt':
      return toTxt(r);
    case 'json':
      return JSON.stringify(toVerboseJson(r), null, 2) + '\n';
    case 'srt':
      return toSrt(r);
    case 'vtt':
      return toVtt(r);
    case 'tsv':
      return toTsv(r);
  }
}
