import { WhisperError } from '../errors.js';
import {
  AttributeType,
  DataType,
  decodeModel,
  encodeModel,
  int64ToNumber,
  newAttribute,
  newNode,
  newTensor,
  newTensorValueInfo,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '../runtime/onnx-proto.js';

/**
 * Rewrites a Silero VAD v5/v6 ONNX file (the streaming export: input [batch, 576], state [2, batch, 128], sr) into a
 * model that scores a whole sequence of windows in one run:
 *
 *   input [T, 576] (T windows of 64 context + 512 samples), h [1, 1, 128], c [1, 1, 128]
 *     → prob [T], hn [1, 1, 128], cn [1, 1, 128]
 *
 * The STFT and the convolutional encoder of the 16 kHz branch are copied unchanged and run on the T windows as a
 * batch; the decoder's LSTM cell becomes one ONNX LSTM over the T steps, so its state flows from window to window
 * inside ONNX Runtime instead of through T separate runs. This is the shape of the model faster-whisper ships
 * (faster_whisper/vad.py, SileroVADModel feeds batches of windows with h and c); the numbers are those of the
 * streaming model run window by window (test/vad.test.ts compares the two).
 *
 * The file is read and written with the full ONNX schema (runtime/onnx-proto.ts), so the copied nodes keep every
 * field they have in the source.
 *
 * Throws a `SileroGraphError` when the file does not have the expected structure (or is not an ONNX model); the
 * caller then runs the original model window by window.
 */

/** The file is not the Silero export the rewrite knows; the caller falls back to the original model. */
export class SileroGraphError extends Error {
  override readonly name = 'SileroGraphError';
}

export const SEQUENCE_INPUT = 'wts_input';
export const SEQUENCE_H = 'wts_h';
export const SEQUENCE_C = 'wts_c';
export const SEQUENCE_PROB = 'wts_prob';
export const SEQUENCE_HN = 'wts_hn';
export const SEQUENCE_CN = 'wts_cn';

const ENCODER_OUTPUT_SUFFIX = '/encoder/3/activation/Relu_output_0';
const WEIGHT_SUFFIXES = {
  weightIh: 'decoder.rnn.weight_ih',
  weightHh: 'decoder.rnn.weight_hh',
  biasIh: 'decoder.rnn.bias_ih',
  biasHh: 'decoder.rnn.bias_hh',
  headWeight: 'decoder.decoder.2.weight',
  headBias: 'decoder.decoder.2.bias',
} as const;

interface FloatTensor {
  dims: number[];
  data: Float32Array;
}

function attribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((attr) => attr.name === name);
}

function constantTensor(node: NodeProto): TensorProto {
  const tensor = attribute(node, 'value')?.t;
  if (tensor === undefined || tensor === null) {
    throw new SileroGraphError(`${node.op_type} node without attribute value`);
  }
  return tensor;
}

/** A view of a `bytes` field, which protobufjs may hand back unaligned. */
function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function int64Scalar(tensor: TensorProto): number {
  if (tensor.data_type !== DataType.INT64) throw new SileroGraphError('expected an int64 tensor');
  const raw = tensor.raw_data;
  if (raw !== undefined && raw !== null && raw.length === 8) return Number(dataView(raw).getBigInt64(0, true));
  const [value, ...rest] = tensor.int64_data;
  if (value !== undefined && rest.length === 0) return int64ToNumber(value);
  throw new SileroGraphError('expected one int64 value');
}

function floatTensor(tensor: TensorProto, what: string): FloatTensor {
  if (tensor.data_type !== DataType.FLOAT) throw new SileroGraphError(`${what} is not float32`);
  const dims = tensor.dims.map(int64ToNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  const raw = tensor.raw_data;
  if (raw !== undefined && raw !== null && raw.length > 0) {
    if (raw.length !== count * 4) throw new SileroGraphError(`${what} has no float data`);
    const view = dataView(raw);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
    return { dims, data };
  }
  if (tensor.float_data.length !== count) throw new SileroGraphError(`${what} has no float data`);
  return { dims, data: Float32Array.from(tensor.float_data) };
}

/** The nodes of `nodes` that `output` depends on, in their original (topological) order. */
function ancestors(nodes: NodeProto[], output: string): NodeProto[] {
  const producer = new Map<string, NodeProto>();
  for (const node of nodes) for (const name of node.output) producer.set(name, node);
  const keep = new Set<NodeProto>();
  const stack = [output];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    const node = producer.get(name);
    if (node === undefined || keep.has(node)) continue;
    keep.add(node);
    stack.push(...node.input.filter((input) => input !== ''));
  }
  return nodes.filter((node) => keep.has(node));
}

/** The nodes of the branch of the top-level `If` that runs for sr == 16000. */
function branch16k(top: NodeProto[]): NodeProto[] {
  const ifs = top.filter((node) => node.op_type === 'If');
  if (ifs.length !== 1) throw new SileroGraphError(`expected one top-level If, found ${ifs.length}`);
  const ifNode = ifs[0] as NodeProto;
  const condition = top.find((node) => node.output.includes(ifNode.input[0] ?? ''));
  if (condition?.op_type !== 'Equal' || !condition.input.includes('sr')) {
    throw new SileroGraphError('If does not test sr');
  }
  const constantName = condition.input.find((input) => input !== 'sr');
  const constant = top.find((node) => node.op_type === 'Constant' && node.output.includes(constantName ?? ''));
  if (constant === undefined) throw new SileroGraphError('sr is not compared with a constant');
  const rate = int64Scalar(constantTensor(constant));
  const branchName = rate === 16000 ? 'then_branch' : rate === 8000 ? 'else_branch' : undefined;
  if (branchName === undefined) throw new SileroGraphError(`sr compared with ${rate}`);
  const branch = attribute(ifNode, branchName)?.g;
  if (branch === undefined || branch === null) throw new SileroGraphError(`If node without attribute ${branchName}`);
  return branch.node;
}

function findConstant(nodes: NodeProto[], suffix: string): FloatTensor {
  const node = nodes.find((n) => n.op_type === 'Constant' && n.output.some((o) => o.endsWith(suffix)));
  if (node === undefined) throw new SileroGraphError(`no constant ${suffix}`);
  return floatTensor(constantTensor(node), suffix);
}

function sameDims(tensor: FloatTensor, dims: number[], what: string): void {
  if (tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
    throw new SileroGraphError(`${what} has shape [${tensor.dims.join(', ')}], expected [${dims.join(', ')}]`);
  }
}

/** PyTorch orders LSTM gates (input, forget, cell, output); ONNX's LSTM wants (input, output, forget, cell). */
function torchGatesToOnnx(data: Float32Array, hidden: number): Float32Array {
  const block = data.length / 4;
  if (block !== Math.floor(block) || block % hidden !== 0) throw new SileroGraphError('LSTM weights not in four gates');
  const out = new Float32Array(data.length);
  [0, 3, 1, 2].forEach((from, to) => out.set(data.subarray(from * block, (from + 1) * block), to * block));
  return out;
}

function floatInitializer(name: string, dims: number[], data: Float32Array): TensorProto {
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  data.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return newTensor({ name, dims, data_type: DataType.FLOAT, raw_data: raw });
}

function int64Initializer(name: string, values: number[]): TensorProto {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((value, i) => view.setBigInt64(i * 8, BigInt(value), true));
  return newTensor({ name, dims: [values.length], data_type: DataType.INT64, raw_data: raw });
}

function newOp(op: string, input: string[], output: string[], attrs: Record<string, number | number[]> = {}) {
  const attributes = Object.entries(attrs).map(([name, value]) =>
    typeof value === 'number'
      ? newAttribute({ name, type: AttributeType.INT, i: value })
      : newAttribute({ name, type: AttributeType.INTS, ints: value }),
  );
  return newNode({ input, output, name: `wts/${op}/${output[0] ?? ''}`, op_type: op, attribute: attributes });
}

export interface SequenceModel {
  /** The rewritten model, ready for ONNX Runtime. */
  bytes: Uint8Array;
  /** Samples per scored window including the context (576 at 16 kHz). */
  windowInput: number;
  /** LSTM state size (128). */
  hidden: number;
}

/** See the comment at the top of this file. */
export function buildSequenceModel(bytes: Uint8Array): SequenceModel {
  let model: ModelProto;
  try {
    model = decodeModel(bytes, 'the Silero VAD model');
  } catch (err) {
    if (!(err instanceof WhisperError)) throw err;
    throw new SileroGraphError(err.message, { cause: err });
  }
  const irVersion = int64ToNumber(model.ir_version) || 8;

  const nodes = branch16k(model.graph?.node ?? []);
  const encoderOutput = nodes.flatMap((n) => n.output).find((o) => o.endsWith(ENCODER_OUTPUT_SUFFIX));
  if (encoderOutput === undefined) throw new SileroGraphError('no encoder output');
  const encoder = ancestors(nodes, encoderOutput);
  if (encoder.some((node) => node.op_type === 'If' || node.op_type === 'Loop' || node.op_type === 'Scan')) {
    throw new SileroGraphError('the encoder has control flow');
  }
  // the encoder reads exactly one name from outside the branch: the audio input
  const produced = new Set(encoder.flatMap((n) => n.output));
  const outer = [...new Set(encoder.flatMap((n) => n.input).filter((i) => i !== '' && !produced.has(i)))];
  if (outer.length !== 1) throw new SileroGraphError(`the encoder reads ${outer.length} outer names`);
  const audioInput = outer[0] as string;

  const weightIh = findConstant(nodes, WEIGHT_SUFFIXES.weightIh);
  const features = weightIh.dims[1] ?? 0;
  const hidden = (weightIh.dims[0] ?? 0) / 4;
  sameDims(weightIh, [4 * hidden, features], 'weight_ih');
  const weightHh = findConstant(nodes, WEIGHT_SUFFIXES.weightHh);
  sameDims(weightHh, [4 * hidden, hidden], 'weight_hh');
  const biasIh = findConstant(nodes, WEIGHT_SUFFIXES.biasIh);
  sameDims(biasIh, [4 * hidden], 'bias_ih');
  const biasHh = findConstant(nodes, WEIGHT_SUFFIXES.biasHh);
  sameDims(biasHh, [4 * hidden], 'bias_hh');
  const headWeight = findConstant(nodes, WEIGHT_SUFFIXES.headWeight);
  sameDims(headWeight, [1, hidden, 1], 'head weight');
  const headBias = findConstant(nodes, WEIGHT_SUFFIXES.headBias);
  sameDims(headBias, [1], 'head bias');

  const bias = new Float32Array(8 * hidden);
  bias.set(torchGatesToOnnx(biasIh.data, hidden), 0);
  bias.set(torchGatesToOnnx(biasHh.data, hidden), 4 * hidden);

  const windowInput = 576;
  const graph: GraphProto = {
    name: 'silero_vad_sequence',
    node: [
      // The audio enters under our name; an Identity hands it to the copied nodes under the name they read.
      newOp('Identity', [SEQUENCE_INPUT], [audioInput]),
      ...encoder,
      // encoder output [T, features, 1] → [T (sequence), 1 (batch), features]
      newOp('Reshape', [encoderOutput, 'wts_shape_seq'], ['wts_seq']),
      newOp(
        'LSTM',
        ['wts_seq', 'wts_W', 'wts_R', 'wts_B', '', SEQUENCE_H, SEQUENCE_C],
        ['wts_Y', SEQUENCE_HN, SEQUENCE_CN],
        { hidden_size: hidden },
      ),
      // the head, as in the streaming model: ReLU → 1×1 convolution → sigmoid, per window
      newOp('Reshape', ['wts_Y', 'wts_shape_head'], ['wts_y']),
      newOp('Relu', ['wts_y'], ['wts_relu']),
      newOp('Conv', ['wts_relu', 'wts_head_w', 'wts_head_b'], ['wts_logit'], { kernel_shape: [1] }),
      newOp('Sigmoid', ['wts_logit'], ['wts_sigmoid']),
      newOp('Reshape', ['wts_sigmoid', 'wts_shape_out'], [SEQUENCE_PROB]),
    ],
    initializer: [
      floatInitializer('wts_W', [1, 4 * hidden, features], torchGatesToOnnx(weightIh.data, hidden)),
      floatInitializer('wts_R', [1, 4 * hidden, hidden], torchGatesToOnnx(weightHh.data, hidden)),
      floatInitializer('wts_B', [1, 8 * hidden], bias),
      floatInitializer('wts_head_w', [1, hidden, 1], headWeight.data),
      floatInitializer('wts_head_b', [1], headBias.data),
      int64Initializer('wts_shape_seq', [-1, 1, features]),
      int64Initializer('wts_shape_head', [-1, hidden, 1]),
      int64Initializer('wts_shape_out', [-1]),
    ],
    input: [
      newTensorValueInfo(SEQUENCE_INPUT, DataType.FLOAT, ['T', windowInput]),
      newTensorValueInfo(SEQUENCE_H, DataType.FLOAT, [1, 1, hidden]),
      newTensorValueInfo(SEQUENCE_C, DataType.FLOAT, [1, 1, hidden]),
    ],
    output: [
      newTensorValueInfo(SEQUENCE_PROB, DataType.FLOAT, ['T']),
      newTensorValueInfo(SEQUENCE_HN, DataType.FLOAT, [1, 1, hidden]),
      newTensorValueInfo(SEQUENCE_CN, DataType.FLOAT, [1, 1, hidden]),
    ],
    value_info: [],
  };
  const sequence: ModelProto = {
    ir_version: irVersion,
    producer_name: 'whisper-ts',
    opset_import: model.opset_import,
    graph,
  };
  return { bytes: encodeModel(sequence), windowInput, hidden };
}
