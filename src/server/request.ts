/**
 * The request schema of the audio endpoints: the OpenAI multipart fields, mapped onto the one options table, plus
 * every other per-call option of OPTION_SPECS under its snake_case name (so a new engine option is a request field
 * without a line here). Validation is the engine's own (`resolveTranscribeOptions`, E_OPTIONS).
 */
import type { FastifyRequest } from 'fastify';
import {
  DEFAULTS,
  OPTION_SPECS,
  isWhisperError,
  toLanguageCode,
  resolveTranscribeOptions,
  type AllOptions,
  type Task,
  type TranscribeOptions,
} from '../index.js';
import { HttpError, MESSAGE_CHARS, shorten } from './errors.js';

/** The largest text field of a request (the multipart parser's fieldSize). */
export const FIELD_LIMIT_BYTES = 1024 * 1024;
const FIELD_LIMIT_TEXT = '1 MiB';

export const RESPONSE_FORMATS = ['json', 'text', 'srt', 'verbose_json', 'vtt'] as const;
export type ResponseFormat = (typeof RESPONSE_FORMATS)[number];

/** What the server serves, for checking a request against it. */
export interface ServedModel {
  /** The id /v1/models lists first. */
  id: string;
  /** Names a request's `model` field may use: 'whisper-1' and the id (a Hub name, or a folder's last component: its path stays private). */
  aliases: ReadonlySet<string>;
  multilingual: boolean;
  wordTimestamps: boolean;
}

export interface AudioRequest {
  audio: Buffer;
  filename: string;
  responseFormat: ResponseFormat;
  stream: boolean;
  /** verbose_json carries segments (default, or timestamp_granularities[] has segment). */
  segments: boolean;
  /** verbose_json carries words (timestamp_granularities[] has word). */
  words: boolean;
  /** Resolved TranscribeOptions, as a plain object for the worker. */
  options: Record<string, unknown>;
}

/** OpenAI fields this server accepts and does nothing with (they change nothing for a Whisper model). */
const IGNORED_FIELDS = new Set(['include[]', 'include', 'chunking_strategy', 'known_speaker_names[]', 'known_speaker_references[]']);

/** OpenAI field → options key, where the API has its own name or meaning for an option. */
const OPENAI_FIELDS = new Set(['model', 'language', 'prompt', 'response_format', 'temperature', 'timestamp_granularities[]', 'timestamp_granularities', 'stream']);

/** Options a request cannot set by their own name: the endpoint decides the task, the OpenAI fields cover the rest. */
const NOT_EXTENSIONS = new Set<string>(['task', 'language', 'temperature', 'initialPrompt', 'wordTimestamps']);

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** snake_case field → options key, for every per-call option of the table. */
const EXTENSION_FIELDS: ReadonlyMap<string, keyof AllOptions> = new Map(
  (Object.keys(OPTION_SPECS) as (keyof AllOptions)[])
    .filter((k) => OPTION_SPECS[k].scope === 'call' && !NOT_EXTENSIONS.has(k))
    .map((k) => [snake(k), k]),
);

/** The engine builds word timestamps when its options table has the switch (issue 5 adds it). */
export const ENGINE_HAS_WORD_TIMESTAMPS = Object.hasOwn(OPTION_SPECS, 'wordTimestamps');

function badField(param: string, message: string, code: 'E_OPTIONS' | 'E_BAD_REQUEST' = 'E_OPTIONS'): HttpError {
  return new HttpError(400, code, message, param);
}

/**
 * An extension field's text as the options table takes it: the table's own coercion turns strings into numbers,
 * booleans and lists; an object option (vad_options) comes as JSON. Values are checked all together afterwards (an
 * option may depend on another, as patience on beam_size).
 */
function extensionValue(param: string, key: keyof AllOptions, value: string | undefined): unknown {
  if (value === undefined || OPTION_SPECS[key].kind !== 'object') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    throw badField(param, `${param} must be a JSON object, such as {"threshold": 0.5}; got ${JSON.stringify(shorten(value))}`);
  }
}

/** The request field of an options key named in an engine error (`option beamSize (--beam-size): …`). */
function fieldOfError(message: string, fieldOf: ReadonlyMap<string, string>): string | null {
  const key = /^option (\w+)/.exec(message)?.[1];
  return key === undefined ? null : (fieldOf.get(key) ?? null);
}

/** Checks one field's value through the engine's own validation, naming the field when it fails. */
function checked(param: string, key: string, value: unknown): unknown {
  try {
    return (resolveTranscribeOptions({ [key]: value }) as unknown as Record<string, unknown>)[key];
  } catch (err) {
    if (isWhisperError(err)) throw badField(param, `${param}: ${shorten(err.message, MESSAGE_CHARS)}`);
    throw err;
  }
}

/**
 * Why `language` cannot be used with the served model, or null. An unknown language is named before the English-only
 * rule; the HTTP endpoints and the live route both check this way.
 */
export function languageProblem(language: string, served: ServedModel): string | null {
  const asked = language.trim();
  const code = asked.toLowerCase() === 'auto' ? 'auto' : toLanguageCode(asked);
  if (code === undefined) {
    return `language "${shorten(asked)}" is not a language Whisper knows (an ISO 639-1 code such as "de", or a name such as "German")`;
  }
  if (!served.multilingual && code !== 'auto' && code !== 'en') {
    return `the served model ${served.id} is English-only; language "${shorten(asked)}" cannot be used`;
  }
  return null;
}

/**
 * Maps the text fields of a request onto resolved transcription options. Pure: the HTTP reading is elsewhere.
 * `fields` holds every value of a repeated field in order.
 */
export function parseAudioFields(
  fields: ReadonlyMap<string, readonly string[]>,
  task: Task,
  served: ServedModel,
  defaults: Partial<TranscribeOptions> = {},
): Omit<AudioRequest, 'audio' | 'filename'> {
  const one = (name: string): string | undefined => {
    const v = fields.get(name);
    if (v && v.length > 1) throw badField(name, `${name} was given ${v.length} times`, 'E_BAD_REQUEST');
    return v?.[0];
  };
  const given: Record<string, unknown> = {};
  // options key → the request field that set it, to name the field when the options are refused together
  const fieldOf = new Map<string, string>([
    ['language', 'language'],
    ['initialPrompt', 'prompt'],
    ['temperature', 'temperature'],
    ['wordTimestamps', 'timestamp_granularities[]'],
  ]);
  for (const name of fields.keys()) {
    if (OPENAI_FIELDS.has(name) || IGNORED_FIELDS.has(name)) continue;
    const key = EXTENSION_FIELDS.get(name);
    if (key === undefined) throw badField(name, `unknown field "${shorten(name)}"`, 'E_BAD_REQUEST');
    given[key] = extensionValue(name, key, one(name));
    fieldOf.set(key, name);
  }

  const model = one('model');
  if (model !== undefined && model !== '' && !served.aliases.has(model)) {
    throw new HttpError(
      400,
      'E_MODEL_NOT_SERVED',
      `this server serves ${served.id} (also called ${[...served.aliases].filter((a) => a !== served.id).join(', ')}), not "${shorten(model)}"`,
      'model',
    );
  }

  const language = one('language');
  if (language !== undefined && language.trim() !== '') {
    const asked = language.trim();
    given.language = checked('language', 'language', asked);
    const problem = languageProblem(asked, served);
    if (problem !== null) throw badField('language', problem);
  }

  const prompt = one('prompt');
  if (prompt !== undefined && prompt.trim() !== '') given.initialPrompt = prompt;

  // OpenAI: temperature 0 (the default) raises the temperature by itself when decoding fails → the fallback ladder;
  // a single other value decodes at that temperature only; a comma-separated list is a ladder of its own.
  const temperature = one('temperature');
  if (temperature !== undefined && temperature.trim() !== '') {
    const t = checked('temperature', 'temperature', temperature) as number[];
    // 0 asks for the fallback ladder also where the server's default temperature is another one
    given.temperature = t.length === 1 && t[0] === 0 ? [...DEFAULTS.temperature] : t;
  }

  const format = one('response_format') ?? 'json';
  if (!(RESPONSE_FORMATS as readonly string[]).includes(format)) {
    throw badField('response_format', `response_format "${shorten(format)}" is not one of ${RESPONSE_FORMATS.join(', ')}`);
  }
  const responseFormat = format as ResponseFormat;

  const stream = one('stream');
  if (stream !== undefined && !['true', 'false', ''].includes(stream)) {
    throw badField('stream', `stream must be true or false, not "${shorten(stream)}"`);
  }

  const granularities = [...(fields.get('timestamp_granularities[]') ?? []), ...(fields.get('timestamp_granularities') ?? [])];
  for (const g of granularities) {
    if (g !== 'segment' && g !== 'word') {
      throw badField('timestamp_granularities[]', `timestamp granularity "${shorten(g)}" is not one of segment, word`);
    }
  }
  const words = granularities.includes('word');
  if (granularities.length > 0 && responseFormat !== 'verbose_json') {
    // the OpenAI API's rule
    throw badField('timestamp_granularities[]', 'timestamp_granularities[] needs response_format=verbose_json');
  }
  if (words) {
    if (!ENGINE_HAS_WORD_TIMESTAMPS) {
      throw badField('timestamp_granularities[]', 'word timestamps are not available in this version of whisper-ts');
    }
    if (!served.wordTimestamps) {
      throw badField(
        'timestamp_granularities[]',
        `word timestamps need a model whose decoder outputs cross-attentions (a "_timestamped" export such as ` +
          `whisper-base_timestamped); the served model ${served.id} has none`,
      );
    }
    given.wordTimestamps = true;
  }

  if (task === 'translate' && !served.multilingual) {
    throw new HttpError(400, 'E_OPTIONS', `the served model ${served.id} is English-only and cannot translate`, 'model');
  }

  let options: Record<string, unknown>;
  try {
    options = { ...resolveTranscribeOptions({ ...defaults, ...given, task }) };
  } catch (err) {
    if (isWhisperError(err)) throw new HttpError(400, err.code, shorten(err.message, MESSAGE_CHARS), fieldOfError(err.message, fieldOf));
    throw err;
  }
  return {
    responseFormat,
    stream: stream === 'true',
    segments: granularities.length === 0 || granularities.includes('segment'),
    words,
    options,
  };
}

/** Reads a multipart request: the one file (size-limited by the multipart plugin: 413) and the text fields. */
export async function readAudioRequest(
  request: FastifyRequest,
  task: Task,
  served: ServedModel,
  defaults: Partial<TranscribeOptions>,
): Promise<AudioRequest> {
  if (!request.isMultipart()) {
    throw new HttpError(400, 'E_BAD_REQUEST', 'expected a multipart/form-data body with a "file" field');
  }
  const fields = new Map<string, string[]>();
  let audio: Buffer | undefined;
  let filename = '';
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'file') {
          part.file.resume();
          throw badField(part.fieldname, `unexpected file field "${shorten(part.fieldname)}"; the audio goes in "file"`, 'E_BAD_REQUEST');
        }
        audio = await part.toBuffer();
        filename = part.filename;
      } else {
        if (part.valueTruncated) {
          throw badField(part.fieldname, `the field "${shorten(part.fieldname)}" is longer than the ${FIELD_LIMIT_TEXT} a text field may hold`, 'E_BAD_REQUEST');
        }
        const list = fields.get(part.fieldname) ?? [];
        list.push(typeof part.value === 'string' ? part.value : String(part.value));
        fields.set(part.fieldname, list);
      }
    }
  } catch (err) {
    // the multipart parser's own errors (no boundary, a body cut short) are the client's: 400, not 500
    if (err instanceof HttpError || (typeof err === 'object' && err !== null && 'statusCode' in err)) throw err;
    throw new HttpError(400, 'E_BAD_REQUEST', `the multipart/form-data body is malformed: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (audio === undefined) throw badField('file', 'the request has no "file" field with the audio', 'E_BAD_REQUEST');
  if (audio.length === 0) throw new HttpError(400, 'E_AUDIO_DECODE', 'the uploaded file is empty', 'file');
  return { audio, filename, ...parseAudioFields(fields, task, served, defaults) };
}

