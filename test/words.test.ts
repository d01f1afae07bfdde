/**
 * Word timestamps on the real timestamped export (whisper-base_timestamped, q8): accuracy against faster-whisper's
 * word times on jfk.wav, the invariants of words on eval files of three languages and across a window boundary,
 * hallucinationSilenceThreshold on speech followed by silence, the error with a plain export, and the CLI's
 * word-level subtitle flags.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transcribeCommand } from '../src/cli/transcribe.js';
import { decodeAudio, isWhisperError, loadModel, type Segment, type VerboseJson, type Whisper } from '../src/index.js';
import { BASE, BASE_TS, EVAL, JFK } from './helpers/paths.js';
import { parseSubtitles } from './helpers/subtitles.js';

const THREADS = 2;

/** Words monotonic, inside their segment, adding up to its text; every violation listed. */
function wordProblems(segments: readonly Segment[]): string[] {
  const problems: string[] = [];
  let previousEnd = 0;
  for (const s of segments) {
    const words = s.words ?? [];
    const where = `segment ${s.id} [${s.start}, ${s.end}]`;
    if (words.length === 0) problems.push(`${where}: no words`);
    const joined = words.map((w) => w.word).join('');
    if (joined !== s.text) problems.push(`${where}: words ${JSON.stringify(joined)} ≠ text ${JSON.stringify(s.text)}`);
    for (const w of words) {
      const at = `${where} word ${JSON.stringify(w.word)} [${w.start}, ${w.end}]`;
      if (w.start < previousEnd) problems.push(`${at} starts before the previous word's end ${previousEnd}`);
      if (w.end < w.start) problems.push(`${at} ends before it starts`);
      if (w.start < s.start || w.end > s.end) problems.push(`${at} is outside its segment`);
      if (!(w.probability > 0 && w.probability <= 1)) problems.push(`${at} probability ${w.probability}`);
      previousEnd = w.end;
    }
  }
  return problems;
}

function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? (v[(n - 1) / 2] as number) : ((v[n / 2 - 1] as number) + (v[n / 2] as number)) / 2;
}

describe('word timestamps: whisper-base_timestamped', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    whisper = await loadModel(BASE_TS, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  it('jfk.wav: median |Δ| to faster-whisper word times ≤ 0.1 s for starts and for ends', async () => {
    expect(whisper.supportsWordTimestamps).toBe(true);
    const r = await whisper.transcribeAll(JFK, { language: 'en', wordTimestamps: true });
    const scores = JSON.parse(readFileSync(join(BASE, 'reference', 'scores.json'), 'utf8')) as {
      scores: { jfk_words_faster_whisper: [string, number, number, number][] };
    };
    const ref = scores.scores.jfk_words_faster_whisper;
    const words = r.segments.flatMap((s) => s.words ?? []);
    // the same words (faster-whisper's text has no comma after "Americans")
    const bare = (w: string): string => w.replace(/[,.]/g, '');
    expect(words.map((w) => bare(w.word))).toEqual(ref.map((w) => bare(w[0])));
    const dStart = ref.map((w, i) => Math.abs(w[1] - (words[i]?.start ?? Infinity)));
    const dEnd = ref.map((w, i) => Math.abs(w[2] - (words[i]?.end ?? Infinity)));
    const dProb = ref.map((w, i) => Math.abs(w[3] - (words[i]?.probability ?? Infinity)));
    console.log(
      `jfk words vs faster-whisper: median |Δstart| ${median(dStart).toFixed(3)} s, median |Δend| ` +
        `${median(dEnd).toFixed(3)} s, max |Δstart| ${Math.max(...dStart).toFixed(2)} s, max |Δend| ` +
        `${Math.max(...dEnd).toFixed(2)} s, median |Δprobability| ${median(dProb).toFixed(3)}`,
    );
    expect(median(dStart)).toBeLessThanOrEqual(0.1);
    expect(median(dEnd)).toBeLessThanOrEqual(0.1);
    expect(wordProblems(r.segments)).toEqual([]);
    // the segment follows its words
    expect(r.segments[0]?.start).toBe(words[0]?.start);
    expect(r.segments[r.segments.length - 1]?.end).toBe(words[words.length - 1]?.end);
  });

  it.each([
    ['librispeech_test_other', '1688-142285-0000.flac', 'en'],
    ['librispeech_test_other', '1688-142285-0001.flac', 'en'],
    ['librispeech_test_other', '1688-142285-0003.flac', 'en'],
    ['aishell_zh', 'BAC009S0150W0121.wav', 'zh'],
    ['aishell_zh', 'BAC009S0150W0132.wav', 'zh'],
    ['fleurs_de', 'fleurs-de-000.ogg', 'de'],
  ])('%s/%s: words monotonic, inside their segment, adding up to its text', async (set, file, language) => {
    const r = await whisper.transcribeAll(join(EVAL, set, file), { language, wordTimestamps: true });
    expect(r.segments.length).toBeGreaterThan(0);
    expect(wordProblems(r.segments)).toEqual([]);
    const words = r.segments.flatMap((s) => s.words ?? []);
    expect(words[words.length - 1]?.end ?? Infinity).toBeLessThanOrEqual(r.info.duration);
    if (language === 'zh') {
      // Mandarin is split at characters, not spaces (a BPE token holding two characters, e.g. 國家, stays one word)
      const han = words.reduce((n, w) => n + (w.word.match(/\p{Script=Han}/gu) ?? []).length, 0);
      expect(han).toBeGreaterThanOrEqual(8);
      expect(words.length).toBeGreaterThanOrEqual(han * 0.6);
      expect(words.every((w) => (w.word.match(/\p{Script=Han}/gu) ?? []).length <= 2)).toBe(true);
    } else {
      // words of spaced languages start with their space (the first may not)
      expect(words.slice(1).every((w) => w.word.startsWith(' '))).toBe(true);
    }
  });

  it('a 75-s slice of longform_en: words stay consistent across the window boundary', async () => {
    const audio = await decodeAudio(join(EVAL, 'longform_en', 'librispeech_test_other_3ch_concat.flac'));
    const slice = audio.slice(30 * 16000, 105 * 16000);
    const r = await whisper.transcribeAll(slice, { language: 'en', wordTimestamps: true });
    expect(new Set(r.segments.map((s) => s.seek)).size).toBeGreaterThanOrEqual(3);
    expect(wordProblems(r.segments)).toEqual([]);
    const words = r.segments.flatMap((s) => s.words ?? []);
    expect(words.length).toBeGreaterThan(150);
    expect(words.some((w) => w.start > 60)).toBe(true);
    expect(words[words.length - 1]?.end ?? Infinity).toBeLessThanOrEqual(75);
  });

  it('hallucinationSilenceThreshold: nothing is invented in 20 s of silence after speech, nor before speech after it', async () => {
    const speech = await decodeAudio(JFK);
    const seconds = speech.length / 16000;
    const silence = 20 * 16000;
    const tail = new Float32Array(speech.length + silence);
    tail.set(speech);
    const sandwich = new Float32Array(2 * speech.length + silence);
    sandwich.set(speech);
    sandwich.set(speech, speech.length + silence);
    const o = { language: 'en', wordTimestamps: true, hallucinationSilenceThreshold: 2 };

    const a = await whisper.transcribeAll(tail, o);
    expect(a.text.trim()).toBe(
      'And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.',
    );
    expect(a.segments.flatMap((s) => s.words ?? []).filter((w) => w.end > seconds)).toEqual([]);
    expect(wordProblems(a.segments)).toEqual([]);

    const b = await whisper.transcribeAll(sandwich, o);
    const words = b.segments.flatMap((s) => s.words ?? []);
    // the second copy starts at seconds + 20; its first word may be placed a little early (0.18 s here)
    const secondStart = seconds + 20 - 0.5;
    expect(words.filter((w) => w.end > seconds && w.start < secondStart)).toEqual([]);
    expect(words.filter((w) => w.start >= secondStart)).toHaveLength(22);
    expect(wordProblems(b.segments)).toEqual([]);
  });
});

describe('word timestamps with a plain export', () => {
  it('is a clear E_OPTIONS error that names the _timestamped variant', async () => {
    const whisper = await loadModel(BASE, { threads: THREADS });
    try {
      expect(whisper.supportsWordTimestamps).toBe(false);
      const err = await whisper.transcribeAll(JFK, { wordTimestamps: true }).catch((e: unknown) => e);
      expect(isWhisperError(err) && err.code).toBe('E_OPTIONS');
      expect(String((err as Error).message)).toContain('onnx-community/whisper-base_timestamped');
      expect(String((err as Error).message)).toContain('"base_timestamped"');
      // everything else still works with the same model
      const r = await whisper.transcribeAll(JFK, { language: 'en' });
      expect(r.segments[0]?.words).toBeUndefined();
    } finally {
      await whisper.dispose();
    }
  });
});

describe('CLI: word timestamps and word-level subtitles', () => {
  function memory(): { stream: NodeJS.WriteStream; text: () => string } {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    });
    return { stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
  }

  /** Runs `whisper-ts transcribe …` in this process (the same command object bin/whisper-ts.js runs). */
  async function transcribe(args: string[]): Promise<{ code: number; stderr: string }> {
    const out = memory();
    const err = memory();
    let code = 0;
    const program = new Command('whisper-ts').exitOverride();
    program.addCommand(
      transcribeCommand({ stdout: out.stream, stderr: err.stream, signal: new AbortController().signal, setExitCode: (c) => (code = c) }),
    );
    try {
      await program.parseAsync(['transcribe', ...args], { from: 'user' });
    } catch (e) {
      if (!(e instanceof CommanderError)) throw e;
      code = 2;
    }
    return { code, stderr: err.text() };
  }

  it('--word-timestamps --max-words-per-line 3 -f all: srt/vtt cues of ≤ 3 words, the words in verbose_json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wts-words-cli-'));
    try {
      const r = await transcribe([JFK, '--model', BASE_TS, '--threads', '2', '--language', 'en', '--word-timestamps', '--max-words-per-line', '3', '-f', 'all', '-o', dir, '--quiet']);
      expect(r.code, r.stderr).toBe(0);
      expect(readdirSync(dir).sort()).toEqual(['jfk.json', 'jfk.srt', 'jfk.tsv', 'jfk.txt', 'jfk.vtt']);
      const json = JSON.parse(readFileSync(join(dir, 'jfk.json'), 'utf8')) as VerboseJson;
      const words = json.words ?? [];
      expect(words).toHaveLength(22);
      expect(Object.keys(words[0] ?? {}).sort()).toEqual(['end', 'probability', 'start', 'word']);
      // as the OpenAI API (and the server) write them: no leading space; each segment lists its own words too, as
      // openai/whisper's JSON does (with Whisper's spaces: they add up to the segment's text)
      expect(words.filter((w) => w.word !== w.word.trim())).toEqual([]);
      expect((json.segments ?? []).flatMap((seg) => (seg.words ?? []).map((w) => ({ ...w, word: w.word.trim() })))).toEqual(words);
      for (const seg of json.segments ?? []) expect((seg.words ?? []).map((w) => w.word).join('')).toBe(seg.text);
      for (const ext of ['srt', 'vtt']) {
        const cues = parseSubtitles(readFileSync(join(dir, `jfk.${ext}`), 'utf8'));
        // as openai/whisper's writers do with --max-words-per-line alone: cues never cross a segment, so each segment's
        // words go in groups of ≤ 3, each cue from its first word's start to its last word's end
        const groups = (json.segments ?? []).flatMap((seg) => {
          const own = seg.words ?? [];
          return Array.from({ length: Math.ceil(own.length / 3) }, (_, k) => own.slice(3 * k, 3 * k + 3));
        });
        expect(groups.flat()).toHaveLength(22);
        expect(cues).toHaveLength(groups.length);
        cues.forEach((c, k) => {
          const group = groups[k] ?? [];
          expect(c.text).toBe(group.map((w) => w.word).join('').trim());
          expect(c.start).toBeCloseTo(group[0]?.start ?? -1, 3);
          expect(c.end).toBeCloseTo(group.at(-1)?.end ?? -1, 3);
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('subtitle flags without --word-timestamps, and words with a plain export, are usage errors', async () => {
    const a = await transcribe([JFK, '--model', BASE_TS, '--max-line-width', '20', '-f', 'srt', '-o', tmpdir(), '--quiet']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('--max-line-width');
    expect(a.stderr).toContain('--word-timestamps');
    const b = await transcribe([JFK, '--model', BASE, '--threads', '2', '--word-timestamps', '--quiet']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('base_timestamped');
  });
});
