import * as ort from 'onnxruntime-node';
import { WhisperError } from '../errors.js';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionOptions {
  /** Intra-op threads; 0 lets ONNX Runtime choose. */
  threads?: number;
  device?: ExecutionProvider;
}

/** Creates an ONNX Runtime session from a file path or bytes, with whisper-ts's defaults. */
export async function createSession(
  model: string | Uint8Array,
  options: SessionOptions = {},
): Promise<ort.InferenceSession> {
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [options.device === 'cuda' ? 'cuda' : 'cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: options.threads ?? 0,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  try {
    return typeof model === 'string'
      ? await ort.InferenceSession.create(model, sessionOptions)
      : await ort.InferenceSession.create(model, sessionOptions);
  } catch (cause) {
    const what = typeof model === 'string' ? model : 'an in-memory model';
    throw new WhisperError('E_MODEL_LOAD', `ONNX Runtime could not load ${what}: ${String(cause)}`, { cause });
  }
}

export { ort };
