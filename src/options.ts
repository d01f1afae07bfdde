/**
 * The one options type of whisper-ts and its one table of defaults. The library's option objects, the CLI flags
 * (cli/ builds them from OPTION_SPECS) and the server's request schema all come from here. Options are resolved and
 * validated once, at the entry, into a frozen object; nothing downstream re-defaults or silently overrides.
 */
import { WhisperError } from './errors.js';
import { DTYPES, isDtype, type Dtype } from './dtypes.js';
import { toLanguageCode } from './languages.js';
import { VAD_DEFAULTS, resolveVadOptions, type VadOptions } from './vad/options.js';

export type Task = 'transcribe' | 'translate';
export type Device = 'cpu' | 'cuda';
export type ZhScript = 'as-is' | 'simplified' | 'traditional';

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
  /**
   * Beams of the beam search at temperature 0 (openai/whisper decoding.py BeamSearchDecoder); 1 is greedy. The
   * default is 1, as openai/whisper's `transcribe()` and whisper.cpp's library; openai's CLI and faster-whisper use 5
   * (more accurate, slower: see bench/beam.mjs).
   */
  beamSize: number;
  /** Beam search patience: stop once round(beamSize × patience) sequences finished; null is 1 (openai). */
  patience: number | null;
  /** Ranking length penalty: null divides the summed log-probability by the length, else by ((5 + length) / 6) ** it. */
  lengthPenalty: number | null;
  /** Hint words put in every window's prompt before the previous text, unless a prefix is given (faster-whisper). */
  hotwords: string | null;
  /** Keep the initial prompt in front of every window's prompt (openai/whisper transcribe.py carry_initial_prompt). */
  carryInitialPrompt: boolean;
  /** Clips to transcribe, seconds: start,end,start,end,… (the last end defaults to the end of the audio). */
  clipTimestamps: number[];
  /** Penalty on the scores of tokens already in a window's output (CTranslate2, faster-whisper); 1: none. */
  repetitionPenalty: number;
  /** No n-gram of this size repeats within a window's output (CTranslate2, faster-whisper); 0: off. */
  noRepeatNgramSize: number;
  /**
   * Script of Chinese output (language zh or yue), converted with OpenCC: 'simplified', 'traditional' (Taiwan
   * standard), or 'as-is' (what the model wrote: it mixes both).
   */
  zhScript: ZhScript;
  /** Seed of the sampler at temperature > 0. */
  seed: number;
  /** Upper bound of tokens decoded per 30-s window (openai: n_text_ctx / 2). */
  maxNewTokens: number;
  /**
   * Cut out non-speech with Silero VAD before decoding (faster-whisper's vad_filter); every time stays in the original
   * audio. On by default when `batchSize` > 1 (the batched pipeline cuts its chunks at speech pauses).
   */
  vadFilter: boolean;
  /**
   * VAD parameters laid over the mode's defaults: `VAD_DEFAULTS` for the sequential loop, `VAD_BATCHED_DEFAULTS`
   * when `batchSize` > 1 (as faster-whisper's WhisperModel.transcribe and BatchedInferencePipeline.transcribe).
   */
  vadOptions: Readonly<Partial<VadOptions>>;
  /**
   * Chunks of ≤ 30 s decoded together. 1: openai's sequential seek loop. > 1: the batched pipeline (faster-whisper's
   * BatchedInferencePipeline): speech chunks cut at pauses, decoded side by side as streams of consecutive chunks, so
   * a chunk is prompted only by the one before it in its stream (conditionOnPreviousText), and there is no `prefix`.
   */
  batchSize: number;
  /**
   * Word-level timestamps from the cross-attention of the alignment heads (openai/whisper timing.py). Needs a decoder
   * that outputs cross-attentions: the `_timestamped` exports (e.g. onnx-community/whisper-base_timestamped).
   */
  wordTimestamps: boolean;
  /** With word timestamps: punctuation marks merged into the word after them. */
  prependPunctuations: string;
  /** With word timestamps: punctuation marks merged into the word before them. */
  appendPunctuations: string;
  /**
   * With word timestamps: skip silent periods longer than this (seconds) when a possible hallucination is detected
   * (openai/whisper transcribe.py). null: off.
   */
  hallucinationSilenceThreshold: number | null;
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
  /**
   * Batch the decoder across concurrent calls on this model: greedy windows of calls running at the same time share
   * decoder runs (a server's requests). Off: each call decodes alone, and its output does not depend on other calls.
   */
  batchConcurrentCalls: boolean;
  /**
   * How the 8-bit files (q8, int8, uint8: weights and activations quantized at run time, one scale per tensor)
   * compute. `float32`: the weights are dequantized once at load and every matrix product runs on float activations
   * (the weights stay the file's 8-bit values; long-form WER of base 15.86 → 13.06 %; more memory). `mixed`: the
   * encoder's products on 8-bit activations quantized per row (one scale per audio frame, not per tensor; its last
   * layer float: a 30-s window 25 % faster for base), the decoder's prompt step as `float32` and (on the CPU) its
   * cached steps on int8 activations quantized per block of 128 inputs (a step of base 7–8 → 5 ms); accuracy within
   * noise of `float32`.
   * `int8`: the files' own dynamic int8 activations everywhere (their reference arithmetic, least memory).
   * `auto`: `mixed` on x86 CPUs with VNNI or AMX, else `float32` (`int8` when graph rewriting is off). Other dtypes are
   * float already: `int8` and `mixed` with them throw.
   */
  activations: Activations;
}

/**
 * Every key optional, and `undefined` taken as "the default" (so a caller's optional values pass through under
 * `exactOptionalPropertyTypes`).
 */
export type OptionalInput<T> = { [K in keyof T]?: T[K] | undefined };

/** The per-call options a caller passes: any subset; `temperature` also as one number (no fallback). */
export type TranscribeOptionsInput = OptionalInput<Omit<TranscribeOptions, 'temperature'>> & {
  temperature?: number | number[] | undefined;
};

export const ACTIVATIONS = ['auto', 'float32', 'mixed', 'int8'] as const;
export type Activations = (typeof ACTIVATIONS)[number];

export type AllOptions = TranscribeOptions & LoadOptions;

/** The defaults as the table exports them: read-only to the last array (changing them would change every later call). */
export type Defaults = { readonly [K in keyof AllOptions]: AllOptions[K] extends (infer U)[] ? readonly U[] : AllOptions[K] };

export const DEFAULTS: Defaults = deepFreeze({
  model: 'base',
  dtype: null,
  encoderDtype: null,
  decoderDtype: null,
  threads: 0,
  device: 'cpu',
  batchConcurrentCalls: false,
  activations: 'auto',
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
  // greedy, as openai/whisper's transcribe() and whisper.cpp's library: beam 5 (openai's CLI, faster-whisper) is about
  // a point of WER better on test-other but runs 5 rows per step (bench/beam.mjs); --beam-size 5 asks for it
  beamSize: 1,
  patience: null,
  lengthPenalty: null,
  hotwords: null,
  carryInitialPrompt: false,
  clipTimestamps: [0],
  repetitionPenalty: 1,
  noRepeatNgramSize: 0,
  zhScript: 'as-is',
  seed: 0,
  maxNewTokens: 224,
  vadFilter: false,
  vadOptions: Object.freeze({}),
  batchSize: 1,
  wordTimestamps: false,
  prependPunctuations: '"\'“¿([{-',
  appendPunctuations: '"\'.。,，!！?？:：”)]}、',
  hallucinationSilenceThreshold: null,
} satisfies AllOptions);

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (typeof v === 'object' && v !== null) Object.freeze(v);
  return Object.freeze(o);
}

type Kind =
  | 'string'
  | 'number'
  | 'int'
  | 'boolean'
  | 'numbers'
  | 'ints'
  | 'nullable-number'
  | 'nullable-string'
  | 'object';

export interface OptionSpec {
  kind: Kind;
  /** CLI flag name without dashes (kebab-case). */
  flag: string;
  description: string;
  choices?: readonly string[];
  min?: number;
  max?: number;
  scope: 'load' | 'call';
  /** Kind `object`: the fields it may hold, each with its own flag (the CLI adds one flag per field). */
  fields?: Readonly<Record<string, OptionSpec>>;
  /** Default shown in help where the option's DEFAULTS entry does not say it (fields of an object). */
  shownDefault?: string;
}

const VAD_FIELD_SPECS: { readonly [K in keyof VadOptions]: OptionSpec } = {
  threshold: { kind: 'number', flag: 'vad-threshold', scope: 'call', min: 0, max: 1, shownDefault: String(VAD_DEFAULTS.threshold), description: 'VAD: speech probability at or above which a 32 ms window is speech' },
  negThreshold: { kind: 'nullable-number', flag: 'vad-neg-threshold', scope: 'call', min: 0, max: 1, shownDefault: 'threshold - 0.15', description: 'VAD: probability below which a window ends speech' },
  minSpeechDurationMs: { kind: 'number', flag: 'vad-min-speech-duration-ms', scope: 'call', min: 0, shownDefault: String(VAD_DEFAULTS.minSpeechDurationMs), description: 'VAD: speech spans shorter than this are dropped' },
  maxSpeechDurationS: { kind: 'number', flag: 'vad-max-speech-duration-s', scope: 'call', min: 0, max: Infinity, shownDefault: 'inf; 30 batched', description: "VAD: longer spans are split ('inf': no limit)" },
  minSilenceDurationMs: { kind: 'number', flag: 'vad-min-silence-duration-ms', scope: 'call', min: 0, shownDefault: `${VAD_DEFAULTS.minSilenceDurationMs}; 160 batched`, description: 'VAD: silence needed to close a speech span' },
  speechPadMs: { kind: 'number', flag: 'vad-speech-pad-ms', scope: 'call', min: 0, shownDefault: String(VAD_DEFAULTS.speechPadMs), description: 'VAD: padding added to each side of a speech span' },
};

/** Every option's CLI flag, type and help text; typed so that an option without an entry fails to compile. */
export const OPTION_SPECS: { readonly [K in keyof AllOptions]: OptionSpec } = {
  model: { kind: 'string', flag: 'model', scope: 'load', description: 'model folder, size name (tiny, base, small, …, large-v3) or Hub repo id' },
  dtype: { kind: 'nullable-string', flag: 'dtype', scope: 'load', choices: DTYPES, shownDefault: 'the best present', description: 'weights variant of encoder and decoder' },
  encoderDtype: { kind: 'nullable-string', flag: 'encoder-dtype', scope: 'load', choices: DTYPES, shownDefault: '--dtype', description: 'weights variant of the encoder' },
  decoderDtype: { kind: 'nullable-string', flag: 'decoder-dtype', scope: 'load', choices: DTYPES, shownDefault: '--dtype', description: 'weights variant of the decoder' },
  threads: { kind: 'int', flag: 'threads', scope: 'load', min: 0, max: 1024, description: 'ONNX Runtime intra-op threads (0: automatic)' },
  device: { kind: 'string', flag: 'device', scope: 'load', choices: ['cpu', 'cuda'], description: 'execution provider' },
  batchConcurrentCalls: { kind: 'boolean', flag: 'batch-concurrent-calls', scope: 'load', description: 'decode the greedy windows of concurrent calls on one model in shared decoder batches' },
  activations: { kind: 'string', flag: 'activations', scope: 'load', choices: ACTIVATIONS, description: "how 8-bit (q8/int8/uint8) weights compute: 'float32' dequantizes them once at load (accurate, more memory), 'mixed' runs the encoder on 8-bit activations quantized per frame and the decoder's cached steps on 8-bit activations quantized per block of 128 (faster, as accurate), 'int8' quantizes activations per tensor as the files do (least memory), 'auto' is 'mixed' on CPUs with VNNI/AMX, else 'float32'" },
  language: { kind: 'string', flag: 'language', scope: 'call', description: "spoken language (code or name), or 'auto' to detect it" },
  task: { kind: 'string', flag: 'task', scope: 'call', choices: ['transcribe', 'translate'], description: 'transcribe, or translate to English' },
  languageDetection: { kind: 'string', flag: 'language-detection', scope: 'call', choices: ['first', 'window'], description: "detect the language on the first window or on every window" },
  temperature: { kind: 'numbers', flag: 'temperature', scope: 'call', min: 0, max: 2, description: 'sampling temperature(s), comma-separated; more than one enables fallback' },
  compressionRatioThreshold: { kind: 'nullable-number', flag: 'compression-ratio-threshold', scope: 'call', min: 0, description: 'fall back when the gzip compression ratio is above this' },
  logprobThreshold: { kind: 'nullable-number', flag: 'logprob-threshold', scope: 'call', description: 'fall back when the average log-probability is below this' },
  noSpeechThreshold: { kind: 'nullable-number', flag: 'no-speech-threshold', scope: 'call', min: 0, max: 1, description: 'treat a window as silent when <|nospeech|> is above this and decoding failed the log-prob threshold' },
  conditionOnPreviousText: { kind: 'boolean', flag: 'condition-on-previous-text', scope: 'call', description: 'prompt each window with the text before it' },
  promptResetOnTemperature: { kind: 'number', flag: 'prompt-reset-on-temperature', scope: 'call', min: 0, max: 2, description: 'drop the prompt after a window decoded above this temperature' },
  initialPrompt: { kind: 'nullable-string', flag: 'initial-prompt', scope: 'call', description: 'text to prompt the first window with (spellings, names, style); blank: none' },
  prefix: { kind: 'nullable-string', flag: 'prefix', scope: 'call', description: 'text the first window must start with; blank: none' },
  withoutTimestamps: { kind: 'boolean', flag: 'without-timestamps', scope: 'call', description: 'decode without timestamp tokens (one segment per window)' },
  maxInitialTimestamp: { kind: 'number', flag: 'max-initial-timestamp', scope: 'call', min: 0, max: 30, description: 'latest first timestamp of a window, seconds' },
  suppressTokens: { kind: 'ints', flag: 'suppress-tokens', scope: 'call', description: 'comma-separated token ids to suppress; -1: the model\'s non-speech list' },
  suppressBlank: { kind: 'boolean', flag: 'suppress-blank', scope: 'call', description: 'suppress a blank or end-of-text as the first token' },
  bestOf: { kind: 'int', flag: 'best-of', scope: 'call', min: 1, max: 64, description: 'candidates sampled at temperature > 0' },
  beamSize: { kind: 'int', flag: 'beam-size', scope: 'call', min: 1, max: 64, description: 'beams of the beam search at temperature 0; 1: greedy (openai\'s CLI uses 5)' },
  patience: { kind: 'nullable-number', flag: 'patience', scope: 'call', min: 0, description: 'beam search patience: stop after round(beam size × patience) finished sequences (none: 1)' },
  lengthPenalty: { kind: 'nullable-number', flag: 'length-penalty', scope: 'call', min: 0, max: 1, description: 'ranking length penalty alpha: ((5 + length) / 6) ** alpha (none: divide by the length)' },
  hotwords: { kind: 'nullable-string', flag: 'hotwords', scope: 'call', description: 'hint words put in every window\'s prompt, but the first one\'s when a prefix is given (faster-whisper); blank: none' },
  carryInitialPrompt: { kind: 'boolean', flag: 'carry-initial-prompt', scope: 'call', description: 'keep the initial prompt in front of every window\'s prompt' },
  clipTimestamps: { kind: 'numbers', flag: 'clip-timestamps', scope: 'call', min: 0, description: 'comma-separated start,end,… seconds of the clips to transcribe (the last end: end of audio)' },
  repetitionPenalty: { kind: 'number', flag: 'repetition-penalty', scope: 'call', min: 0, description: 'penalty on tokens already in a window\'s output (> 1 penalizes)' },
  noRepeatNgramSize: { kind: 'int', flag: 'no-repeat-ngram-size', scope: 'call', min: 0, max: 448, description: 'forbid repeating n-grams of this size within a window (0: off)' },
  zhScript: { kind: 'string', flag: 'zh-script', scope: 'call', choices: ['as-is', 'simplified', 'traditional'], description: 'script of Chinese output, converted with OpenCC' },
  seed: { kind: 'int', flag: 'seed', scope: 'call', min: 0, description: 'seed of the sampler' },
  maxNewTokens: { kind: 'int', flag: 'max-new-tokens', scope: 'call', min: 1, max: 448, description: 'most tokens decoded per 30-s window' },
  vadFilter: { kind: 'boolean', flag: 'vad-filter', scope: 'call', description: 'cut out non-speech with Silero VAD before decoding (on by default with --batch-size > 1)' },
  vadOptions: { kind: 'object', flag: 'vad', scope: 'call', fields: VAD_FIELD_SPECS, description: 'Silero VAD parameters (faster-whisper VadOptions)' },
  batchSize: { kind: 'int', flag: 'batch-size', scope: 'call', min: 1, max: 64, description: 'speech chunks (≤ 30 s) decoded together; > 1: the batched pipeline (VAD chunks, no --prefix)' },
  wordTimestamps: { kind: 'boolean', flag: 'word-timestamps', scope: 'call', description: 'word-level timestamps (needs a _timestamped model, e.g. base_timestamped)' },
  prependPunctuations: { kind: 'string', flag: 'prepend-punctuations', scope: 'call', description: 'with word timestamps: punctuation merged into the next word' },
  appendPunctuations: { kind: 'string', flag: 'append-punctuations', scope: 'call', description: 'with word timestamps: punctuation merged into the previous word' },
  hallucinationSilenceThreshold: { kind: 'nullable-number', flag: 'hallucination-silence-threshold', scope: 'call', min: 0, description: 'with word timestamps: skip silences longer than this (s) around a possible hallucination' },
};

export type ResolvedTranscribeOptions = Readonly<TranscribeOptions>;
export type ResolvedLoadOptions = Readonly<LoadOptions>;

/** How an option is named in messages: its key and its flag (`--vad-*` for the fields of an object). */
function label(key: string, spec: OptionSpec): string {
  return `${key} (--${spec.flag}${spec.kind === 'object' ? '-*' : ''})`;
}

function bad(key: keyof AllOptions, message: string): WhisperError {
  return new WhisperError('E_OPTIONS', `option ${label(key, OPTION_SPECS[key])}: ${message}`);
}

/** Checks one value against its spec and returns it in canonical form. */
export function coerceOption(key: keyof AllOptions, value: unknown): unknown {
  return coerceWith(key, OPTION_SPECS[key], value);
}

/** Checks one value against a spec (`name` is how messages call it) and returns it in canonical form. */
export function coerceWith(name: string, spec: OptionSpec, value: unknown): unknown {
  const bad = (message: string): WhisperError => new WhisperError('E_OPTIONS', `option ${label(name, spec)}: ${message}`);
  // a value quoted back, cut short: a server's form field may hold a megabyte
  const q = (v: unknown, json = true): string => {
    const text = json ? (JSON.stringify(v) ?? String(v)) : String(v);
    return text.length > 80 ? `${text.slice(0, 80)}…` : text;
  };
  const range = (n: number): number => {
    // a spec whose max is Infinity takes 'inf' (no limit)
    if (Number.isNaN(n) || (!Number.isFinite(n) && spec.max !== Infinity)) {
      throw bad(`${q(value, false)} is not a finite number`);
    }
    if (spec.min !== undefined && n < spec.min) throw bad(`${n} is below the minimum ${spec.min}`);
    if (spec.max !== undefined && n > spec.max) throw bad(`${n} is above the maximum ${spec.max}`);
    return n;
  };
  const toNumber = (v: unknown): number => {
    const n = typeof v === 'string' && v.trim() !== '' ? (/^\+?inf(inity)?$/i.test(v.trim()) ? Infinity : Number(v)) : v;
    if (typeof n !== 'number') throw bad(`expected a number, got ${q(v)}`);
    return range(n);
  };
  const toInt = (v: unknown): number => {
    const n = toNumber(v);
    if (!Number.isInteger(n)) throw bad(`expected an integer, got ${q(v, false)}`);
    return n;
  };
  const list = (v: unknown): unknown[] => {
    if (Array.isArray(v)) return v;
    if (typeof v !== 'string') return [v];
    if (v.trim() === '') return [];
    const items = v.split(',');
    if (items.some((s) => s.trim() === '')) throw bad(`empty item in the list ${q(v)}`);
    return items;
  };
  switch (spec.kind) {
    case 'string':
    case 'nullable-string': {
      if (value === null && spec.kind === 'nullable-string') return null;
      if (typeof value !== 'string') throw bad(`expected a string, got ${q(value)}`);
      // a blank text (prompt, prefix, hotwords) is no text: openai/whisper decoding.py DecodingTask._get_initial_tokens
      // skips an empty prefix (`if prefix := …`); encoded, " " would force or prompt a lone space token
      if (spec.kind === 'nullable-string' && spec.choices === undefined && value.trim() === '') return null;
      if (spec.choices && !spec.choices.includes(value)) {
        throw bad(`${q(value)} is not one of ${spec.choices.join(', ')}`);
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
      throw bad(`expected true or false, got ${q(value)}`);
    case 'numbers': {
      const items = list(value).map(toNumber);
      if (items.length === 0) throw bad('expected at least one number');
      return items;
    }
    case 'ints':
      return list(value).map(toInt);
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw bad(`expected an object, got ${q(value)}`);
      }
      const fields = spec.fields ?? {};
      const out: Record<string, unknown> = {};
      for (const [field, v] of Object.entries(value)) {
        const fieldSpec = fields[field];
        if (fieldSpec === undefined) throw bad(`unknown field "${field}" (known: ${Object.keys(fields).join(', ')})`);
        if (v === undefined) continue;
        out[field] = coerceWith(`${name}.${field}`, fieldSpec, v);
      }
      return Object.freeze(out);
    }
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
      const hint = !Object.hasOwn(OPTION_SPECS, k)
        ? ''
        : OPTION_SPECS[k as keyof AllOptions].scope === 'load'
          ? ' (it is a load option: give it to loadModel)'
          : ' (it is a transcribe option: give it to transcribe)';
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

/** Options objects returned by resolveTranscribeOptions. */
const RESOLVED = new WeakSet<object>();

/** Validates a transcription options object (unknown keys and bad values throw E_OPTIONS) and fills defaults. */
export function resolveTranscribeOptions(input?: unknown): ResolvedTranscribeOptions {
  // an object this function returned is already checked: resolving it again must not read its filled-in defaults as
  // options the user gave (bestOf at temperature 0 would then be refused)
  if (typeof input === 'object' && input !== null && RESOLVED.has(input)) return input as ResolvedTranscribeOptions;
  const o = resolve<TranscribeOptions>(TRANSCRIBE_KEYS, input, 'transcribe option');
  if (o.temperature.some((t) => t < 0)) throw bad('temperature', 'temperatures must be ≥ 0');
  try {
    resolveVadOptions(o.vadOptions); // combinations (negThreshold ≤ threshold, a long enough maxSpeechDurationS)
  } catch (err) {
    throw bad('vadOptions', err instanceof Error ? err.message : String(err));
  }
  checkDecodingCombinations(o, (input ?? {}) as Record<string, unknown>);
  if (o.hallucinationSilenceThreshold !== null && !o.wordTimestamps) {
    throw bad('hallucinationSilenceThreshold', 'needs word timestamps (wordTimestamps: true, --word-timestamps)');
  }
  if (o.batchSize > 1) {
    // the batched pipeline cuts its chunks at speech pauses unless told not to (vadFilter: false: 30-s pieces)
    if ((input as Partial<TranscribeOptions> | undefined)?.vadFilter === undefined) o.vadFilter = true;
    if (o.prefix !== null) throw bad('prefix', 'is not supported with batchSize > 1 (chunks are decoded independently)');
    // faster-whisper's BatchedInferencePipeline has no hallucination rule either: it works on the seek loop's windows
    if (o.hallucinationSilenceThreshold !== null) {
      throw bad('hallucinationSilenceThreshold', 'is not supported with batchSize > 1 (it steers the sequential seek loop)');
    }
  }
  const frozen = Object.freeze(o);
  RESOLVED.add(frozen);
  return frozen;
}

/** Decoding options that contradict each other (openai/whisper decoding.py DecodingTask._verify_options and more). */
function checkDecodingCombinations(o: TranscribeOptions, given: Record<string, unknown>): void {
  const sampling = o.temperature.some((t) => t > 0);
  if (given.bestOf !== undefined && !sampling) {
    throw bad('bestOf', 'applies only at temperature > 0, and every temperature given is 0');
  }
  if (o.beamSize > 1 && !o.temperature.includes(0)) {
    throw bad('beamSize', 'beam search runs at temperature 0, and no temperature given is 0');
  }
  if (o.patience !== null) {
    if (o.beamSize === 1) throw bad('patience', 'needs beam search (beamSize > 1)');
    if (Math.round(o.beamSize * o.patience) < 1) throw bad('patience', 'beamSize × patience must round to at least 1');
  }
  if (o.repetitionPenalty <= 0) throw bad('repetitionPenalty', 'must be > 0');
  if (o.carryInitialPrompt && o.initialPrompt === null) throw bad('carryInitialPrompt', 'needs an initialPrompt');
  for (let i = 1; i < o.clipTimestamps.length; i++) {
    if ((o.clipTimestamps[i] as number) < (o.clipTimestamps[i - 1] as number)) {
      throw bad('clipTimestamps', 'the times must not decrease (start,end,start,end,…)');
    }
  }
  const clipped = o.clipTimestamps.length !== 1 || o.clipTimestamps[0] !== 0;
  if (clipped && (o.batchSize > 1 || o.vadFilter)) {
    throw bad('clipTimestamps', 'cannot be combined with vadFilter or batchSize > 1 (they choose the audio to decode)');
  }
  if (o.beamSize > 1 && o.batchSize > 1) throw bad('beamSize', 'the batched pipeline (batchSize > 1) decodes greedily');
  if (o.zhScript !== 'as-is') {
    const code = o.language === 'auto' ? 'auto' : toLanguageCode(o.language);
    if (code !== 'auto' && code !== 'zh' && code !== 'yue') {
      throw bad('zhScript', `converts Chinese output; language is "${o.language}"`);
    }
    if (o.task === 'translate') throw bad('zhScript', 'converts Chinese output; translate writes English');
  }
}

export function resolveLoadOptions(input?: unknown): ResolvedLoadOptions {
  const o = resolve<LoadOptions>(LOAD_KEYS, input, 'load option');
  for (const k of ['dtype', 'encoderDtype', 'decoderDtype'] as const) {
    const v = o[k];
    if (v !== null && !isDtype(v)) throw bad(k, `unknown dtype ${v}`);
  }
  return Object.freeze(o);
}
