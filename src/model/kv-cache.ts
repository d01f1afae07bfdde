import { ort } from '../runtime/session.js';

/** The typed arrays ONNX Runtime hands out for float tensors (float32, float16 as raw Uint16 bits). */
type RowData = Float32Array | Uint16Array;

function rowData(t: ort.Tensor): RowData {
  const d = t.data;
  if (d instanceof Float32Array || d instanceof Uint16Array) return d;
  throw new TypeError(`a cache tensor of type ${t.type} cannot be reordered`);
}

function newLike(d: RowData, length: number): RowData {
  return d instanceof Float32Array ? new Float32Array(length) : new Uint16Array(length);
}

/**
 * Positions a cache with spare room grows by when full. The decoder attends to the spare positions too (masked), so
 * fewer is cheaper per step (a step of 8 rows: 35.8 ms at 20 positions, ~0.03 ms more per position on the development
 * box); more means fewer reallocations, each a copy of the whole past.
 */
const SPARE_POSITIONS = 16;

/**
 * The decoder's key/value cache for one call: self-attention keys/values that grow by one position per step, and the
 * cross-attention keys/values computed once from the encoder output at the first step. Never shared between calls.
 *
 * Rows are decoding hypotheses (beams or samples). The prompt is run once with one row and `expand`ed; beam search
 * then `reorder`s the self-attention rows after each step. The cross-attention keys/values are the same for every row
 * of one audio window, so they keep one row: the decoder's MatMuls broadcast it over the batch (checked by
 * `WhisperModel.decode`, which expands them once if a graph does not broadcast).
 */
export class KvCache {
  /** present.{i}.decoder.{key,value} of the last step, fed back as past_key_values.{i}.decoder.* */
  decoder: Map<string, ort.Tensor> = new Map();
  /** present.{i}.encoder.{key,value} from the first step. */
  encoder: Map<string, ort.Tensor> = new Map();
  /** Number of positions already in the self-attention cache. */
  length = 0;
  private rows: number;
  /** Positions that are the same in every row (the prompt, run once before `expand`). */
  private shared = 0;
  /**
   * Padding positions at the start of each row (rows of different prompt lengths left-padded to one length); empty
   * when no row is padded. Needs a decoder with padding inputs (runtime/optimize `addPaddingInputs`).
   */
  padding: readonly number[] = [];

  constructor(
    batch: number,
    readonly encoderHidden: ort.Tensor,
    /**
     * Whether the self-attention tensors may hold more positions than `length` (see `capacity`): only for a decoder
     * whose `attention_bias` input masks the unused ones (`WhisperModel.decode` does).
     */
    readonly spare = false,
  ) {
    this.rows = batch;
  }

  /**
   * Positions the self-attention tensors hold: `length`, or more when the cache was made with `spare` room: the
   * positions after `length` are unused (zeros or stale values, always finite), and the decoder must mask them.
   * Appending then writes a step's positions in place instead of copying the whole past every step, and the tensors
   * are reallocated (`SPARE_POSITIONS` larger) only when they are full.
   */
  get capacity(): number {
    const first = this.decoder.values().next().value;
    return first?.dims[2] ?? this.length;
  }

  /**
   * Appends a step's keys or values [rows, heads, n, headDim] to the cached past `name` [rows, heads, length,
   * headDim] (what the decoder's Concat computes for its `present` output, built here from its smaller `step`
   * output). Every tensor of one step is appended before `length` moves on.
   */
  append(name: string, step: ort.Tensor): void {
    if (this.spare) {
      this.appendInPlace(name, step);
      return;
    }
    const past = this.decoder.get(name);
    if (past === undefined) {
      this.decoder.set(name, step);
      return;
    }
    const [rows = 1, heads = 1, length = 0, headDim = 0] = past.dims;
    const n = step.dims[2] ?? 0;
    const a = rowData(past);
    const b = rowData(step);
    const out = this.spareBuffer(name, a, rows * heads * (length + n) * headDim, rows * heads * headDim);
    const oldSpan = length * headDim;
    const newSpan = n * headDim;
    for (let i = 0; i < rows * heads; i++) {
      const at = i * (oldSpan + newSpan);
      out.set(a.subarray(i * oldSpan, (i + 1) * oldSpan), at);
      out.set(b.subarray(i * newSpan, (i + 1) * newSpan), at + oldSpan);
    }
    this.decoder.set(name, new ort.Tensor(past.type as 'float32', out as Float32Array, [rows, heads, length + n, headDim]));
  }

  /** `append` for a cache with spare room: the step's positions are written after `length`. */
  private appendInPlace(name: string, step: ort.Tensor): void {
    const [rows = 1, heads = 1, n = 0, headDim = 0] = step.dims;
    const b = rowData(step);
    let past = this.decoder.get(name);
    const length = past === undefined ? 0 : this.length;
    const capacity = past?.dims[2] ?? 0;
    if (past === undefined || length + n > capacity) {
      // room for more positions: a reallocation (and a copy of the past) every SPARE_POSITIONS steps at most
      const grown = length + n + SPARE_POSITIONS;
      const out = newLike(b, rows * heads * grown * headDim);
      if (past !== undefined) {
        const a = rowData(past);
        for (let i = 0; i < rows * heads; i++) {
          out.set(a.subarray(i * capacity * headDim, (i * capacity + length) * headDim), i * grown * headDim);
        }
      }
      past = new ort.Tensor(step.type as 'float32', out as Float32Array, [rows, heads, grown, headDim]);
      this.decoder.set(name, past);
    }
    const out = rowData(past);
    const span = (past.dims[2] ?? 0) * headDim;
    const newSpan = n * headDim;
    for (let i = 0; i < rows * heads; i++) {
      out.set(b.subarray(i * newSpan, (i + 1) * newSpan), i * span + length * headDim);
    }
  }

  /**
   * Forgets the self-attention positions from `length` on (draft tokens the decoder did not confirm, decoding/decode.ts).
   * With spare room the positions stay where they are, masked, and the next step overwrites them; otherwise the
   * tensors are cut to `length` positions.
   */
  rewind(length: number): void {
    if (!Number.isInteger(length) || length < this.shared || length > this.length) {
      throw new RangeError(`cannot rewind a cache of ${this.length} positions to ${length}`);
    }
    if (length === this.length) return;
    if (!this.spare) {
      for (const [name, t] of this.decoder) {
        const [rows = 1, heads = 1, positions = 0, headDim = 0] = t.dims;
        const d = rowData(t);
        const out = newLike(d, rows * heads * length * headDim);
        for (let i = 0; i < rows * heads; i++) {
          out.set(d.subarray(i * positions * headDim, (i * positions + length) * headDim), i * length * headDim);
        }
        this.decoder.set(name, new ort.Tensor(t.type as 'float32', out as Float32Array, [rows, heads, length, headDim]));
      }
    }
    this.length = length;
  }

  /**
   * Buffers `append` writes into, two per tensor used in turn: the past of one step is the spare of the next. Reusing
   * them (instead of a new array per step) keeps the megabytes each step moves out of the allocator and the garbage
   * collector, which cost more than the copy itself.
   */
  private spares = new Map<string, RowData[]>();

  private spareBuffer(name: string, current: RowData, size: number, perPosition: number): RowData {
    const pair = this.spares.get(name) ?? [];
    let buffer = pair.find((p) => p.buffer !== current.buffer && p.length >= size);
    if (buffer === undefined) {
      // room for 64 more positions, so that a buffer is reallocated every 64 steps at most
      buffer = newLike(current, size + 64 * perPosition);
      this.spares.set(name, [...pair.filter((p) => p.buffer === current.buffer), buffer]);
    }
    return buffer.subarray(0, size);
  }

  private scratch: RowData | undefined;

  /** A buffer of at least `size` elements of `like`'s type, reused by every reorder of this cache. */
  private reorderScratch(like: RowData, size: number): RowData {
    if (this.scratch === undefined || this.scratch.length < size || this.scratch.constructor !== like.constructor) {
      this.scratch = newLike(like, size + Math.ceil(size / 2));
    }
    return this.scratch;
  }

  /** The rows `rows` of the padding, for a cache that keeps only those rows. */
  paddingOf(rows: readonly number[]): number[] {
    return this.padding.length === 0 ? [] : rows.map((r) => this.padding[r] ?? 0);
  }

  /** Rows (hypotheses) the next decoder step runs. */
  get batch(): number {
    return this.rows;
  }

  get started(): boolean {
    return this.length > 0;
  }

  /** Rows of the cross-attention keys/values (1 while they are shared by every row). */
  get encoderBatch(): number {
    const first = this.encoder.values().next().value;
    return first?.dims[0] ?? this.rows;
  }

  /**
   * Turns a one-row cache into `n` identical rows (after the prompt step). The cross-attention keys/values stay one
   * shared row.
   */
  expand(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`cannot expand a cache to ${n} rows`);
    if (n === this.rows) return;
    if (this.rows !== 1) throw new RangeError(`only a one-row cache can be expanded (it has ${this.rows})`);
    this.shared = this.length;
    for (const [name, t] of this.decoder) {
      const d = rowData(t);
      const out = newLike(d, d.length * n);
      for (let r = 0; r < n; r++) out.set(d, r * d.length);
      this.decoder.set(name, new ort.Tensor(t.type as 'float32', out, [n, ...t.dims.slice(1)]));
    }
    if (this.padding.length > 0) this.padding = new Array<number>(n).fill(this.padding[0] ?? 0);
    this.rows = n;
  }

  /**
   * Gives the cross-attention keys/values one row per decoding row (for graphs whose MatMul does not broadcast a
   * one-row batch). Done at most once per window.
   */
  expandEncoder(): void {
    for (const [name, t] of this.encoder) {
      if (t.dims[0] === this.rows) continue;
      const d = rowData(t);
      const out = newLike(d, d.length * this.rows);
      for (let r = 0; r < this.rows; r++) out.set(d, r * d.length);
      this.encoder.set(name, new ort.Tensor(t.type as 'float32', out, [this.rows, ...t.dims.slice(1)]));
    }
  }

  /**
   * Row `i` of the self-attention cache becomes the old row `sources[i]` (openai/whisper decoding.py
   * PyTorchInference.rearrange_kv_cache). Works in place on the tensors' data [rows, heads, positions, headDim] and
   * copies only the rows that change, and of them only the positions after the shared prompt.
   */
  reorder(sources: readonly number[]): void {
    if (sources.length !== this.rows) {
      throw new RangeError(`reorder needs ${this.rows} source rows, got ${sources.length}`);
    }
    const moved: number[] = [];
    for (let i = 0; i < sources.length; i++) {
      const s = sources[i] as number;
      if (!Number.isInteger(s) || s < 0 || s >= this.rows) throw new RangeError(`source row ${s} out of range`);
      if (s !== i) moved.push(i);
    }
    if (moved.length === 0) return;
    // a row read by some target but overwritten first has to be saved before the copies
    const overwritten = new Set(moved);
    const saved = new Set<number>();
    for (const i of moved) {
      const s = sources[i] as number;
      if (overwritten.has(s)) saved.add(s);
    }
    const savedRows = [...saved];
    for (const t of this.decoder.values()) {
      const d = rowData(t);
      const [, heads = 1, positions = 0, headDim = 0] = t.dims;
      const size = d.length / this.rows; // one row
      const span = size / heads; // one head of one row: positions × headDim
      const skip = headDim * Math.min(this.shared, positions);
      const used = headDim * Math.min(this.length, positions); // spare positions after `length` are not copied
      const part = used - skip; // what one head of one row holds after the shared prompt
      // the saved rows' parts, one after the other in a buffer kept for the next reorder
      const scratch = this.reorderScratch(d, savedRows.length * heads * part);
      savedRows.forEach((s, k) => {
        for (let h = 0; h < heads; h++) {
          const begin = s * size + h * span + skip;
          scratch.set(d.subarray(begin, begin + part), (k * heads + h) * part);
        }
      });
      for (const i of moved) {
        const s = sources[i] as number;
        const k = savedRows.indexOf(s);
        for (let h = 0; h < heads; h++) {
          const from = k >= 0 ? (k * heads + h) * part : s * size + h * span + skip;
          d.set((k >= 0 ? scratch : d).subarray(from, from + part), i * size + h * span + skip);
        }
      }
    }
  }
}
