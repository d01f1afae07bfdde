import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAudio } from '../src/audio/index.js';
import { decodeWindow, detectLanguage } from '../src/decoding/decode.js';
import { WhisperModel } from '../src/model/whisper-model.js';
import { melWindow, logMelSpectrogram, N_SAMPLES } from '../src/audio/index.js';
import { ort } from '../src/runtime/session.js';
import { loadModel, type Whisper } from '../src/index.js';
import { BASE, BASE_TS, EVAL, JFK, TINY_EN, readReference, readTranscripts } from './helpers/paths.js';
import { score } from './helpers/score.js';

const THREADS = 2;

async function firstWindowTokens(model: WhisperModel, file: string, withoutTimestamps: boolean, language: string | null) {
  const audio = await decodeAudio(file);
  const mel = logMelSpectrogram(audio, model.config.nMels, N_SAMPLES);
  const hidden = await model.encode(melWindow(mel, 0), 1);
  const r = await decodeWindow(
    model,
    hidden,
    {
      language,
      task: 'transcribe',
      prompt: [],
      prefix: [],
      withoutTimestamps,
      temperature: 0,
      bestOf: 1,
      suppressTokens: [-1],
      suppressBlank: true,
      maxInitialTimestamp: 1,
      maxNewTokens: 224,
      seed: 0,
    },
    ort,
  );
  return r.tokens;
}

describe.each([
  ['whisper-base', BASE, 'en'],
  ['whisper-tiny.en', TINY_EN, null],
] as const)('golden tokens on jfk.wav: %s', (_name, dir, language) => {
  let model: WhisperModel;
  beforeAll(async () => {
    // the reference ran these q8 files as they are (int8 activations, no rewrite)
    model = await WhisperModel.load(dir, { threads: THREADS, activations: 'int8' });
  });
  afterAll(async () => model.dispose());
  const ref = readReference(dir).find((r) => r.file === 'jfk.wav');

  it('greedy without timestamps equals the reference exactly', async () => {
    expect(await firstWindowTokens(model, JFK, true, language)).toEqual(ref?.greedy?.tokens);
  });
  it('greedy with timestamps equals the reference exactly', async () => {
    expect(await firstWindowTokens(model, JFK, false, language)).toEqual(ref?.timestamps?.tokens);
  });
});

describe('whisper-base accuracy and languages', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    whisper = await loadModel(BASE, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  async function transcribeSet(set: string, language: string): Promise<Map<string, string>> {
    const hyps = new Map<string, string>();
    for (const { file } of readTranscripts(set)) {
      const r = await whisper.transcribeAll(join(EVAL, set, file), {
        language,
        withoutTimestamps: true,
        temperature: [0],
      });
      hyps.set(file, r.text);
    }
    return hyps;
  }

  it('WER on librispeech_test_other (50 files, greedy) is within the README bound (≤ 14.5 %)', async () => {
    const wer = score(join(EVAL, 'librispeech_test_other'), await transcribeSet('librispeech_test_other', 'en'), 'en');
    console.log(`whisper-base librispeech_test_other greedy WER ${(wer * 100).toFixed(2)} % (reference 13.44 %)`);
    expect(wer).toBeLessThanOrEqual(0.145);
  });

  // CER on aishell_zh (15 files, greedy) within the README bound (≤ 14.2 %): decoding.accuracy.test.ts, whose
  // simplified-script run is this greedy decoding (the script is converted after it) scored by the reference scorer

  it("detects the reference's top language on every FLEURS and AISHELL file", async () => {
    const refs = readReference(BASE).filter((r) => r.set.startsWith('fleurs_') || r.set === 'aishell_zh');
    expect(refs.length).toBe(40);
    const model = whisper.model;
    for (const r of refs) {
      const audio = await decodeAudio(join(EVAL, r.set, r.file));
      const mel = logMelSpectrogram(audio, model.config.nMels, N_SAMPLES);
      const d = await detectLanguage(model, await model.encode(melWindow(mel, 0), 1));
      expect(d.language, `${r.set}/${r.file}`).toBe(r.langid?.top);
      expect(Math.abs(d.probability - (r.langid?.p_top ?? 0)), `${r.set}/${r.file} p`).toBeLessThan(0.05);
    }
  });

  it('language "auto" reports the detected language and its probability in the info', async () => {
    const { info } = await whisper.transcribe(join(EVAL, 'fleurs_de', 'fleurs-de-000.ogg'));
    expect(info.language).toBe('de');
    expect(info.languageProbability).toBeGreaterThan(0.5);
    expect(info.allLanguageProbs?.de).toBe(info.languageProbability);
  });

  it('--task translate turns German FLEURS speech into English text', async () => {
    const english = new Set(['the', 'a', 'an', 'of', 'to', 'and', 'is', 'in', 'you', 'that', 'on', 'for', 'it', 'was', 'with', 'as', 'are', 'be']);
    const german = new Set(['die', 'der', 'und', 'das', 'sie', 'ist', 'nicht', 'auf', 'den', 'zu', 'ein', 'eine', 'mit', 'auch']);
    const words = (t: string) => t.toLowerCase().match(/\p{L}+/gu) ?? [];
    for (const { file } of readTranscripts('fleurs_de')) {
      const path = join(EVAL, 'fleurs_de', file);
      const tr = await whisper.transcribeAll(path, { task: 'translate', language: 'de', temperature: [0] });
      const w = words(tr.text);
      expect(w.length, file).toBeGreaterThan(5);
      const en = w.filter((x) => english.has(x)).length;
      const de = w.filter((x) => german.has(x)).length;
      expect(en, `${file}: ${tr.text}`).toBeGreaterThan(de);
      expect(en / w.length, `${file}: ${tr.text}`).toBeGreaterThan(0.1);
    }
  });
});

describe('long-form: longform_en (4.85 min) with whisper-base', () => {
  const file = join(EVAL, 'longform_en', 'librispeech_test_other_3ch_concat.flac');
  let whisper: Whisper;
  beforeAll(async () => {
    whisper = await loadModel(BASE, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  const pieces = (): number[] =>
    readFileSync(join(EVAL, 'longform_en', 'segments.tsv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split('\t')[0]));

  async function run(options: Parameters<Whisper['transcribe']>[1], by: Whisper = whisper) {
    const progress: number[] = [];
    const { info, segments } = await by.transcribe(file, options, { onProgress: (p) => progress.push(p.done) });
    const got = [];
    for await (const s of segments) got.push(s);
    expect(info.duration).toBeCloseTo(290.9, 0);
    let prevEnd = 0;
    for (const s of got) {
      expect(s.start).toBeGreaterThanOrEqual(prevEnd - 1e-6);
      expect(s.end).toBeGreaterThan(s.start);
      expect(s.end).toBeLessThanOrEqual(info.duration + 1e-6);
      prevEnd = s.end;
    }
    expect(got.map((s) => s.id)).toEqual(got.map((_, i) => i));
    expect(progress.at(-1)).toBe(info.duration); // 100 %, though the seek counts whole 10-ms frames
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    const wer = score(join(EVAL, 'longform_en'), new Map([[basename(file), got.map((s) => s.text).join('')]]), 'en');
    return { got, wer };
  }

  it("openai's defaults (temperature fallback, conditioning): monotonic segments inside the audio, pieces near segment starts, WER ≤ 14.5 %", async () => {
    const { got, wer } = await run({ language: 'en' });
    // Issue 3 asks every piece to have a segment starting within 1 s. With the model's own timestamps: 28 of 30 (mixed
    // activations, the default here; float32: 27, beam 5: 29); the shipped files' int8 activations give 19. The misses are segments that
    // start where the previous one ends, 1.2-1.9 s before the piece (the model gives the pause to the next segment);
    // word timestamps move each start to its first word (below: all 30).
    const near = pieces().filter((start) => got.some((s) => Math.abs(s.start - start) <= 1.0));
    console.log(`pieces with a segment starting within 1 s: ${near.length} of ${pieces().length}`);
    expect(near.length / pieces().length).toBeGreaterThanOrEqual(0.85);
    // the bound; faster-whisper int8 greedy on the same weights: 13.37 %; measured here 13.06 % (mixed and float32)
    console.log(`whisper-base longform_en, openai defaults: WER ${(wer * 100).toFixed(2)} % (transformers sequential: 17.11 %)`);
    expect(wer).toBeLessThanOrEqual(0.145);
  });

  it('with word timestamps (the timestamped twin): every piece has a segment starting within 1 s, words inside segments', async () => {
    const timestamped = await loadModel(BASE_TS, { threads: THREADS });
    try {
      const { got, wer } = await run({ language: 'en', wordTimestamps: true }, timestamped);
      // openai/whisper timing.py add_word_timestamps: a segment starts at its first word (measured 30 of 30, 12.75 %)
      const missed = pieces().filter((start) => !got.some((s) => Math.abs(s.start - start) <= 1.0));
      expect(missed).toEqual([]);
      for (const s of got) {
        expect(s.words?.length, s.text).toBeGreaterThan(0);
        expect(s.words?.map((w) => w.word).join('')).toBe(s.text);
        for (const w of s.words ?? []) {
          expect(w.start).toBeGreaterThanOrEqual(s.start - 1e-6);
          expect(w.end).toBeLessThanOrEqual(s.end + 1e-6);
        }
      }
      console.log(`whisper-base longform_en with word timestamps: WER ${(wer * 100).toFixed(2)} %`);
      expect(wer).toBeLessThanOrEqual(0.145);
    } finally {
      await timestamped.dispose();
    }
  });
});
