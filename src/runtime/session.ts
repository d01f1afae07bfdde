import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { WhisperError } from '../errors.js';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface SessionOptions {
  /** Intra-op threads; 0 lets ONNX Runtime choose. */
  threads?: number;
  device?: ExecutionProvider;
}

/** onnxruntime-node's package folder. */
function ortPackageDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node')), '..');
}

/**
 * Where onnxruntime-node's CUDA provider library would be: its install script downloads it (Linux x64, CUDA 12) unless
 * installation is skipped, so a package installed with `onnxruntime-node-install=skip` has none.
 */
export function cudaProviderPath(): string {
  const file = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return join(ortPackageDir(), 'bin', 'napi-v6', process.platform, process.arch, file);
}

function cudaHint(): string {
  return (
    `install it with \`ONNXRUNTIME_NODE_INSTALL=cuda12 node ${join(ortPackageDir(), 'script', 'install.js')}\` ` +
    '(Linux x64; it downloads the provider, and needs CUDA 12 and cuDNN 9 on the library path), or use device cpu'
  );
}

/** Refuses a device this install of ONNX Runtime cannot run, before any model is read. */
export function assertDeviceAvailable(device: ExecutionProvider | undefined): void {
  if (device !== 'cuda') return;
  const path = cudaProviderPath();
  if (!existsSync(path)) {
    throw new WhisperError('E_OPTIONS', `device 'cuda' is not available: onnxruntime-node has no CUDA provider (${path} is missing); ${cudaHint()}`);
  }
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
    // No CPU memory arena: each run's activation block (one, planned by the memory pattern) comes from malloc and goes
    // back to it. The arena kept every block it ever grew — in power-of-two steps, and once per shape a live buffer
    // took — so a stream's resident memory kept rising with the longest buffer it had seen (+62–108 MiB over
    // longform_en played live) and a file transcription peaked higher. Measured on the 2-core box, longform_en,
    // whisper-base q8, 5 alternating runs: wall time the same (ratio 1.00), peak RSS 791 → 677 MiB sequential and
    // 1299 → 997 MiB at --batch-size 8; a live stream's memory rises only where a heavier step first comes (a
    // longer buffer, sampled rows), as bench/stream-soak.mjs shows (550–610 MB over 15 minutes).
    enableCpuMemArena: false,
  };
  assertDeviceAvailable(options.device);
  try {
    return typeof model === 'string'
      ? await ort.InferenceSession.create(model, sessionOptions)
      : await ort.InferenceSession.create(model, sessionOptions);
  } catch (cause) {
    // the CUDA provider's own failure (ExecutionProvider_Cuda, libonnxruntime_providers_cuda, libcudart, cudnn)
    if (options.device === 'cuda' && /ExecutionProvider_Cuda|providers_cuda|libcu|cudnn/i.test(String(cause))) {
      throw new WhisperError('E_OPTIONS', `device 'cuda': ONNX Runtime's CUDA provider did not start (${String(cause)}); ${cudaHint()}`, { cause });
    }
    const what = typeof model === 'string' ? model : 'an in-memory model';
    throw new WhisperError('E_MODEL_LOAD', `ONNX Runtime could not load ${what}: ${String(cause)}`, { cause });
  }
}

export { ort };
