/**
 * Logit filters applied before each token is chosen, ported from openai/whisper decoding.py (SuppressBlank,
 * SuppressTokens, ApplyTimestampRules). Each works on one row of logits in place.
 */
export interface LogitFilter {
  /**
   * @param logits one row of logits [vocab], changed in place
   * @param sampled the row's tokens after the start-of-transcript sequence: the forced ones (a timestamp and a prefix)
   *   and those chosen so far
   * @param stats where a filter that computes the row's log-normaliser anyway leaves it (for the filtered row), so
   *   that the token chooser need not compute it again; the decoding loop clears it before each filter
   */
  apply(logits: Float32Array, sampled: readonly number[], stats?: RowStats): void;
}

/** What the last filter learnt about a row: its log Σ exp (NaN: unknown). */
export interface RowStats {
  logZ: number;
}

/**
 * openai/whisper decoding.py SuppressBlank: no blank or end-of-text as the first chosen token (the first after the
 * `sampleBegin` forced ones).
 */
export class SuppressBlank implements LogitFilter {
  constructor(
    private readonly tokens: readonly number[],
    private readonly sampleBegin = 0,
  ) {}
  apply(logits: Float32Array, sampled: readonly number[]): void {
    if (sampled.length === this.sampleBegin) for (const t of this.tokens) logits[t] = -Infinity;
  }
}

/**
 * CTranslate2 decoding_utils.cc RepetitionPenalty (faster-whisper's `repetition_penalty`): every token already in the
 * row (forced prefix included, the previous-text prompt not) has its logit divided by the penalty when positive and
 * multiplied by it when negative.
 */
export class RepetitionPenalty implements LogitFilter {
  constructor(private readonly penalty: number) {}
  apply(logits: Float32Array, sampled: readonly number[]): void {
    const seen = new Set(sampled);
    for (const t of seen) {
      const v = logits[t] as number;
      logits[t] = v < 0 ? v * this.penalty : v / this.penalty;
    }
  }
}

/**
 * CTranslate2 decoding_utils.cc NoRepeatNgram (faster-whisper's `no_repeat_ngram_size`): a token that would complete an
 * n-gram already present in the row (forced prefix included) is disabled.
 */
export class NoRepeatNgram implements LogitFilter {
  constructor(private readonly size: number) {}
  apply(logits: Float32Array, sampled: readonly number[]): void {
    const n = this.size;
    const len = sampled.length;
    if (n < 1 || len < n) return;
    // the last n-1 tokens; every earlier occurrence of them bans the token that followed it
    const tail = len - (n - 1);
    for (let start = 0; start + n - 1 < len; start++) {
      let match = true;
      for (let k = 0; k < n - 1; k++) {
        if (sampled[start + k] !== sampled[tail + k]) {
          match = false;
          break;
        }
      }
      if (match) logits[sampled[start + n - 1] as number] = -Infinity;
    }
  }
}

/** openai/whisper decoding.py SuppressTokens. */
export class SuppressTokens implements LogitFilter {
  constructor(private readonly tokens: readonly number[]) {}
  apply(logits: Float32Array): void {
    for (const t of this.tokens) if (t < logits.length) logits[t] = -Infinity;
  }
}

/** openai/whisper decoding.py ApplyTimestampRules. */
export class ApplyTimestampRules implements LogitFilter {
  constructor(
    private readonly eot: number,
    private readonly noTimestamps: number,
    private readonly timestampBegin: number,
    private readonly maxInitialTimestampIndex: number | undefined,
  ) {}

  apply(logits: Float32Array, seq: readonly number[], stats?: RowStats): void {
    const tb = this.timestampBegin;
    const vocab = logits.length;
    logits[this.noTimestamps] = -Infinity;
    // timestamps come in pairs, except directly before end-of-text
    const n = seq.length;
    const lastWasTs = n >= 1 && (seq[n - 1] as number) >= tb;
    const penultimateWasTs = n < 2 || (seq[n - 2] as number) >= tb;
    if (lastWasTs) {
      if (penultimateWasTs) logits.fill(-Infinity, tb, vocab);
      else logits.fill(-Infinity, 0, this.eot);
    }
    let lastTs = -1;
    for (let i = n - 1; i >= 0; i--) {
      if ((seq[i] as number) >= tb) {
        lastTs = seq[i] as number;
        break;
      }
    }
    if (lastTs >= 0) {
      // timestamps never decrease, and each segment has a nonzero length
      const until = lastWasTs && !penultimateWasTs ? lastTs : lastTs + 1;
      logits.fill(-Infinity, tb, until);
    }
    if (n === 0) {
      logits.fill(-Infinity, 0, tb);
      if (this.maxInitialTimestampIndex !== undefined) {
        logits.fill(-Infinity, tb + this.maxInitialTimestampIndex + 1, vocab);
      }
    }
    // if the timestamps together are likelier than any single text token, sample a timestamp; both sides of
    // openai's log-probability comparison share the row's normaliser, so log Σ exp over the timestamps is enough
    let tsMax = -Infinity;
    for (let i = tb; i < vocab; i++) if ((logits[i] as number) > tsMax) tsMax = logits[i] as number;
    if (tsMax === -Infinity) return;
    let tsSum = 0;
    for (let i = tb; i < vocab; i++) tsSum += Math.exp((logits[i] as number) - tsMax);
    const timestampLogSum = tsMax + Math.log(tsSum);
    let textMax = -Infinity;
    for (let i = 0; i < tb; i++) if ((logits[i] as number) > textMax) textMax = logits[i] as number;
    if (timestampLogSum > textMax) {
      logits.fill(-Infinity, 0, tb);
      // what is left is the timestamps: the same sum, in the same order, as a log Σ exp of the row would take
      if (stats) stats.logZ = timestampLogSum;
    }
  }
}

/** log-softmax of a row, in float64 for the sums. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if ((logits[i] as number) > max) max = logits[i] as number;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i] as number) - max);
  const logZ = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = (logits[i] as number) - logZ;
  return out;
}

/** log-probability of one token under a row's softmax (avoids allocating the full row). */
export function tokenLogprob(logits: Float32Array, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if ((logits[i] as number) > max) max = logits[i] as number;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp((logits[i] as number) - max);
  return (logits[token] as number) - max - Math.log(sum);
}

export function argmax(row: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * log Σ exp of a filtered row, from `z`, the log Σ exp of the same row before the filters (computed by the decoder,
 * model `DecoderOutput.logSumExp`): the filters disable tokens (−∞) and rescale a few, so only the entries they
 * changed are visited: Σ exp(filtered − z) = 1 + Σ over changed entries of exp(filtered − z) − exp(raw − z). Where
 * the changed entries held half the mass or more, that difference would lose precision: the row is summed directly.
 */
export function filteredLogZ(raw: Float32Array, filtered: Float32Array, z: number): number {
  if (!Number.isFinite(z)) return logSumExp(filtered);
  let removed = 0;
  let delta = 0;
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i] as number;
    const b = filtered[i] as number;
    if (a === b) continue;
    const ea = Math.exp(a - z);
    removed += ea;
    delta += Math.exp(b - z) - ea;
  }
  if (removed >= 0.5) return logSumExp(filtered);
  return z + Math.log(1 + delta);
}

/**
 * log Σ exp(row), in float64. Disabled (−∞) entries are skipped rather than exponentiated: a row whose text tokens the
 * timestamp rules disabled (50k of 51865 entries) sums 3× faster.
 */
export function logSumExp(row: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if ((row[i] as number) > max) max = row[i] as number;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number;
    if (v !== -Infinity) sum += Math.exp(v - max);
  }
  return max + Math.log(sum);
}

/**
 * The `k` largest entries of a row, largest first (ties: lower index first; -Infinity entries too when fewer are
 * finite, as torch.topk). One pass with a small sorted buffer: k is a beam size.
 */
export function topK(row: Float32Array, k: number): { index: number; value: number }[] {
  const idx = new Int32Array(k).fill(-1);
  const val = new Float64Array(k).fill(-Infinity);
  let filled = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i] as number;
    if (filled === k && v <= (val[k - 1] as number)) continue;
    let at = filled < k ? filled : k - 1;
    while (at > 0 && (val[at - 1] as number) < v) {
      val[at] = val[at - 1] as number;
      idx[at] = idx[at - 1] as number;
      at--;
    }
    val[at] = v;
    idx[at] = i;
    if (filled < k) filled++;
  }
  const out: { index: number; value: number }[] = [];
  for (let j = 0; j < filled; j++) out.push({ index: idx[j] as number, value: val[j] as number });
  return out;
}
