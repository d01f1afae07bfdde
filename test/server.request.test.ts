/**
 * The request schema of the audio endpoints, without a server: fields that only make sense together, JSON object
 * fields, the field named when options are refused together, and OpenAI's temperature 0.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/index.js';
import { HttpError } from '../src/server/errors.js';
import { parseAudioFields, type ServedModel } from '../src/server/request.js';

const multilingual: ServedModel = { id: 'whisper-base', aliases: new Set(['whisper-base', 'whisper-1']), multilingual: true, wordTimestamps: true };
const englishOnly: ServedModel = { ...multilingual, id: 'whisper-tiny.en', multilingual: false };

const fields = (o: Record<string, string>): Map<string, string[]> => new Map(Object.entries(o).map(([k, v]) => [k, [v]]));
const parse = (o: Record<string, string>, served = multilingual, defaults = {}) =>
  parseAudioFields(fields(o), 'transcribe', served, defaults);

function refused(o: Record<string, string>, served = multilingual): HttpError {
  try {
    parse(o, served);
  } catch (err) {
    expect(err).toBeInstanceOf(HttpError);
    return err as HttpError;
  }
  throw new Error(`accepted ${JSON.stringify(o)}`);
}

describe('audio request fields', () => {
  it('takes options that depend on each other in one request', () => {
    expect(parse({ beam_size: '3', patience: '2' }).options).toMatchObject({ beamSize: 3, patience: 2 });
    expect(parse({ prompt: 'Hello', carry_initial_prompt: 'true' }).options).toMatchObject({ initialPrompt: 'Hello', carryInitialPrompt: true });
    expect(
      parse({ response_format: 'verbose_json', 'timestamp_granularities[]': 'word', hallucination_silence_threshold: '2' }).options,
    ).toMatchObject({ wordTimestamps: true, hallucinationSilenceThreshold: 2 });
  });

  it('reads object options as JSON and names the field when the JSON is bad', () => {
    expect(parse({ vad_filter: 'true', vad_options: '{"threshold":0.3}' }).options).toMatchObject({ vadOptions: { threshold: 0.3 } });
    const e = refused({ vad_options: '{threshold' });
    expect([e.status, e.param]).toEqual([400, 'vad_options']);
    expect(e.message).toMatch(/JSON object/);
  });

  it('names the field of an option refused with another one, and of a bad value', () => {
    const both = refused({ beam_size: '5', batch_size: '8' });
    expect([both.status, both.code, both.param]).toEqual([400, 'E_OPTIONS', 'beam_size']);
    const alone = refused({ patience: '2' });
    expect(alone.param).toBe('patience');
    expect(refused({ beam_size: 'many' }).param).toBe('beam_size');
  });

  it('names the language field for a language Whisper does not know, or one an English-only model cannot use', () => {
    const unknown = refused({ language: 'zz' });
    expect([unknown.status, unknown.param]).toEqual([400, 'language']);
    expect(unknown.message).toMatch(/"zz"/);
    expect(refused({ language: 'de' }, englishOnly).param).toBe('language');
    expect(parse({ language: 'German' }).options).toMatchObject({ language: 'German' });
    expect(parse({ language: 'en' }, englishOnly).options).toMatchObject({ language: 'en' });
  });

  it('quotes a long bad value back shortened, in our own messages and in the engine messages', () => {
    const long = 'x'.repeat(1_000_000);
    for (const field of ['language', 'model', 'response_format', 'stream', 'vad_options', 'temperature', 'beam_size']) {
      const e = refused({ [field]: long });
      expect(e.param, field).toBe(field);
      expect(e.message, field).toContain('x'.repeat(80));
      expect(e.message.length, field).toBeLessThan(400);
    }
    expect(refused({ language: long }).message).toMatch(/^language "x{80}…" is not a language Whisper knows/);
  });

  it('temperature 0 is the fallback ladder (OpenAI), also where the server defaults to another temperature', () => {
    const server = { temperature: [0.6] };
    expect(parse({ temperature: '0' }, multilingual, server).options.temperature).toEqual([...DEFAULTS.temperature]);
    expect(parse({}, multilingual, server).options.temperature).toEqual([0.6]);
    expect(parse({ temperature: '0.2' }, multilingual, server).options.temperature).toEqual([0.2]);
  });
});
