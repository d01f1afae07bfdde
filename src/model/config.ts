import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { WhisperError } from '../errors.js';
import { CPU_DTYPE_PREFERENCE, DTYPE_SUFFIX, type Dtype } from '../dtypes.js';

/** Everything whisper-ts needs to know about a model, read from its own files. Nothing is hard-coded per size. */
export interface WhisperConfig {
  nMels: number;
  nAudioCtx: number;
  nTextCtx: number;
  dModel: number;
  decoderLayers: number;
  decoderHeads: number;
  encoderLayers: number;
  vocabSize: number;
  isMultilingual: boolean;
  /** generation_config.suppress_tokens: the model's non-speech token list. */
  suppressTokens: readonly number[];
  /** generation_config.begin_suppress_tokens (openai's SuppressBlank: " " and end-of-text). */
  beginSuppressTokens: readonly number[];
  /** [layer, head] pairs of the cross-attention heads that align text to audio. */
  alignmentHeads: readonly (readonly [number, number])[];
  maxInitialTimestampIndex: number;
  medianFilterWidth: number;
  sampleRate: number;
  nFft: number;
  hopLength: number;
  chunkLength: number;
}

export interface ModelFiles {
  dir: string;
  encoderPath: string;
  decoderPath: string;
  encoderDtype: Dtype;
  decoderDtype: Dtype;
}

export async function readJson(dir: string, name: string): Promise<Record<string, unknown>> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new WhisperError('E_MODEL_FILE_MISSING', `the model folder ${dir} lacks ${name}`, { cause });
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch (cause) {
    throw new WhisperError('E_MODEL_INVALID', `${path} is not a valid JSON object`, { cause });
  }
}

function num(obj: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = obj[key];
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (fallback !== undefined) return fallback;
  throw new WhisperError('E_MODEL_INVALID', `${file} has no numeric "${key}"`);
}

function numList(v: unknown): number[] {
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];
}

export function parseConfig(
  config: Record<string, unknown>,
  generation: Record<string, unknown>,
  preprocessor: Record<string, unknown>,
): WhisperConfig {
  const heads = Array.isArray(generation.alignment_heads)
    ? generation.alignment_heads
        .filter((p): p is [number, number] => Array.isArray(p) && p.length === 2)
        .map(([l, h]) => [l, h] as const)
    : [];
  const langToId = generation.lang_to_id;
  return Object.freeze({
    nMels: num(preprocessor, 'feature_size', 'preprocessor_config.json', num(config, 'num_mel_bins', 'config.json')),
    nAudioCtx: num(config, 'max_source_positions', 'config.json'),
    nTextCtx: num(config, 'max_target_positions', 'config.json'),
    dModel: num(config, 'd_model', 'config.json'),
    decoderLayers: num(config, 'decoder_layers', 'config.json'),
    decoderHeads: num(config, 'decoder_attention_heads', 'config.json'),
    encoderLayers: num(config, 'encoder_layers', 'config.json'),
    vocabSize: num(config, 'vocab_size', 'config.json'),
    isMultilingual:
      typeof generation.is_multilingual === 'boolean'
        ? generation.is_multilingual
        : typeof langToId === 'object' && langToId !== null && Object.keys(langToId).length > 0,
    suppressTokens: Object.freeze(numList(generation.suppress_tokens)),
    beginSuppressTokens: Object.freeze(numList(generation.begin_suppress_tokens)),
    alignmentHeads: Object.freeze(heads),
    maxInitialTimestampIndex: num(generation, 'max_initial_timestamp_index', 'generation_config.json', 50),
    medianFilterWidth: num(config, 'median_filter_width', 'config.json', 7),
    sampleRate: num(preprocessor, 'sampling_rate', 'preprocessor_config.json', 16000),
    nFft: num(preprocessor, 'n_fft', 'preprocessor_config.json', 400),
    hopLength: num(preprocessor, 'hop_length', 'preprocessor_config.json', 160),
    chunkLength: num(preprocessor, 'chunk_length', 'preprocessor_config.json', 30),
  });
}

/** Which dtypes a folder holds (both the encoder and the merged decoder present). */
export async function availableDtypes(dir: string): Promise<Dtype[]> {
  let names: string[];
  try {
    names = await readdir(join(dir, 'onnx'));
  } catch {
    return [];
  }
  const set = new Set(names);
  return CPU_DTYPE_PREFERENCE.filter(
    (d) =>
      set.has(`encoder_model${DTYPE_SUFFIX[d]}.onnx`) && set.has(`decoder_model_merged${DTYPE_SUFFIX[d]}.onnx`),
  );
}

/** Picks the ONNX files for the asked dtypes (encoder and decoder separately), or the best variant present. */
export async function resolveModelFiles(
  dir: string,
  want: { dtype?: Dtype; encoderDtype?: Dtype; decoderDtype?: Dtype },
): Promise<ModelFiles> {
  let names: string[];
  try {
    names = await readdir(join(dir, 'onnx'));
  } catch (cause) {
    throw new WhisperError('E_MODEL_FILE_MISSING', `the model folder ${dir} lacks the onnx/ folder`, { cause });
  }
  const present = new Set(names);
  const pick = (kind: 'encoder_model' | 'decoder_model_merged', asked: Dtype | undefined): Dtype => {
    if (asked !== undefined) {
      const file = `${kind}${DTYPE_SUFFIX[asked]}.onnx`;
      if (!present.has(file)) {
        throw new WhisperError('E_MODEL_FILE_MISSING', `the model folder ${dir} lacks onnx/${file} (dtype ${asked})`);
      }
      return asked;
    }
    const found = CPU_DTYPE_PREFERENCE.find((d) => present.has(`${kind}${DTYPE_SUFFIX[d]}.onnx`));
    if (found === undefined) {
      throw new WhisperError('E_MODEL_FILE_MISSING', `the model folder ${dir} lacks onnx/${kind}{_quantized,…}.onnx`);
    }
    return found;
  };
  const encoderDtype = pick('encoder_model', want.encoderDtype ?? want.dtype);
  const decoderDtype = pick('decoder_model_merged', want.decoderDtype ?? want.dtype);
  return {
    dir,
    encoderDtype,
    decoderDtype,
    encoderPath: join(dir, 'onnx', `encoder_model${DTYPE_SUFFIX[encoderDtype]}.onnx`),
    decoderPath: join(dir, 'onnx', `decoder_model_merged${DTYPE_SUFFIX[decoderDtype]}.onnx`),
  };
}
