import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type TranscribeOptions, type Whisper } from '../src/index.js';
import { BASE, EVAL, JFK, TINY_EN } from './helpers/paths.js';

const THREADS = 2;
const OTHER = join(EVAL, 'librispeech_test_other');
const LONGFORM = join(EVAL, 'longform_en', 'librispeech_test_other_3ch_concat.flac');
/** Deterministic decoding (no fallback) so that each test sees one decode of each window. */
const GREEDY: Partial<TranscribeOptions> = { language: 'en', temperature: [0] };

describe('prompts, prefix and hotwords steer the decoding (whisper-base, real test-other files)', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    whisper = await loadModel(BASE, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  it('an initial prompt with a rare spelling makes that spelling appear', async () => {
    // "… the traditional father of Ephraim and Manasseh …": alone, base writes "Ephraim and Menace"
    const file = join(OTHER, '2609-156975-0007.flac');
    const plain = await whisper.transcribeAll(file, GREEDY);
    expect(plain.text).not.toContain('Manasseh');
    const prompted = await whisper.transcribeAll(file, { ...GREEDY, initialPrompt: 'Ephraim and Manasseh.' });
    expect(prompted.text).toContain('Ephraim and Manasseh');
  });

  it('hotwords make the hinted word appear, except on a window with a prefix (faster-whisper)', async () => {
    // "Then said the eunuch, art thou he …": alone, base writes "the Unic"
    const file = join(OTHER, '2033-164914-0002.flac');
    const plain = await whisper.transcribeAll(file, GREEDY);
    expect(plain.text.toLowerCase()).not.toContain('eunuch');
    const hinted = await whisper.transcribeAll(file, { ...GREEDY, hotwords: 'eunuch' });
    expect(hinted.text).toContain('eunuch');
    const withPrefix = await whisper.transcribeAll(file, { ...GREEDY, hotwords: 'eunuch', prefix: 'Then said the' });
    const prefixOnly = await whisper.transcribeAll(file, { ...GREEDY, prefix: 'Then said the' });
    expect(withPrefix.segments.flatMap((s) => s.tokens)).toEqual(prefixOnly.segments.flatMap((s) => s.tokens));
  });

  it('a prefix is what the window starts with (after <|0.00|>), and the model continues from it', async () => {
    // "Mister Fish is the squire of dames …": alone, base writes "Mr. Fish is a squire of dames"
    const file = join(OTHER, '3080-5032-0009.flac');
    const plain = await whisper.transcribeAll(file, GREEDY);
    expect(plain.text).toMatch(/^ Mr\. Fish is a squire/);
    const r = await whisper.transcribeAll(file, { ...GREEDY, prefix: 'Mister Fish' });
    const tk = whisper.model.tokenizer;
    const prefixTokens = tk.encode(' Mister Fish');
    expect(r.segments[0]?.tokens.slice(0, prefixTokens.length + 1)).toEqual([tk.special.timestampBegin, ...prefixTokens]);
    expect(r.segments[0]?.start).toBe(0);
    expect(r.text).toMatch(/^ Mister Fish is a squire of dames/);
  });

  it('clipTimestamps decodes only the clip; carryInitialPrompt keeps the prompt for every window', async () => {
    // 130–200 s of longform_en: "the Egyptian background of the bondage … King Merneptah … Ephraim and Manasseh …"
    const clip = { ...GREEDY, clipTimestamps: [130, 200], conditionOnPreviousText: false };
    const initialPrompt = 'King Merneptah, Ephraim and Manasseh.';
    const once = await whisper.transcribeAll(LONGFORM, { ...clip, initialPrompt });
    const carried = await whisper.transcribeAll(LONGFORM, { ...clip, initialPrompt, carryInitialPrompt: true });
    for (const r of [once, carried]) {
      expect(r.segments[0]?.start).toBe(130);
      for (const s of r.segments) {
        expect(s.start).toBeGreaterThanOrEqual(130);
        expect(s.end).toBeLessThanOrEqual(200);
      }
      expect(r.text).toContain('Egyptian background');
      // the utterances before the clip ("… patience is genius", "… as we understand it, Lincoln") are not there
      expect(r.text.toLowerCase()).not.toMatch(/genius|lincoln/);
      // the first window has the prompt either way
      expect(r.text).toContain('King Merneptah');
    }
    // "Manasseh" is spoken in the second window (170–190 s): only the carried prompt reaches it
    const second = (r: typeof once): string => r.segments.filter((s) => s.seek > 13000).map((s) => s.text).join('');
    expect(second(once)).not.toContain('Manasseh');
    expect(second(carried)).toContain('Ephraim and Manasseh');
  });
});

describe('suppressTokens (whisper-tiny.en, jfk.wav)', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    whisper = await loadModel(TINY_EN, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  it('the named tokens never appear, and the model spells around them', async () => {
    const americans = whisper.model.tokenizer.encode(' Americans');
    const plain = await whisper.transcribeAll(JFK, { language: 'en' });
    expect(plain.segments.flatMap((s) => s.tokens)).toEqual(expect.arrayContaining(americans));
    const r = await whisper.transcribeAll(JFK, { language: 'en', suppressTokens: [-1, ...americans] });
    const tokens = r.segments.flatMap((s) => s.tokens);
    for (const t of americans) expect(tokens).not.toContain(t);
    expect(r.text).not.toContain(' Americans');
    expect(r.text.toLowerCase()).toContain('ask not what your country can do for you');
  });
});
