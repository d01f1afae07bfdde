import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Whisper } from '../src/index.js';
import { BASE, BASE_TS, EVAL, PYTHON, readTranscripts } from './helpers/paths.js';
import { score } from './helpers/score.js';

const THREADS = 2;

/** Runs Python from the reference venv (OpenCC, jiwer, whisper-normalizer) on a JSON value and parses its JSON answer. */
function python<T>(code: string, input: unknown): T {
  const out = execFileSync(PYTHON, ['-c', code], { input: JSON.stringify(input), encoding: 'utf8' });
  return JSON.parse(out) as T;
}

/** The characters of each text that OpenCC's `config` (the Python OpenCC, not the port the engine uses) would change. */
function changedBy(config: 't2s' | 's2t', texts: string[]): string[] {
  return python<string[]>(
    `import json, sys, opencc
cc = opencc.OpenCC(${JSON.stringify(config)})
print(json.dumps(sorted({c for t in json.load(sys.stdin) for c in t if cc.convert(c) != c})))`,
    texts,
  );
}

/** Mandarin CER as the reference scorer computes it (BasicTextNormalizer, spaces removed) but without t2s. */
function cerWithoutConversion(pairs: { ref: string; hyp: string }[]): number {
  return python<number>(
    `import json, sys, jiwer
from whisper_normalizer.basic import BasicTextNormalizer
n = BasicTextNormalizer()
pairs = json.load(sys.stdin)
print(json.dumps(jiwer.cer(["".join(n(p["ref"]).split()) for p in pairs], ["".join(n(p["hyp"]).split()) for p in pairs])))`,
    pairs,
  );
}

describe('beam search accuracy (whisper-base)', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    whisper = await loadModel(BASE, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  it('WER with beam 5 on librispeech_test_other (50 files) is within the README bound (≤ 13.3 %)', async () => {
    const set = 'librispeech_test_other';
    const hyps = new Map<string, string>();
    for (const { file } of readTranscripts(set)) {
      const r = await whisper.transcribeAll(join(EVAL, set, file), {
        language: 'en',
        withoutTimestamps: true,
        temperature: [0],
        beamSize: 5,
      });
      hyps.set(file, r.text);
    }
    const wer = score(join(EVAL, set), hyps, 'en');
    console.log(`whisper-base librispeech_test_other beam 5 WER ${(wer * 100).toFixed(2)} % (reference 12.27 %, greedy 13.44 %)`);
    expect(wer).toBeLessThanOrEqual(0.133);
  }, 1_200_000);
});

describe('Chinese output script (whisper-base, aishell_zh, language zh)', () => {
  let whisper: Whisper;
  const set = 'aishell_zh';
  const files = readTranscripts(set);
  beforeAll(async () => {
    whisper = await loadModel(BASE, { threads: THREADS });
  });
  afterAll(async () => whisper.dispose());

  async function transcribeSet(zhScript: 'simplified' | 'traditional'): Promise<Map<string, string>> {
    const hyps = new Map<string, string>();
    // greedy without timestamps, as the reference's CER was measured (the script is converted after decoding)
    for (const { file } of files) {
      const r = await whisper.transcribeAll(join(EVAL, set, file), { language: 'zh', zhScript, withoutTimestamps: true, temperature: [0] });
      hyps.set(file, r.text);
    }
    return hyps;
  }

  it('simplified: no Traditional-only character (none that OpenCC t2s changes); CER ≤ 14.2 % without any conversion', async () => {
    const hyps = await transcribeSet('simplified');
    expect(changedBy('t2s', [...hyps.values()])).toEqual([]);
    const cer = cerWithoutConversion(files.map(({ file, text }) => ({ ref: text, hyp: hyps.get(file) ?? '' })));
    // the reference scorer converts with t2s itself; on simplified output that conversion changes nothing
    const scorerCer = score(join(EVAL, set), hyps, 'zh');
    // also the greedy CER bound of the engine (README: ≤ 14.2 %, the reference's 13.16 % plus a margin)
    console.log(`whisper-base aishell_zh greedy CER ${(scorerCer * 100).toFixed(2)} % (reference 13.16 %), ${(cer * 100).toFixed(2)} % unconverted (simplified output)`);
    expect(cer).toBeLessThanOrEqual(0.142);
    expect(scorerCer).toBeLessThanOrEqual(0.142);
    expect(cer).toBeCloseTo(scorerCer, 4);
  }, 600_000);

  it('traditional: no Simplified-only character (none that OpenCC s2t changes), the same text after t2s', async () => {
    const hyps = await transcribeSet('traditional');
    expect(changedBy('s2t', [...hyps.values()])).toEqual([]);
    const cer = score(join(EVAL, set), hyps, 'zh');
    expect(cer).toBeLessThanOrEqual(0.142);
  }, 600_000);

  it('the script applies to word text too (timestamped export): words still make up the segment text', async () => {
    const ts = await loadModel(BASE_TS, { threads: THREADS });
    try {
      // as the model writes them, one file comes out Traditional ("而是因為其他國家…"), the other Simplified
      // ("其中有两个是内音的指标")
      const cases = [
        { file: 'BAC009S0150W0132.wav', zhScript: 'simplified', asIs: 't2s' },
        { file: 'BAC009S0150W0121.wav', zhScript: 'traditional', asIs: 's2t' },
      ] as const;
      for (const { file, zhScript, asIs } of cases) {
        const path = join(EVAL, set, file);
        const plain = await ts.transcribeAll(path, { language: 'zh', wordTimestamps: true });
        expect(changedBy(asIs, [plain.text]).length, `${file} as-is`).toBeGreaterThan(0);
        const r = await ts.transcribeAll(path, { language: 'zh', zhScript, wordTimestamps: true });
        expect(r.segments.length).toBeGreaterThan(0);
        for (const s of r.segments) {
          expect(s.words?.length).toBeGreaterThan(0);
          expect(s.words?.map((w) => w.word).join('')).toBe(s.text);
        }
        const words = r.segments.flatMap((s) => s.words ?? []).map((w) => w.word);
        expect(changedBy(asIs, words), `${file} ${zhScript}`).toEqual([]);
        // the conversion changes characters, never times
        expect(r.segments.flatMap((s) => s.words ?? []).map((w) => [w.start, w.end])).toEqual(
          plain.segments.flatMap((s) => s.words ?? []).map((w) => [w.start, w.end]),
        );
      }
    } finally {
      await ts.dispose();
    }
  }, 300_000);
});
