import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { WhisperError, throwIfAborted } from '../errors.js';
import { createSession, ort } from '../runtime/session.js';
import { VAD_WINDOW_SAMPLES, resolveVadOptions, type VadOptions } from './options.js';
import {
  SEQUENCE_C,
  SEQUENCE_CN,
  SEQUENCE_H,
  SEQUENCE_HN,
  SEQUENCE_INPUT,
  SEQUENCE_PROB,
  SileroGraphError,
  buildSequenceModel,
} from './silero-graph.js';
import { speechSpansFromProbabilities, type SpeechSpan } from './timestamps.js';

/** Samples of the previous window that Silero v5/v6 see in front of each 512-sample window at 16 kHz. */
export const CONTEXT_SAMPLES = 64;
const INPUT_SAMPLES = CONTEXT_SAMPLES + VAD_WINDOW_SAMPLES;
const HIDDEN = 128;
/** Windows scored per ONNX Runtime run in sequence mode (~65 s of audio, 4.7 MB of input). */
const WINDOWS_PER_RUN = 2048;

export type SileroVersion = 'v5' | 'v6';

/** The recurrent state of one audio stream between `VadModel.scoreWindows` calls (opaque). */
export interface VadState {
  readonly tensors: readonly ort.Tensor[];
}

/**
 * How the model is run. `sequence`: the model rewritten to score many windows per run (see silero-graph.ts), the
 * default; `stepwise`: the file as shipped, one run per 512-sample window, as silero-vad's OnnxWrapper does.
 */
export type VadEngine = 'sequence' | 'stepwise';

export interface LoadVadOptions {
  /** ONNX Runtime intra-op threads (default 1, as faster-whisper's VAD; the model is small). */
  threads?: number;
  /** Which Silero file of @ricky0123/vad-web to load (default `v5`). Ignored when `modelPath` is given. */
  version?: SileroVersion;
  /** A Silero VAD v5/v6 ONNX file (input [batch, 576], state [2, batch, 128], sr) to use instead. */
  modelPath?: string;
  /** Default `sequence`; falls back to `stepwise` when the file cannot be rewritten. */
  engine?: VadEngine;
}

/**
 * Path of a Silero VAD ONNX file shipped by the npm package @ricky0123/vad-web (dist/silero_vad_v5.onnx or
 * dist/silero_vad_v6.onnx), resolved from this module so it works from src/, dist/ and an installed package.
 */
export function sileroModelPath(version: SileroVersion = 'v5'): string {
  let packageJson: string;
  try {
    packageJson = createRequire(import.meta.url).resolve('@ricky0123/vad-web/package.json');
  } catch (cause) {
    throw new WhisperError(
      'E_MODEL_FILE_MISSING',
      'the Silero VAD model comes from the npm package @ricky0123/vad-web, which is not installed',
      { cause },
    );
  }
  return join(dirname(packageJson), 'dist', `silero_vad_${version}.onnx`);
}

/**
 * A loaded Silero VAD. Immutable and safe to share between concurrent calls: the LSTM state and the context belong
 * to each call. Create with `loadVad`, release with `dispose`.
 */
export class VadModel {
  /** How this model runs (`stepwise` when the sequence rewrite was refused). */
  readonly engine: VadEngine;
  /** The ONNX file it was loaded from. */
  readonly modelPath: string;
  #session: ort.InferenceSession | undefined;
  readonly #running = new Set<Promise<unknown>>();

  /** @internal use `loadVad` */
  constructor(session: ort.InferenceSession, engine: VadEngine, modelPath: string) {
    this.#session = session;
    this.engine = engine;
    this.modelPath = modelPath;
  }

  /**
   * Speech probability of every 512-sample window of `samples` (16 kHz mono), as faster-whisper computes them
   * (faster_whisper/vad.py, get_speech_timestamps and SileroVADModel.__call__): the audio is zero-padded to whole
   * windows plus, as there, a whole extra window when its length is already a multiple of 512; each window is
   * preceded by the last 64 samples of the one before (zeros for the first). Result length:
   * `floor(samples.length / 512) + 1`.
   */
  async speechProbabilities(samples: Float32Array, signal?: AbortSignal): Promise<Float32Array> {
    const session = this.#use();
    throwIfAborted(signal);
    const run = this.engine === 'sequence' ? this.#runSequence(session, samples, signal) : this.#runStepwise(session, samples, signal);
    this.#running.add(run);
    try {
      return await run;
    } finally {
      this.#running.delete(run);
    }
  }

  /**
   * Speech spans of `samples` (16 kHz mono) in samples, with the semantics of faster-whisper's
   * `get_speech_timestamps` (faster_whisper/vad.py). Options are validated (`E_OPTIONS`); `signal` aborts
   * (`E_ABORTED`).
   */
  async speechTimestamps(
    samples: Float32Array,
    options: Partial<VadOptions> = {},
    signal?: AbortSignal,
  ): Promise<SpeechSpan[]> {
    const resolved = resolveVadOptions(options);
    if (!(samples instanceof Float32Array)) {
      throw new WhisperError('E_OPTIONS', 'VAD input must be a Float32Array of 16 kHz mono samples');
    }
    if (samples.length === 0) {
      this.#use();
      return [];
    }
    const probabilities = await this.speechProbabilities(samples, signal);
    return speechSpansFromProbabilities(probabilities, samples.length, resolved);
  }

  /**
   * Scores `count` windows laid out as [count, 576] (each 512-sample window preceded by the 64 samples before it),
   * continuing the LSTM from `state` (null: a fresh stream). The building block of `VadStream` (vad/stream.ts),
   * which scores audio that arrives in pieces.
   * @internal
   */
  async scoreWindows(
    input: Float32Array,
    count: number,
    state: VadState | null,
    signal?: AbortSignal,
  ): Promise<{ probabilities: Float32Array; state: VadState }> {
    const session = this.#use();
    throwIfAborted(signal);
    const run = this.#scoreWindows(session, input, count, state);
    this.#running.add(run);
    try {
      return await run;
    } finally {
      this.#running.delete(run);
    }
  }

  async #scoreWindows(
    session: ort.InferenceSession,
    input: Float32Array,
    count: number,
    state: VadState | null,
  ): Promise<{ probabilities: Float32Array; state: VadState }> {
    if (this.engine === 'sequence') {
      const zero = (): ort.Tensor => new ort.Tensor('float32', new Float32Array(HIDDEN), [1, 1, HIDDEN]);
      const outputs = await runOrThrow(session, {
        [SEQUENCE_INPUT]: new ort.Tensor('float32', input.subarray(0, count * INPUT_SAMPLES), [count, INPUT_SAMPLES]),
        [SEQUENCE_H]: state?.tensors[0] ?? zero(),
        [SEQUENCE_C]: state?.tensors[1] ?? zero(),
      });
      const probabilities = Float32Array.from(outputData(outputs, SEQUENCE_PROB, count));
      return { probabilities, state: { tensors: [outputTensor(outputs, SEQUENCE_HN), outputTensor(outputs, SEQUENCE_CN)] } };
    }
    const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
    let s: ort.Tensor = state?.tensors[0] ?? new ort.Tensor('float32', new Float32Array(2 * HIDDEN), [2, 1, HIDDEN]);
    const probabilities = new Float32Array(count);
    for (let w = 0; w < count; w++) {
      const window = input.slice(w * INPUT_SAMPLES, (w + 1) * INPUT_SAMPLES);
      const outputs = await runOrThrow(session, { input: new ort.Tensor('float32', window, [1, INPUT_SAMPLES]), state: s, sr });
      probabilities[w] = outputData(outputs, 'output', 1)[0] as number;
      s = outputTensor(outputs, 'stateN');
    }
    return { probabilities, state: { tensors: [s] } };
  }

  /** Releases the ONNX Runtime session once running calls have finished; later calls throw `E_DISPOSED`. */
  async dispose(): Promise<void> {
    const session = this.#session;
    if (session === undefined) return;
    this.#session = undefined;
    await Promise.allSettled([...this.#running]);
    await session.release();
  }

  #use(): ort.InferenceSession {
    if (this.#session === undefined) throw new WhisperError('E_DISPOSED', 'the VAD model was disposed');
    return this.#session;
  }

  async #runSequence(session: ort.InferenceSession, samples: Float32Array, signal?: AbortSignal): Promise<Float32Array> {
    const windows = Math.floor(samples.length / VAD_WINDOW_SAMPLES) + 1;
    const probabilities = new Float32Array(windows);
    let h: ort.Tensor = new ort.Tensor('float32', new Float32Array(HIDDEN), [1, 1, HIDDEN]);
    let c: ort.Tensor = new ort.Tensor('float32', new Float32Array(HIDDEN), [1, 1, HIDDEN]);
    const input = new Float32Array(Math.min(windows, WINDOWS_PER_RUN) * INPUT_SAMPLES);
    for (let first = 0; first < windows; first += WINDOWS_PER_RUN) {
      throwIfAborted(signal);
      const count = Math.min(WINDOWS_PER_RUN, windows - first);
      const batch = input.subarray(0, count * INPUT_SAMPLES);
      for (let w = 0; w < count; w++) fillWindow(batch, w * INPUT_SAMPLES, samples, first + w);
      const outputs = await runOrThrow(session, {
        [SEQUENCE_INPUT]: new ort.Tensor('float32', batch, [count, INPUT_SAMPLES]),
        [SEQUENCE_H]: h,
        [SEQUENCE_C]: c,
      });
      probabilities.set(outputData(outputs, SEQUENCE_PROB, count), first);
      h = outputTensor(outputs, SEQUENCE_HN);
      c = outputTensor(outputs, SEQUENCE_CN);
    }
    throwIfAborted(signal);
    return probabilities;
  }

  async #runStepwise(session: ort.InferenceSession, samples: Float32Array, signal?: AbortSignal): Promise<Float32Array> {
    const windows = Math.floor(samples.length / VAD_WINDOW_SAMPLES) + 1;
    const probabilities = new Float32Array(windows);
    const sr = new ort.Tensor('int64', BigInt64Array.from([16000n]), []);
    let state: ort.Tensor = new ort.Tensor('float32', new Float32Array(2 * HIDDEN), [2, 1, HIDDEN]);
    const input = new Float32Array(INPUT_SAMPLES);
    for (let w = 0; w < windows; w++) {
      if (w % 256 === 0) throwIfAborted(signal);
      fillWindow(input, 0, samples, w);
      const outputs = await runOrThrow(session, {
        input: new ort.Tensor('float32', input, [1, INPUT_SAMPLES]),
        state,
        sr,
      });
      probabilities[w] = outputData(outputs, 'output', 1)[0] as number;
      state = outputTensor(outputs, 'stateN');
    }
    throwIfAborted(signal);
    return probabilities;
  }
}

/** Writes window `w` of `samples` (with its 64-sample context, zero-padded past the end) to `out` at `offset`. */
function fillWindow(out: Float32Array, offset: number, samples: Float32Array, w: number): void {
  const start = w * VAD_WINDOW_SAMPLES - CONTEXT_SAMPLES;
  const from = Math.max(0, start);
  const to = Math.min(samples.length, start + INPUT_SAMPLES);
  out.fill(0, offset, offset + INPUT_SAMPLES);
  if (to > from) out.set(samples.subarray(from, to), offset + (from - start));
}

async function runOrThrow(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
): Promise<ort.InferenceSession.OnnxValueMapType> {
  try {
    return await session.run(feeds);
  } catch (cause) {
    throw new WhisperError('E_VAD', `the Silero VAD model failed: ${String(cause)}`, { cause });
  }
}

function outputTensor(outputs: ort.InferenceSession.OnnxValueMapType, name: string): ort.Tensor {
  const value = outputs[name];
  if (value === undefined) throw new WhisperError('E_VAD', `the Silero VAD model returned no ${name}`);
  return value;
}

function outputData(outputs: ort.InferenceSession.OnnxValueMapType, name: string, count: number): Float32Array {
  const data = outputTensor(outputs, name).data;
  if (!(data instanceof Float32Array) || data.length !== count) {
    throw new WhisperError('E_VAD', `the Silero VAD model returned ${name} of unexpected shape`);
  }
  return data;
}

/**
 * Loads Silero VAD (v5 from @ricky0123/vad-web unless told otherwise) into one ONNX Runtime session. Errors:
 * `E_MODEL_FILE_MISSING` (no such file), `E_MODEL_LOAD` (ONNX Runtime refused it), `E_OPTIONS`.
 */
export async function loadVad(options: LoadVadOptions = {}): Promise<VadModel> {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 0) {
    throw new WhisperError('E_OPTIONS', `VAD option threads must be a non-negative integer, got ${threads}`);
  }
  const engine = options.engine ?? 'sequence';
  if (engine !== 'sequence' && engine !== 'stepwise') {
    throw new WhisperError('E_OPTIONS', `VAD option engine must be "sequence" or "stepwise", got ${String(engine)}`);
  }
  const version = options.version ?? 'v5';
  if (version !== 'v5' && version !== 'v6') {
    throw new WhisperError('E_OPTIONS', `VAD option version must be "v5" or "v6", got ${String(version)}`);
  }
  const path = options.modelPath ?? sileroModelPath(version);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'E_MODEL_FILE_MISSING' : 'E_IO';
    throw new WhisperError(code, `cannot read the Silero VAD model ${path}: ${String(cause)}`, { cause });
  }

  if (engine === 'sequence') {
    let rewritten: Uint8Array | undefined;
    try {
      rewritten = buildSequenceModel(bytes).bytes;
    } catch (err) {
      if (!(err instanceof SileroGraphError)) throw err;
      // not the structure we know (another export of Silero): run the file as it is, window by window
    }
    if (rewritten !== undefined) {
      try {
        return new VadModel(await createSession(rewritten, { threads }), 'sequence', path);
      } catch {
        // ONNX Runtime refused the rewrite: fall back to the file as shipped
      }
    }
  }
  const session = await createSession(bytes, { threads });
  const inputs = [...session.inputNames].sort().join(', ');
  if (inputs !== 'input, sr, state') {
    await session.release();
    throw new WhisperError(
      'E_MODEL_INVALID',
      `${path} is not a Silero VAD v5/v6 model (inputs input, state, sr); its inputs are ${inputs}`,
    );
  }
  return new VadModel(session, 'stepwise', path);
}
