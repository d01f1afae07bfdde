import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** ../shared beside the repository (CI: a clean clone with ../shared next to it). */
export const SHARED = process.env.WHISPER_TS_SHARED ?? resolve(ROOT, '../shared');
export const MODELS = join(SHARED, 'models');
export const EVAL = join(SHARED, 'eval');
export const BASE = join(MODELS, 'whisper-base');
export const BASE_TS = join(MODELS, 'whisper-base_timestamped');
export const TINY_EN = join(MODELS, 'whisper-tiny.en');
export const JFK = join(EVAL, 'jfk', 'jfk.wav');

export interface ReferenceRecord {
  set: string;
  file: string;
  reference: string;
  seconds: number;
  greedy?: { tokens: number[]; text: string };
  timestamps?: { tokens: number[]; text: string };
  beam5?: { tokens: number[]; text: string };
  langid?: { top: string; p_top: number; p_true?: number };
  mode?: string;
  text?: string;
}

export function readReference(modelDir: string): ReferenceRecord[] {
  return readFileSync(join(modelDir, 'reference', 'outputs.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as ReferenceRecord);
}

export function readTranscripts(set: string): { file: string; text: string }[] {
  return readFileSync(join(EVAL, set, 'transcripts.tsv'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [file, ...rest] = l.split('\t');
      return { file: file ?? '', text: rest.join('\t') };
    });
}

export const PYTHON = join(ROOT, '.venv', 'bin', 'python');
export const hasPython = (): boolean => existsSync(PYTHON);
