import type { ort } from '../runtime/session.js';

/**
 * The decoder's key/value cache for one call: self-attention keys/values that grow by one position per step, and the
 * cross-attention keys/values computed once from the encoder output at the first step. Never shared between calls.
 */
export class KvCache {
  /** present.{i}.decoder.{key,value} of the last step, fed back as past_key_values.{i}.decoder.* */
  decoder: Map<string, ort.Tensor> = new Map();
  /** present.{i}.encoder.{key,value} from the first step. */
  encoder: Map<string, ort.Tensor> = new Map();
  /** Number of positions already in the self-attention cache. */
  length = 0;

  constructor(
    readonly batch: number,
    readonly encoderHidden: ort.Tensor,
  ) {}

  get started(): boolean {
    return this.length > 0;
  }
}
