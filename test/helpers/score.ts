import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, parse } from 'node:path';
import { PYTHON, SHARED } from './paths.js';

/**
 * Scores hypotheses with the reference scorer (../shared/tools/score/score.py: openai/whisper's normalisers + jiwer,
 * Mandarin as CER after OpenCC t2s), exactly as the model README's figures were scored.
 */
export function score(setDir: string, hyps: Map<string, string>, lang: string): number {
  const dir = mkdtempSync(join(tmpdir(), 'wts-hyp-'));
  for (const [file, text] of hyps) writeFileSync(join(dir, parse(file).name + '.txt'), text);
  const out = execFileSync(PYTHON, [join(SHARED, 'tools', 'score', 'score.py'), setDir, dir, lang, '--ext', 'txt'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const m = /^(wer|cer) ([0-9.]+) files (\d+) missing (\d+)/m.exec(out);
  if (!m) throw new Error(`unexpected scorer output: ${out}`);
  if (m[4] !== '0') throw new Error(`scorer: ${m[4]} hypotheses missing`);
  return Number(m[2]);
}
