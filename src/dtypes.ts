/**
 * Weight variants of an onnx-community Whisper export, by the names transformers.js uses, and the file-name suffix
 * each one has (`onnx/encoder_model{suffix}.onnx`). Shared by the model loader and the hub client.
 */
export const DTYPE_SUFFIX = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
} as const;

export type Dtype = keyof typeof DTYPE_SUFFIX;

export const DTYPES = Object.keys(DTYPE_SUFFIX) as Dtype[];

/**
 * The order in which a model folder's variants are preferred when no dtype is asked for, on the CPU: the 8-bit
 * files first (smallest download; by default the decoder on float activations and the encoder on per-row 8-bit ones,
 * within 0.3 WER points of fp32 on long-form base, see runtime/optimize), then fp32, then the rest.
 */
export const CPU_DTYPE_PREFERENCE: readonly Dtype[] = ['q8', 'int8', 'uint8', 'fp32', 'q4', 'fp16', 'q4f16', 'bnb4'];

export function isDtype(value: string): value is Dtype {
  return Object.hasOwn(DTYPE_SUFFIX, value);
}
