/**
 * The dtype table lives in `src/dtypes.ts` (shared with the model loader); the hub re-exports it so that callers of
 * the hub API find it here too, and adds what the hub needs on top: the default for pulls and the file names.
 */
import { DTYPE_SUFFIX, type Dtype } from '../dtypes.js';

export { DTYPE_SUFFIX, DTYPES, isDtype, type Dtype } from '../dtypes.js';

/**
 * What `pullModel` fetches when no dtype is given: the 8-bit files, the smallest download. They cost accuracy on the
 * small models (whisper-base long-form English: 15.86 % WER against 12.75 % in fp32, and coarser timestamps; see the
 * README's Benchmarks): ask for fp32 when that matters.
 */
export const DEFAULT_PULL_DTYPE: Dtype = 'q8';

/** The two ONNX graphs of a dtype, as repo paths. */
export function onnxFilesFor(dtype: Dtype): { encoder: string; decoder: string } {
  const suffix = DTYPE_SUFFIX[dtype];
  return { encoder: `onnx/encoder_model${suffix}.onnx`, decoder: `onnx/decoder_model_merged${suffix}.onnx` };
}

/**
 * External-data files that belong to an ONNX file: `model.onnx_data`, `model.onnx_data_1`, … (the names
 * transformers.js and Optimum write). True when `candidate` is one of them for `onnxPath`.
 */
export function isExternalDataOf(onnxPath: string, candidate: string): boolean {
  if (!candidate.startsWith(`${onnxPath}_data`)) return false;
  const rest = candidate.slice(onnxPath.length + '_data'.length);
  return rest === '' || /^_\d+$/.test(rest);
}

/** The dtypes whose encoder and merged decoder are both among `paths`. */
export function dtypesPresent(paths: Iterable<string>): Dtype[] {
  const set = new Set(paths);
  return (Object.keys(DTYPE_SUFFIX) as Dtype[]).filter((dtype) => {
    const { encoder, decoder } = onnxFilesFor(dtype);
    return set.has(encoder) && set.has(decoder);
  });
}
