/**
 * The k likeliest tokens of each decoding row with their log-probabilities: what beam search needs every step. A
 * log-softmax over 51 865 logits per beam is the costliest arithmetic outside the decoder; ONNX Runtime's LogSoftmax
 * (vectorised exp) and TopK do it for all rows at once about ten times faster than a JavaScript loop. Used where the
 * rows' normalisers are unknown: a rewritten decoder outputs log Σ exp (runtime/optimize `addLogSumExp`), and beam
 * search then needs only each row's k best logits (`BeamSearchChooser`).
 */
import { encodeModel, type ModelProto } from '../runtime/onnx-proto.js';
import { createSession, ort } from '../runtime/session.js';
import { logSumExp, topK } from './logit-filters.js';

export interface TopEntry {
  index: number;
  logprob: number;
}

/** The `k` largest log-probabilities of each of `rows` rows of `logits` ([rows, vocab]), largest first. */
export type TopLogprobs = (logits: Float32Array, rows: number, vocab: number, k: number) => Promise<TopEntry[][]>;

/** In JavaScript, float64 throughout (for tests and as the fallback). */
export const jsTopLogprobs: TopLogprobs = (logits, rows, vocab, k) =>
  Promise.resolve(
    Array.from({ length: rows }, (_, r) => {
      const row = logits.subarray(r * vocab, (r + 1) * vocab);
      const z = logSumExp(row);
      return topK(row, k).map(({ index, value }) => ({ index, logprob: value - z }));
    }),
  );

/** logits [r, v] → LogSoftmax → TopK(k) → values [r, k], indices [r, k]. */
function graph(): Uint8Array {
  const dims = (...names: (string | number)[]): { dim: object[] } => ({
    dim: names.map((n) => (typeof n === 'number' ? { dim_value: n } : { dim_param: n })),
  });
  const value = (name: string, elemType: number, shape: { dim: object[] }): object => ({
    name,
    type: { tensor_type: { elem_type: elemType, shape } },
  });
  const model = {
    ir_version: 8,
    opset_import: [{ domain: '', version: 17 }],
    graph: {
      name: 'top_logprobs',
      node: [
        { op_type: 'LogSoftmax', input: ['logits'], output: ['logprobs'], attribute: [{ name: 'axis', type: 2, i: -1 }] },
        {
          op_type: 'TopK',
          input: ['logprobs', 'k'],
          output: ['values', 'indices'],
          attribute: [{ name: 'axis', type: 2, i: -1 }],
        },
      ],
      input: [value('logits', 1, dims('rows', 'vocab')), value('k', 7, dims(1))],
      output: [value('values', 1, dims('rows', 'k')), value('indices', 7, dims('rows', 'k'))],
      initializer: [],
      value_info: [],
    },
  };
  return encodeModel(model as unknown as ModelProto);
}

let session: Promise<ort.InferenceSession> | undefined;

/**
 * Through ONNX Runtime (one small session per process, one thread: the op is memory-bound). Log-probabilities are
 * float32 here (as PyTorch's log_softmax in openai/whisper and transformers); a session that fails to start leaves
 * the JavaScript path in charge.
 */
export const ortTopLogprobs: TopLogprobs = async (logits, rows, vocab, k) => {
  session ??= createSession(graph(), { threads: 1 });
  let s: ort.InferenceSession;
  try {
    s = await session;
  } catch {
    return jsTopLogprobs(logits, rows, vocab, k);
  }
  const out = await s.run({
    logits: new ort.Tensor('float32', logits.subarray(0, rows * vocab), [rows, vocab]),
    k: new ort.Tensor('int64', BigInt64Array.of(BigInt(k)), [1]),
  });
  const values = out.values?.data as Float32Array;
  const indices = out.indices?.data as BigInt64Array;
  const kk = values.length / rows;
  return Array.from({ length: rows }, (_, r) =>
    Array.from({ length: kk }, (_, j) => ({
      index: Number(indices[r * kk + j]),
      logprob: values[r * kk + j] as number,
    })),
  );
};
