/**
 * The one options type of whisper-ts and its one table of defaults. The library's option objects, the CLI flags
 * (cli/ builds them from OPTION_SPECS) and the server's request schema all come from here. Options are resolved and
 * validated once, at the entry, into a frozen object; nothing downstream re-defaults or silently overrides.
 */
import { WhisperError } from './errors.js';
import { DTYPES, isDtype, type Dtype } from './dtypes.js';

export type Task = 'transcribe' | 'translate';
export type Device = 'cpu' | 'cuda';

/** Options of one transcription call. */
export interface TranscribeOptions {
  /** Language code or name; 'auto' (or unset) detects it from the first 30 s. */
  language: string;
  task: Task;
  /** Detect the language once ('first') or for every 30-s window ('window'). */
  languageDetection: 'first' | 'window';
  /** Temperatures tried in turn by the fallback (openai/whisper transcribe.py). A single number: no fallback. */
  temperature: number[];
  compressionRatioThreshold: number | null;
  logprobThreshold: number | null;
  noSpeechThreshold: number | null;
  conditionOnPreviousText: boolean;
  /** Prompt conditioning is dropped after a window decoded above this temperature. */
  promptResetOnTemperature: number;
  initialPrompt: string | null;
  /** Text the first window's output is forced to start with. */
  prefix: string | null;
  withoutTimestamps: boolean;
  /** Latest allowed first timestamp of a window, seconds. */
  maxInitialTimestamp: number;
  /** Token ids to suppress; -1 stands for the model's own non-speech list. */
  suppressTokens: number[];
  suppressBlank: boolean;
  /** Number of candidates sampled at temperature > 0. */
  bestOf: number;
  /** Seed of the sampler at temperature > 0. */
  seed: number;
  /** Upper bound of tokens decoded per 30-s window (openai: n_text_ctx / 2). */
  maxNewTokens: number;
}

/** Options of loading a model. */
export interface LoadOptions {
  /** A model folder, a size name (base, tiny.en, large-v3 …) or a Hub repo id. */
  model: string;
  dtype: Dtype | null;
  encoderDtype: Dtype | null;
  decoderDtype: Dtype | null;
  /** Intra-op threads; 0 lets ONNX Runtime choose. */
  threads: number;
  device: Device;
}

export type AllOptions = TranscribeOptions & LoadOptions;

export const DEFAULTS: Readonly<AllOptions> = Object.freeze({
  model: 'base',
  dtype: null,
  encoderDtype: null,
  decoderDtype: null,
  threads: 0,
  device: 'cpu',
  language: 'auto',
  task: 'transcribe',
  languageDetection: 'first',
  temperature: [0, 0.2, 0.4, 0.6, 0.8, 1.0],
  compressionRatioThreshold: 2.4,
  logprobThreshold: -1.0,
  noSpeechThreshold: 0.6,
  conditionOnPreviousText: true,
  promptResetOnTemperature: 0.5,
  initialPrompt: null,
  prefix: null,
  withoutTimestamps: false,
  maxInitialTimestamp: 1.0,
  suppressTokens: [-1],
  suppressBlank: true,
  bestOf: 5,
  seed: 0,
  maxNewTokens: 224,
} satisfies AllOptions);

type Kind = 'string' | 'number' | 'int' | 'boolean' | 'numbers' | 'ints' | 'nullable-number' | 'nullable-string';

export interface OptionSpec {
  kind: Kind;
  /** CLI flag name without dashes (kebab-case). */
  flag: string;
  description: string;
  choices?: readonly string[];
  min?: number;
  max?: number;
  scope: 'load' | 'call';
}

/** Every option's CLI flag, type and help text; typed so that an option without an entry fails to compile. */
export const OPTION_SPECS: { readonly [K in keyof AllOptions]: OptionSpec } = {
  model: { kind: 'string', flag: 'model', scope: 'load', description: 'model folder, size name (tiny, base, small, …, large-v3) or Hub repo id' },
  dtype: { kind: 'nullable-string', flag: 'dtype', scope: 'load', choices: DTYPES, description: 'weights variant of encoder and decoder (default: best present)' },
  encoderDtype: { kind: 'nullable-string', flag: 'encoder-dtype', scope: 'load', choices: DTYPES, description: 'weights variant of the encoder' },
  decoderDtype: { kind: 'nullable-string', flag: 'decoder-dtype', scope: 'load', choices: DTYPES, description: 'weights variant of the decoder' },
  threads: { kind: 'int', flag: 'threads', scope: 'load', min: 0, max: 1024, description: 'ONNX Runtime intra-op threads (0: automatic)' },
  device: { kind: 'string', flag: 'device', scope: 'load', choices: ['cpu', 'cuda'], description: 'execution provider' },
  language: { kind: 'string', flag: 'language', scope: 'call', description: "spoken language (code or name), or 'auto' to detect it" },
  task: { kind: 'string', flag: 'task', scope: 'call', choices: ['transcribe', 'translate'], description: 'transcribe, or translate to English' },
  languageDetection: { kind: 'string', flag: 'language-detection', scope: 'call', choices: ['first', 'window'], description: "detect the language on the first window or on every window" },
  temperature: { kind: 'numbers', flag: 'temperature', scope: 'call', min: 0, max: 2, description: 'sampling temperature(s), comma-separated; more than one enables fallback' },
  compressionRatioThreshold: { kind: 'nullable-number', flag: 'compression-ratio-threshold', scope: 'call', min: 0, description: 'fall back when the gzip compression ratio is above this' },
  logprobThreshold: { kind: 'nullable-number', flag: 'logprob-threshold', scope: 'call', description: 'fall back when the average log-probability is below this' },
  noSpeechThreshold: { kind: 'nullable-number', flag: 'no-speech-threshold', scope: 'call', min: 0, max: 1, description: 'treat a window as silent when <|nospeech|> is above this and decoding failed the log-prob threshold' },
  conditionOnPreviousText: { kind: 'boolean', flag: 'condition-on-previous-text', scope: 'call', description: 'prompt each window with the text before it' },
  promptResetOnTemperature: { kind: 'number', flag: 'prompt-reset-on-temperature', scope: 'call', min: 0, max: 2, description: 'drop the prompt after a window decoded above this temperature' },
  initialPrompt: { kind: 'nullable-string', flag: 'initial-prompt', scope: 'call', description: 'text to prompt the first window with (spellings, names, style)' },
  prefix: { kind: 'nullable-string', flag: 'prefix', scope: 'call', description: 'text the first window must start with' },
  withoutTimestamps: { kind: 'boolean', flag: 'without-timestamps', scope: 'call', description: 'decode without timestamp tokens (one segment per window)' },
  maxInitialTimestamp: { kind: 'number', flag: 'max-initial-timestamp', scope: 'call', min: 0, max: 30, description: 'latest first timestamp of a window, seconds' },
  suppressTokens: { kind: 'ints', flag: 'suppress-tokens', scope: 'call', description: 'comma-separated token ids to suppress; -1: the model\'s non-speech list' },
  suppressBlank: { kind: 'boolean', flag: 'suppress-blank', scope: 'call', description: 'suppress a blank or end-of-text as the first token' },
  bestOf: { kind: 'int', flag: 'best-of', scope: 'call', min: 1, max: 64, description: 'candidates sampled at temperature > 0' },
  seed: { kind: 'int', flag: 'seed', scope: 'call', min: 0, description: 'seed of the sampler' },
  maxNewTokens: { kind: 'int', flag: 'max-new-tokens', scope: 'call', min: 1, max: 448, description: 'most tokens decoded per 30-s window' },
};

export type ResolvedTranscribeOptions = Readonly<TranscribeOptions>;
export type ResolvedLoadOptions = Readonly<LoadOptions>;

function bad(key: keyof AllOptions, message: string): WhisperError {
  return new WhisperError('E_OPTIONS', `option ${key} (--${OPTION_SPECS[key].flag}): ${message}`);
}

/** Checks one value against its spec and returns it in canonical form. */
export function coerceOption(key: keyof AllOptions, value: unknown): unknown {
  const spec = OPTION_SPECS[key];
  const range = (n: number): number => {
    if (!Number.isFinite(n)) throw bad(key, `${String(value)} is not a finite number`);
    if (spec.min !== undefined && n < spec.min) throw bad(key, `${n} is below the minimum ${spec.min}`);
    if (spec.max !== undefined && n > spec.max) throw bad(key, `${n} is above the maximum ${spec.max}`);
    return n;
  };
  const toNumber = (v: unknown): number => {
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number') throw bad(key, `expected a number, got ${JSON.stringify(v)}`);
    return range(n);
  };
  const toInt = (v: unknown): number => {
    const n = toNumber(v);
    if (!Number.isInteger(n)) throw bad(key, `expected an integer, got ${String(v)}`);
    return n;
  };
  const list = (v: unknown): unknown[] =>
    Array.isArray(v) ? v : typeof v === 'string' ? v.split(',').filter((s) => s.trim() !== '') : [v];
  switch (spec.kind) {
    case 'string':
    case 'nullable-string': {
      if (value === null && spec.kind === 'nullable-string') return null;
      if (typeof value !== 'string') throw bad(key, `expected a string, got ${JSON.stringify(value)}`);
      if (spec.choices && !spec.choices.includes(value)) {
        throw bad(key, `"${value}" is not one of ${spec.choices.join(', ')}`);
      }
      return value;
    }
    case 'number':
      return toNumber(value);
    case 'nullable-number':
      return value === null || value === 'none' ? null : toNumber(value);
    case 'int':
      return toInt(value);
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (value === 'true' || value === '1' || value === 'True') return true;
      if (value === 'false' || value === '0' || value === 'False') return false;
      throw bad(key, `expected true or false, got ${JSON.stringify(value)}`);
    case 'numbers': {
      const items = list(value).map(toNumber);
      if (items.length === 0) throw bad(key, 'expected at least one number');
      return items;
    }
    case 'ints':
      return list(value).map(toInt);
  }
}

function resolve<T extends object>(keys: readonly (keyof AllOptions)[], input: unknown, what: string): T {
  if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
    throw new WhisperError('E_OPTIONS', `${what} must be an object`);
  }
  const given = (input ?? {}) as Record<string, unknown>;
  const allowed = new Set<string>(keys);
  for (const k of Object.keys(given)) {
    if (!allowed.has(k)) {
      const hint = Object.hasOwn(OPTION_SPECS, k) ? ' (it belongs to the other option group)' : '';
      throw new WhisperError('E_OPTIONS', `unknown ${what} "${k}"${hint}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = given[k];
    const value = v === undefined ? DEFAULTS[k] : coerceOption(k, typeof v === 'number' && OPTION_SPECS[k].kind === 'numbers' ? [v] : v);
    out[k] = Array.isArray(value) ? Object.freeze([...(value as unknown[])]) : value;
  }
  return out as T;
}

export const TRANSCRIBE_KEYS = (Object.keys(OPTION_SPECS) as (keyof AllOptions)[]).filter(
  (k) => OPTION_SPECS[k].scope === 'call',
);
export const LOAD_KEYS = (Object.keys(OPTION_SPECS) as (keyof AllOptions)[]).filter(
  (k) => OPTION_SPECS[k].scope === 'load',
);

/** Validates a transcription options object (unknown keys and bad values throw E_OPTIONS) and fills defaults. */
export function resolveTranscribeOptions(input?: unknown): ResolvedTranscribeOptions {
  const o = resolve<TranscribeOptions>(TRANSCRIBE_KEYS, input, 'transcribe option');
  if (o.temperature.some((t) => t < 0)) throw bad('temperature', 'temperatures must be ≥ 0');
  return Object.freeze(o);
}

export function resolveLoadOptions(input?: unknown): ResolvedLoadOptions {
  const o = resolve<LoadOptions>(LOAD_KEYS, input, 'load option');
  for (const k of ['dtype', 'encoderDtype', 'decoderDtype'] as const) {
    const v = o[k];
    if (v !== null && !isDtype(v)) throw bad(k, `unknown dtype ${v}`);
  }
  return Object.freeze(o);
}
