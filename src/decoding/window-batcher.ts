import { WhisperError } from '../errors.js';
import type { WhisperModel } from '../model/whisper-model.js';
import { ort } from '../runtime/session.js';
import { decodeBatch } from './batch.js';
import { decodeWindow, type DecodeWindowOptions, type DecodingResult } from './decode.js';

/** Decodes one 30-s window (the sequential loop's decoder, replaceable by a batching one). */
export type WindowDecoder = (encoderHidden: ort.Tensor, options: DecodeWindowOptions) => Promise<DecodingResult>;

export interface WindowBatcherStats {
  /** Windows decoded through the batcher. */
  windows: number;
  /** Decoder batches run with more than one window. */
  batches: number;
  /** Windows decoded in those batches. */
  batchedWindows: number;
  /** The most windows one batch held. */
  largestBatch: number;
}

interface Pending {
  hidden: ort.Tensor;
  options: DecodeWindowOptions;
  resolve(result: DecodingResult): void;
  reject(err: unknown): void;
}

/**
 * Batches the windows of concurrent calls on one model into shared decoder runs: every greedy window that asks for
 * the decoder in the same turn of the event loop joins one `decodeBatch` (each row with its own language and
 * previous-text prompt, left-padded to one length), so N calls cost about one call's decoder steps with N rows.
 *
 * Concurrent calls reach the decoder together by themselves: each awaits the encoder (ONNX Runtime runs it on its
 * own turn), and the calls of one batch get their results at once and go on in step. Windows that cannot share a
 * batch run alone through `decodeWindow`, unchanged: sampling (temperature > 0), beam search, filters of their own, or
 * shared options (task, prefix, suppression …) that differ from every other window waiting.
 *
 * The rows of a batch are not bit-for-bit what each would give alone: the q8 decoder quantizes each activation
 * tensor with one scale for the whole batch, so the rows nudge one another's numerics (the same holds for beams and
 * for the batched pipeline). A caller's AbortSignal is checked before its window joins a batch and when the batch
 * ends; the others' rows are never stopped by it.
 */
export class WindowBatcher {
  readonly stats: WindowBatcherStats = { windows: 0, batches: 0, batchedWindows: 0, largestBatch: 0 };
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(
    private readonly model: WhisperModel,
    /** The most windows in one decoder batch. */
    private readonly maxRows = 16,
  ) {}

  /** The `WindowDecoder` of this batcher. */
  readonly decode: WindowDecoder = (hidden, options) => {
    this.stats.windows++;
    if (!WindowBatcher.batchable(hidden, options)) return decodeWindow(this.model, hidden, options, ort);
    return new Promise<DecodingResult>((resolve, reject) => {
      this.pending.push({ hidden, options, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  };

  /** Greedy, one row, no filters of its own: the windows `decodeBatch` decodes as `decodeWindow` would. */
  static batchable(hidden: ort.Tensor, o: DecodeWindowOptions): boolean {
    return (
      hidden.dims[0] === 1 &&
      o.temperature === 0 &&
      (o.beamSize ?? 1) === 1 &&
      (o.extraFilters === undefined || o.extraFilters.length === 0)
    );
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const waiting = this.pending.splice(0);
    const groups = new Map<string, Pending[]>();
    for (const p of waiting) {
      if (p.options.signal?.aborted) {
        p.reject(new WhisperError('E_ABORTED', 'the operation was aborted', { cause: p.options.signal.reason }));
        continue;
      }
      const key = `${p.hidden.type} ${p.hidden.dims.join('x')} ${sharedOptionsKey(p.options)}`;
      const group = groups.get(key);
      if (group) group.push(p);
      else groups.set(key, [p]);
    }
    const runs: Promise<void>[] = [];
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += this.maxRows) runs.push(this.run(group.slice(i, i + this.maxRows)));
    }
    await Promise.all(runs);
  }

  private async run(rows: Pending[]): Promise<void> {
    const first = rows[0] as Pending;
    if (rows.length === 1) {
      await decodeWindow(this.model, first.hidden, first.options, ort).then(first.resolve, first.reject);
      return;
    }
    this.stats.batches++;
    this.stats.batchedWindows += rows.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, rows.length);
    try {
      const { signal: _ignored, ...shared } = first.options;
      const results = await decodeBatch(
        this.model,
        concatRows(rows.map((r) => r.hidden)),
        {
          ...shared,
          languages: rows.map((r) => r.options.language),
          prompts: rows.map((r) => r.options.prompt),
          compactBelow: 0.5,
        },
        ort,
      );
      rows.forEach((r, i) => {
        if (r.options.signal?.aborted) {
          r.reject(new WhisperError('E_ABORTED', 'the operation was aborted', { cause: r.options.signal.reason }));
        } else r.resolve(results[i] as DecodingResult);
      });
    } catch (err) {
      for (const r of rows) r.reject(err);
    }
  }
}

/** The options every row of one batch must share (language and prompt are per row). */
function sharedOptionsKey(o: DecodeWindowOptions): string {
  return JSON.stringify([
    o.task,
    o.prefix,
    o.hotwords ?? [],
    o.withoutTimestamps,
    o.suppressTokens,
    o.suppressBlank,
    o.maxInitialTimestamp,
    o.maxNewTokens,
    o.repetitionPenalty ?? 1,
    o.noRepeatNgramSize ?? 0,
  ]);
}

/** One-row encoder outputs [1, positions, dModel] stacked into [rows, positions, dModel]. */
function concatRows(tensors: readonly ort.Tensor[]): ort.Tensor {
  const first = tensors[0] as ort.Tensor;
  const data = first.data;
  if (!(data instanceof Float32Array) && !(data instanceof Uint16Array)) {
    throw new TypeError(`encoder outputs of type ${first.type} cannot be batched`);
  }
  const out = data instanceof Float32Array ? new Float32Array(data.length * tensors.length) : new Uint16Array(data.length * tensors.length);
  tensors.forEach((t, i) => out.set(t.data as Float32Array, i * data.length));
  return new ort.Tensor(first.type as 'float32', out as Float32Array, [tensors.length, ...first.dims.slice(1)]);
}
