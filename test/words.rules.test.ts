/**
 * The rules behind word timestamps and word-level subtitles, on fixed inputs with predicted outputs: openai/whisper's
 * DTW and median filter (golden values computed with timing.py's own dtw_cpu), word splitting with the real
 * tokenizer, punctuation merging, the hallucination rule, and the srt/vtt writers' line and word options (checked
 * against openai/whisper utils.py's writer on 600 random cases while porting; here the cases a reader can follow).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  dtw,
  medianFilterRows,
  mergePunctuations,
  splitToWordTokens,
  type WindowSegment,
  type WordTokens,
} from '../src/alignment/index.js';
import { toSrt, toVtt, type SubtitleOptions } from '../src/format/index.js';
import { WhisperTokenizer } from '../src/tokenizer/index.js';
import { isSegmentAnomaly, skipHallucinations } from '../src/transcribe/hallucination.js';
import { resolveTranscribeOptions } from '../src/options.js';
import type { Segment, TranscriptionResult, Word } from '../src/types.js';
import { BASE } from './helpers/paths.js';
import { parseSubtitles } from './helpers/subtitles.js';

const run = promisify(execFile);

describe('DTW and median filter (openai/whisper timing.py)', () => {
  it.each([
    [[[0, 1, 1], [1, 0, 1], [1, 1, 0]], [0, 1, 2], [0, 1, 2]],
    [[[0, 0, 1, 1], [1, 1, 0, 0]], [0, 0, 1, 1], [0, 1, 2, 3]],
    // ties: right before down before diagonal, as upstream's comparisons break them
    [[[0, 0, 0], [0, 0, 0]], [0, 1, 1, 1], [0, 0, 1, 2]],
    [[[5, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 0, 1, 1, 1]], [0, 1, 2, 2, 2], [0, 1, 2, 3, 4]],
  ])('dtw(%j) follows upstream dtw_cpu', (x, text, time) => {
    const n = x.length;
    const m = (x[0] as number[]).length;
    const r = dtw(Float64Array.from(x.flat()), n, m);
    expect(Array.from(r.textIndices)).toEqual(text);
    expect(Array.from(r.timeIndices)).toEqual(time);
  });

  it('median filter pads by reflection and leaves rows shorter than half the width alone', () => {
    const row = Float32Array.of(1, 5, 2, 8, 3, 9, 4);
    expect(Array.from(medianFilterRows(row, 1, 7, 3))).toEqual([5, 2, 5, 3, 8, 4, 9]);
    const two = Float32Array.of(1, 5, 2, 8, 3, 9, 4, 7, 7, 7, 0, 0, 0, 7);
    expect(Array.from(medianFilterRows(two, 2, 7, 3)).slice(7)).toEqual([7, 7, 7, 0, 0, 0, 0]);
    const short = Float32Array.of(3, 1, 2);
    expect(Array.from(medianFilterRows(short, 1, 3, 7))).toEqual([3, 1, 2]);
  });
});

describe('words from tokens (openai/whisper tokenizer.py split_to_word_tokens, timing.py merge_punctuations)', () => {
  const read = (name: string): unknown => JSON.parse(readFileSync(join(BASE, name), 'utf8'));
  const generation = read('generation_config.json') as Record<string, unknown>;
  const tk = WhisperTokenizer.fromFiles({
    tokenizerJson: read('tokenizer.json'),
    tokenizerConfig: read('tokenizer_config.json'),
    langToId: generation.lang_to_id as Record<string, number>,
    taskToId: generation.task_to_id as Record<string, number>,
    noTimestampsTokenId: generation.no_timestamps_token_id as number,
    eosTokenId: generation.eos_token_id as number,
    decoderStartTokenId: generation.decoder_start_token_id as number,
    prevSotTokenId: generation.prev_sot_token_id as number,
  });

  it('splits English at spaces and punctuation; subwords stay with their word', () => {
    const text = ' Hello, world! Unbelievably (quoted) words.';
    const words = splitToWordTokens(tk, tk.encode(text), 'en').map((w) => w.word);
    // ' (' is punctuation after a space, so it starts a word, and 'quoted' (no space) joins it, as upstream
    expect(words).toEqual([' Hello', ',', ' world', '!', ' Unbelievably', ' (quoted', ')', ' words', '.']);
    expect(words.join('')).toBe(text);
  });

  it('splits Chinese at every complete character, keeping a character split over byte tokens whole', () => {
    const text = '我们在北京鱻𠀋。';
    const tokens = tk.encode(text);
    const words = splitToWordTokens(tk, tokens, 'zh');
    expect(words.map((w) => w.word).join('')).toBe(text);
    for (const w of words) expect(w.word).not.toContain('\ufffd');
    // the rare characters take several byte-level tokens each, yet come out as one word each
    expect(tokens.length).toBeGreaterThan(words.length);
    expect(words.map((w) => w.word)).toContain('𠀋');
    expect(words.map((w) => w.word)).toContain('鱻');
    // the same text split by spaces would be one word
    expect(splitToWordTokens(tk, tokens, 'en')).toHaveLength(1);
  });

  it('merges opening punctuation into the next word and closing punctuation into the previous one', () => {
    const words: WordTokens[] = [' "', 'Hi', ',', ' there', '."', ' (', 'ok', ')'].map((word, i) => ({ word, tokens: [i] }));
    mergePunctuations(words, '"\'“¿([{-', '"\'.。,，!！?？:：”)]}、');
    expect(words.map((w) => w.word)).toEqual(['', ' "Hi,', '', ' there', '."', '', ' (ok)', '']);
    expect(words.map((w) => w.tokens)).toEqual([[], [0, 1, 2], [], [3], [4], [], [5, 6, 7], []]);
  });
});

describe('hallucination rule (openai/whisper transcribe.py hallucination_silence_threshold)', () => {
  const word = (w: string, start: number, end: number, probability: number): Word => ({ word: w, start, end, probability });
  const speech: WindowSegment = {
    start: 0,
    end: 2,
    tokens: [],
    words: [word(' Real', 0, 0.5, 0.9), word(' speech', 0.5, 1.1, 0.95), word(' here.', 1.1, 2, 0.9)],
  };
  // improbable words alone after a long silence: the usual "Thank you." in silence
  const ghost: WindowSegment = {
    start: 20,
    end: 21,
    tokens: [],
    words: [word(' Thank', 20, 20.5, 0.05), word(' you.', 20.5, 21, 0.08)],
  };
  const ctx = {
    threshold: 2,
    singleTimestampEnding: true,
    windowSeek: 0,
    segmentSize: 3000,
    seek: 3000,
    contentFrames: 3000,
    lastSpeechTimestamp: 0,
  };

  it('scores words as upstream does', () => {
    expect(isSegmentAnomaly(speech)).toBe(false);
    expect(isSegmentAnomaly(ghost)).toBe(true);
    // very short words count too: three 50 ms words score (0.133 − 0.05) × 15 ≈ 1.25 each
    const blips: WindowSegment = { start: 5, end: 5.15, tokens: [], words: [0, 1, 2].map((i) => word(' a', 5 + i * 0.05, 5.05 + i * 0.05, 0.9)) };
    expect(isSegmentAnomaly(blips)).toBe(true);
  });

  it('drops a hallucination surrounded by silence and seeks to it', () => {
    expect(skipHallucinations([speech, ghost], ctx)).toEqual({ seek: 2000, dropWindow: false, keep: 1 });
    // at the end of the window, less than the threshold before the end of the audio: seek to the end
    const late: WindowSegment = {
      start: 27,
      end: 28.5,
      tokens: [],
      words: [word(' Thank', 27, 27.7, 0.05), word(' you.', 27.7, 28.5, 0.08)],
    };
    expect(skipHallucinations([speech, late], { ...ctx, contentFrames: 2950, segmentSize: 2950 })).toEqual({
      seek: 2950,
      dropWindow: false,
      keep: 1,
    });
  });

  it('skips the leading silence of a window that starts with a possible hallucination', () => {
    expect(skipHallucinations([ghost, speech], ctx)).toEqual({ seek: 2000, dropWindow: true, keep: 0 });
  });

  it('keeps speech', () => {
    expect(skipHallucinations([speech], ctx)).toEqual({ seek: 3000, dropWindow: false, keep: 1 });
  });

  it('needs word timestamps', () => {
    expect(() => resolveTranscribeOptions({ hallucinationSilenceThreshold: 2 })).toThrow(/needs word timestamps/);
    expect(resolveTranscribeOptions({ hallucinationSilenceThreshold: 2, wordTimestamps: true }).hallucinationSilenceThreshold).toBe(2);
  });
});

describe('word-level srt/vtt (openai/whisper utils.py SubtitlesWriter)', () => {
  const w = (word: string, start: number, end: number): Word => ({ word, start, end, probability: 0.9 });
  const seg = (id: number, words: Word[]): Segment => ({
    id,
    seek: 0,
    start: words[0]?.start ?? 0,
    end: words[words.length - 1]?.end ?? 0,
    text: words.map((x) => x.word).join(''),
    tokens: [],
    avgLogprob: -0.1,
    noSpeechProb: 0,
    compressionRatio: 1,
    temperature: 0,
    words,
  });
  const result: TranscriptionResult = {
    info: { language: 'en', languageProbability: 1, duration: 7, task: 'transcribe' },
    segments: [
      seg(0, [w(' Hello', 0, 0.5), w(' world.', 0.5, 1)]),
      seg(1, [w(' How', 4.5, 4.8), w(' are', 4.9, 5), w(' you?', 5, 5.6), w(' I', 6, 6.1), w(' am', 6.1, 6.3), w(' fine.', 6.3, 6.8)]),
    ],
    text: '',
  };
  const cues = (o: SubtitleOptions): [number, number, string][] =>
    parseSubtitles(toSrt(result, o)).map((c) => [c.start, c.end, c.text]);

  it('with words and no options: one cue per segment, from its first word to its last', () => {
    expect(cues({})).toEqual([
      [0, 1, 'Hello world.'],
      [4.5, 6.8, 'How are you? I am fine.'],
    ]);
  });

  it('highlight words: a cue per word with it underlined, gaps between words keep the plain line', () => {
    expect(cues({ highlightWords: true })).toEqual([
      [0, 0.5, '<u>Hello</u> world.'],
      [0.5, 1, 'Hello <u>world.</u>'],
      [4.5, 4.8, '<u>How</u> are you? I am fine.'],
      [4.8, 4.9, 'How are you? I am fine.'],
      [4.9, 5, 'How <u>are</u> you? I am fine.'],
      [5, 5.6, 'How are <u>you?</u> I am fine.'],
      [5.6, 6, 'How are you? I am fine.'],
      [6, 6.1, 'How are you? <u>I</u> am fine.'],
      [6.1, 6.3, 'How are you? I <u>am</u> fine.'],
      [6.3, 6.8, 'How are you? I am <u>fine.</u>'],
    ]);
  });

  it('max words per line: segments cut into cues of at most that many words', () => {
    expect(cues({ maxWordsPerLine: 4 })).toEqual([
      [0, 1, 'Hello world.'],
      [4.5, 6.1, 'How are you? I'],
      [6.1, 6.8, 'am fine.'],
    ]);
  });

  it('max line width and count: lines break before the width, cues after the count or a 3-s pause', () => {
    expect(cues({ maxLineWidth: 10, maxLineCount: 2 })).toEqual([
      [0, 1, 'Hello\nworld.'],
      [4.5, 6.3, 'How are\nyou? I am'],
      [6.3, 6.8, 'fine.'],
    ]);
    // without a line count, segments are kept and only lines break
    expect(cues({ maxLineWidth: 10 })).toEqual([
      [0, 1, 'Hello\nworld.'],
      [4.5, 6.8, 'How are\nyou? I am\nfine.'],
    ]);
  });

  it('vtt carries the same cues, and ffprobe reads both files cue for cue', async () => {
    const o: SubtitleOptions = { highlightWords: true, maxWordsPerLine: 3 };
    const srt = toSrt(result, o);
    const vtt = toVtt(result, o);
    expect(vtt.startsWith('WEBVTT\n\n')).toBe(true);
    expect(parseSubtitles(vtt)).toEqual(parseSubtitles(srt));
    const dir = mkdtempSync(join(tmpdir(), 'wts-words-'));
    try {
      for (const [ext, content] of [['srt', srt], ['vtt', vtt]] as const) {
        const file = join(dir, `x.${ext}`);
        writeFileSync(file, content);
        const r = await run('ffprobe', ['-v', 'error', '-show_entries', 'packet=pts_time,duration_time', '-of', 'json', file]);
        const packets = (JSON.parse(r.stdout) as { packets: { pts_time: string; duration_time: string }[] }).packets;
        expect(packets.map((p) => [Number(p.pts_time), Number(p.pts_time) + Number(p.duration_time)]), ext).toEqual(
          parseSubtitles(srt).map((c) => [c.start, expect.closeTo(c.end, 6)]),
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('results without words keep the segment cues', () => {
    const plain: TranscriptionResult = {
      ...result,
      segments: result.segments.map(({ words: _words, ...s }) => s),
    };
    expect(parseSubtitles(toSrt(plain, { highlightWords: true, maxWordsPerLine: 1 })).map((c) => c.text)).toEqual([
      'Hello world.',
      'How are you? I am fine.',
    ]);
  });
});
