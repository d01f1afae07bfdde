import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addOptionFlags, givenOptions } from '../src/cli/options.js';
import { DEFAULTS, loadModel, resolveTranscribeOptions, WhisperError, type TranscribeOptions, type Whisper } from '../src/index.js';
import { JFK, ROOT, TINY_EN } from './helpers/paths.js';

const run = promisify(execFile);
const BIN = join(ROOT, 'bin', 'whisper-ts.js');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env: { ...process.env, HF_HUB_OFFLINE: '1' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** The call options commander parses from transcribe flags (the CLI's own flag table). */
function parseFlags(argv: string[]): Record<string, unknown> {
  const cmd = addOptionFlags(new Command('transcribe').exitOverride(), 'call');
  cmd.parse(argv, { from: 'user' });
  return givenOptions(cmd.opts(), 'call');
}

/** The decoding options of this area, each set away from its default. */
const LIBRARY: Partial<TranscribeOptions> = {
  language: 'zh',
  beamSize: 4,
  patience: 1.5,
  lengthPenalty: 0.6,
  hotwords: '北京 上海',
  initialPrompt: '以下是普通话的句子。',
  carryInitialPrompt: true,
  clipTimestamps: [0, 10.5, 20],
  repetitionPenalty: 1.1,
  noRepeatNgramSize: 3,
  zhScript: 'simplified',
  suppressTokens: [-1, 220],
  suppressBlank: false,
  bestOf: 3,
  seed: 7,
  prefix: '我们',
  maxInitialTimestamp: 0.5,
};
const FLAGS = [
  '--language', 'zh', '--beam-size', '4', '--patience', '1.5', '--length-penalty', '0.6', '--hotwords', '北京 上海',
  '--initial-prompt', '以下是普通话的句子。', '--carry-initial-prompt', '--clip-timestamps', '0,10.5,20',
  '--repetition-penalty', '1.1', '--no-repeat-ngram-size', '3', '--zh-script', 'simplified', '--suppress-tokens', '-1,220',
  '--suppress-blank', 'false', '--best-of', '3', '--seed', '7', '--prefix', '我们', '--max-initial-timestamp', '0.5',
];

describe('decoding options: one table for the library, the CLI and JSON', () => {
  it('the library object, the CLI flags and a JSON options object resolve alike, away from the defaults', () => {
    const fromLibrary = resolveTranscribeOptions(LIBRARY);
    const fromCli = resolveTranscribeOptions(parseFlags(FLAGS));
    const fromJson = resolveTranscribeOptions(JSON.parse(JSON.stringify(LIBRARY)));
    expect(fromCli).toEqual(fromLibrary);
    expect(fromJson).toEqual(fromLibrary);
    for (const key of Object.keys(LIBRARY) as (keyof TranscribeOptions)[]) {
      expect(fromLibrary[key], key).not.toEqual(DEFAULTS[key]);
    }
  });

  it('the defaults: greedy (beamSize 1), openai patience and length penalty, no hotwords, the whole audio, as-is script', () => {
    const o = resolveTranscribeOptions({});
    expect(o).toMatchObject({
      beamSize: 1,
      patience: null,
      lengthPenalty: null,
      hotwords: null,
      carryInitialPrompt: false,
      clipTimestamps: [0],
      repetitionPenalty: 1,
      noRepeatNgramSize: 0,
      zhScript: 'as-is',
    });
  });

  const conflicts: [string, Record<string, unknown>, RegExp][] = [
    ['beam size 0', { beamSize: 0 }, /beamSize \(--beam-size\).*below the minimum 1/],
    ['a negative beam size', { beamSize: -2 }, /beamSize.*below the minimum/],
    ['a fractional beam size', { beamSize: 2.5 }, /beamSize.*integer/],
    ['patience without beam search', { patience: 2 }, /patience.*needs beam search/],
    ['patience that rounds to no candidates', { beamSize: 2, patience: 0.2 }, /patience.*at least 1/],
    ['best_of with temperature 0 only', { bestOf: 3, temperature: [0] }, /bestOf.*temperature > 0/],
    ['beam search without a temperature 0', { beamSize: 5, temperature: [0.5] }, /beamSize.*temperature 0/],
    ['a length penalty above 1', { lengthPenalty: 2 }, /lengthPenalty.*maximum 1/],
    ['carryInitialPrompt without a prompt', { carryInitialPrompt: true }, /carryInitialPrompt.*initialPrompt/],
    ['decreasing clip times', { clipTimestamps: [10, 5] }, /clipTimestamps.*must not decrease/],
    ['clips with the VAD filter', { clipTimestamps: [5, 10], vadFilter: true }, /clipTimestamps.*vadFilter/],
    ['beam search in the batched pipeline', { beamSize: 5, batchSize: 4 }, /beamSize.*batched/],
    ['a repetition penalty of 0', { repetitionPenalty: 0 }, /repetitionPenalty.*> 0/],
    ['a negative n-gram size', { noRepeatNgramSize: -1 }, /noRepeatNgramSize.*minimum 0/],
    ['zhScript on English', { zhScript: 'simplified', language: 'en' }, /zhScript.*language is "en"/],
    ['zhScript when translating', { zhScript: 'traditional', task: 'translate' }, /zhScript.*translate/],
    ['an unknown script', { zhScript: 'cantonese' }, /zhScript.*not one of as-is, simplified, traditional/],
    ["openai's snake_case name", { beam_size: 5 }, /unknown transcribe option "beam_size"/],
    ['a load option given to transcribe', { threads: 2 }, /unknown transcribe option "threads" \(it is a load option: give it to loadModel\)/],
    ['an empty item in a list', { temperature: '0,,0.2' }, /temperature.*empty item/],
  ];
  it.each(conflicts)('%s is an E_OPTIONS error', (_what, options, message) => {
    let error: unknown;
    try {
      resolveTranscribeOptions(options);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(WhisperError);
    expect((error as WhisperError).code).toBe('E_OPTIONS');
    expect((error as WhisperError).message).toMatch(message);
  });

  it("activations: an unknown value, and 'int8' or 'mixed' on float files, are E_OPTIONS errors naming the option", async () => {
    await expect(loadModel(TINY_EN, { activations: 'fp16' as never })).rejects.toMatchObject({
      code: 'E_OPTIONS',
      message: expect.stringMatching(/activations.*not one of auto, float32, mixed, int8/),
    });
    // a folder whose files have fp32 names (links to the q8 files: the check comes before ONNX Runtime reads them)
    const dir = mkdtempSync(join(tmpdir(), 'wts-fp32-names-'));
    for (const f of readdirSync(TINY_EN)) if (f.endsWith('.json') || f.endsWith('.txt')) symlinkSync(join(TINY_EN, f), join(dir, f));
    mkdirSync(join(dir, 'onnx'));
    symlinkSync(join(TINY_EN, 'onnx/encoder_model_quantized.onnx'), join(dir, 'onnx/encoder_model.onnx'));
    symlinkSync(join(TINY_EN, 'onnx/decoder_model_merged_quantized.onnx'), join(dir, 'onnx/decoder_model_merged.onnx'));
    for (const activations of ['int8', 'mixed'] as const) {
      await expect(loadModel(dir, { dtype: 'fp32', activations })).rejects.toMatchObject({
        code: 'E_OPTIONS',
        message: expect.stringMatching(new RegExp(`activations '${activations}'.*fp32 / fp32`)),
      });
    }
    // 'mixed' is about the encoder: a float encoder with an 8-bit decoder refuses it, and 'auto' is float32 there
    symlinkSync(join(TINY_EN, 'onnx/decoder_model_merged_quantized.onnx'), join(dir, 'onnx/decoder_model_merged_quantized.onnx'));
    await expect(loadModel(dir, { encoderDtype: 'fp32', decoderDtype: 'q8', activations: 'mixed' })).rejects.toMatchObject({
      code: 'E_OPTIONS',
      message: expect.stringMatching(/activations 'mixed' applies to an 8-bit encoder.*fp32 \/ q8/),
    });
    const floatEncoder = await loadModel(dir, { encoderDtype: 'fp32', decoderDtype: 'q8', threads: 1 });
    expect(floatEncoder.activations).toBe('float32');
    await floatEncoder.dispose();
    // without graph rewriting only the files' own arithmetic is possible: 'auto' is 'int8', the others refuse
    const raw = await loadModel(TINY_EN, { optimizeDecoder: false, threads: 1 });
    expect(raw.activations).toBe('int8');
    await raw.dispose();
    for (const activations of ['float32', 'mixed'] as const) {
      await expect(loadModel(TINY_EN, { optimizeDecoder: false, activations })).rejects.toMatchObject({
        code: 'E_OPTIONS',
        message: expect.stringMatching(new RegExp(`activations '${activations}' rewrites the 8-bit graphs`)),
      });
    }
  });

  it('zhScript is allowed with Chinese or Cantonese by code or name, and with language detection', () => {
    for (const language of ['zh', 'chinese', 'Mandarin', 'yue', 'cantonese', 'auto']) {
      expect(resolveTranscribeOptions({ zhScript: 'traditional', language }).zhScript).toBe('traditional');
    }
  });
});

describe('the options reach the decoder (whisper-tiny.en, jfk.wav)', () => {
  let whisper: Whisper;
  const rows: number[] = [];
  beforeAll(async () => {
    whisper = await loadModel(TINY_EN, { threads: 2 });
    // count the rows of every decoder step (the real decoder runs; this only records the batch it was given)
    const decode = whisper.model.decode.bind(whisper.model);
    whisper.model.decode = async (tokens, cache, opts) => {
      rows.push(cache.batch);
      return decode(tokens, cache, opts);
    };
  });
  afterAll(async () => whisper.dispose());

  const stepsWith = async (o: Partial<TranscribeOptions>): Promise<{ rows: number[]; text: string }> => {
    rows.length = 0;
    const r = await whisper.transcribeAll(JFK, { language: 'en', temperature: [0], ...o });
    return { rows: [...rows], text: r.text };
  };

  it('beamSize sets the rows of the batch after the one-row prompt step; patience makes the search wait longer', async () => {
    const greedy = await stepsWith({});
    expect(new Set(greedy.rows)).toEqual(new Set([1]));
    const beam = await stepsWith({ beamSize: 3 });
    expect(beam.rows[0]).toBe(1);
    expect(new Set(beam.rows.slice(1))).toEqual(new Set([3]));
    const patient = await stepsWith({ beamSize: 3, patience: 3 });
    expect(patient.rows.length).toBeGreaterThan(beam.rows.length);
  });

  it('best-of sampling runs its candidates as one batch at T > 0', async () => {
    const sampled = await stepsWith({ temperature: [1], bestOf: 4 });
    expect(sampled.rows[0]).toBe(1);
    expect(new Set(sampled.rows.slice(1))).toEqual(new Set([4]));
  });

  it('the CLI and the library give the same output for the same options', async () => {
    if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) throw new Error('run `npm run build` first');
    const americans = whisper.model.tokenizer.encode(' Americans');
    const options = {
      language: 'en',
      beamSize: 4,
      patience: 2,
      lengthPenalty: 0.5,
      suppressTokens: [-1, ...americans],
      repetitionPenalty: 1.05,
      noRepeatNgramSize: 5,
      clipTimestamps: [0, 9],
      initialPrompt: 'Ask not.',
      carryInitialPrompt: true,
      hotwords: 'fellow citizens',
      temperature: [0, 0.4],
    };
    const lib = await whisper.transcribeAll(JFK, JSON.parse(JSON.stringify(options)) as Partial<TranscribeOptions>);
    const out = mkdtempSync(join(tmpdir(), 'wts-decoding-cli-'));
    const r = await cli([
      'transcribe', JFK, '--model', TINY_EN, '--threads', '2', '-f', 'json', '-o', out, '--quiet',
      '--language', 'en', '--beam-size', '4', '--patience', '2', '--length-penalty', '0.5',
      '--suppress-tokens', [-1, ...americans].join(','), '--repetition-penalty', '1.05', '--no-repeat-ngram-size', '5',
      '--clip-timestamps', '0,9', '--initial-prompt', 'Ask not.', '--carry-initial-prompt', '--hotwords', 'fellow citizens',
      '--temperature', '0,0.4',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(readFileSync(join(out, 'jfk.json'), 'utf8')) as { text: string; segments: { tokens: number[]; end: number }[] };
    expect(json.segments.map((s) => s.tokens)).toEqual(lib.segments.map((s) => s.tokens));
    expect(json.text).toBe(lib.text);
    // and the options did something: no " Americans", nothing after the 9-s clip end
    expect(lib.text).not.toContain(' Americans');
    expect(Math.max(...json.segments.map((s) => s.end))).toBeLessThanOrEqual(9);
  });

  it('a blank prefix, prompt or hotwords is none: the same tokens as without them (openai skips an empty prefix)', async () => {
    const plain = await whisper.transcribeAll(JFK, { language: 'en' });
    expect(resolveTranscribeOptions({ prefix: ' ', initialPrompt: '', hotwords: '\t' })).toMatchObject({ prefix: null, initialPrompt: null, hotwords: null });
    for (const blank of [{ prefix: '' }, { prefix: ' ' }, { initialPrompt: '' }, { hotwords: ' ' }]) {
      const r = await whisper.transcribeAll(JFK, { language: 'en', ...blank });
      expect(r.segments.map((s) => s.tokens)).toEqual(plain.segments.map((s) => s.tokens));
    }
  });

  it('flags that would be ignored or contradict each other stop the CLI with the usage exit code', async () => {
    const cases: [string[], RegExp][] = [
      [['-q', '--verbose'], /--quiet and --verbose/],
      [['--vad-threshold', '0.3'], /--vad-\* flags need --vad-filter/],
    ];
    for (const [flags, message] of cases) {
      const r = await cli(['transcribe', JFK, '--model', TINY_EN, ...flags]);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('conflicting flags stop the CLI with the usage exit code and a message naming the flag', async () => {
    const r = await cli(['transcribe', JFK, '--model', TINY_EN, '--patience', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/patience \(--patience\): needs beam search/);
    const z = await cli(['transcribe', JFK, '--model', TINY_EN, '--beam-size', '0']);
    expect(z.code).toBe(2);
    expect(z.stderr).toMatch(/--beam-size/);
  });
});
