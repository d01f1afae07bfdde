import { ProtoError, ProtoWriter, fieldString, readFields, repeatedVarints, type ProtoField } from './proto.js';

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
 * Throws a `ProtoError` when the file does not have the expected structure; the caller then runs the original
 * model window by window.
 */

export const SEQUENCE_INPUT = 'wts_input';
export const SEQUENCE_H = 'wts_h';
export const SEQUENCE_C = 'wts_c';
export const SEQUENCE_PROB = 'wts_prob';
export const SEQUENCE_HN = 'wts_hn';
export const SEQUENCE_CN = 'wts_cn';

// onnx.proto field numbers
const MODEL_IR_VERSION = 1;
const MODEL_GRAPH = 7;
const MODEL_OPSET_IMPORT = 8;
const GRAPH_NODE = 1;
const GRAPH_NAME = 2;
const GRAPH_INITIALIZER = 5;
const GRAPH_INPUT = 11;
const GRAPH_OUTPUT = 12;
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_NAME = 3;
const NODE_OP_TYPE = 4;
const NODE_ATTRIBUTE = 5;
const ATTR_NAME = 1;
const ATTR_I = 3;
const ATTR_T = 5;
const ATTR_G = 6;
const ATTR_INTS = 8;
const ATTR_TYPE = 20;
const ATTR_TYPE_INT = 2;
const ATTR_TYPE_INTS = 7;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_FLOAT_DATA = 4;
const TENSOR_INT64_DATA = 7;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const DTYPE_FLOAT = 1;
const DTYPE_INT64 = 7;
const VALUE_INFO_NAME = 1;
const VALUE_INFO_TYPE = 2;
const TYPE_TENSOR = 1;
const TYPE_TENSOR_ELEM_TYPE = 1;
const TYPE_TENSOR_SHAPE = 2;
const SHAPE_DIM = 1;
const DIM_VALUE = 1;
const DIM_PARAM = 2;

const ENCODER_OUTPUT_SUFFIX = '/encoder/3/activation/Relu_output_0';
const WEIGHT_SUFFIXES = {
  weightIh: 'decoder.rnn.weight_ih',
  weightHh: 'decoder.rnn.weight_hh',
  biasIh: 'decoder.rnn.bias_ih',
  biasHh: 'decoder.rnn.bias_hh',
  headWeight: 'decoder.decoder.2.weight',
  headBias: 'decoder.decoder.2.bias',
} as const;

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes: ProtoField[];
  raw: Uint8Array;
}

interface FloatTensor {
  dims: number[];
  data: Float32Array;
}

function parseNode(bytes: Uint8Array, raw: Uint8Array): Node {
  const fields = readFields(bytes);
  const strings = (no: number): string[] => fields.filter((f) => f.no === no).map(fieldString);
  return {
    op: strings(NODE_OP_TYPE)[0] ?? '',
    inputs: strings(NODE_INPUT),
    outputs: strings(NODE_OUTPUT),
    attributes: fields.filter((f) => f.no === NODE_ATTRIBUTE),
    raw,
  };
}

function graphNodes(graph: Uint8Array): Node[] {
  return readFields(graph)
    .filter((f) => f.no === GRAPH_NODE)
    .map((f) => parseNode(f.bytes, f.raw));
}

function attribute(node: Node, name: string): ProtoField[] | undefined {
  for (const attr of node.attributes) {
    const fields = readFields(attr.bytes);
    if (fields.some((f) => f.no === ATTR_NAME && fieldString(f) === name)) return fields;
  }
  return undefined;
}

function attributeBytes(node: Node, name: string, no: number): Uint8Array {
  const field = attribute(node, name)?.find((f) => f.no === no);
  if (field === undefined) throw new ProtoError(`${node.op} node without attribute ${name}`);
  return field.bytes;
}

function constantTensor(node: Node): ProtoField[] {
  return readFields(attributeBytes(node, 'value', ATTR_T));
}

function int64Scalar(tensor: ProtoField[]): number {
  if (repeatedVarints(tensor, TENSOR_DATA_TYPE)[0] !== DTYPE_INT64) throw new ProtoError('expected an int64 tensor');
  const raw = tensor.find((f) => f.no === TENSOR_RAW_DATA);
  if (raw !== undefined && raw.bytes.length === 8) {
    return Number(new DataView(raw.bytes.buffer, raw.bytes.byteOffset, 8).getBigInt64(0, true));
  }
  const values = repeatedVarints(tensor, TENSOR_INT64_DATA);
  if (values.length === 1) return values[0] as number;
  throw new ProtoError('expected one int64 value');
}

function floatTensor(tensor: ProtoField[], what: string): FloatTensor {
  if (repeatedVarints(tensor, TENSOR_DATA_TYPE)[0] !== DTYPE_FLOAT) throw new ProtoError(`${what} is not float32`);
  const dims = repeatedVarints(tensor, TENSOR_DIMS);
  const count = dims.reduce((a, b) => a * b, 1);
  const source =
    tensor.find((f) => f.no === TENSOR_RAW_DATA)?.bytes ?? tensor.find((f) => f.no === TENSOR_FLOAT_DATA)?.bytes;
  if (source === undefined || source.length !== count * 4) throw new ProtoError(`${what} has no float data`);
  const view = new DataView(source.buffer, source.byteOffset, source.length);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
  return { dims, data };
}

/** The nodes of `nodes` that `output` depends on, in their original (topological) order. */
function ancestors(nodes: Node[], output: string): Node[] {
  const producer = new Map<string, Node>();
  for (const node of nodes) for (const name of node.outputs) producer.set(name, node);
  const keep = new Set<Node>();
  const stack = [output];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    const node = producer.get(name);
    if (node === undefined || keep.has(node)) continue;
    keep.add(node);
    stack.push(...node.inputs.filter((input) => input !== ''));
  }
  return nodes.filter((node) => keep.has(node));
}

/** The nodes of the branch of the top-level `If` that runs for sr == 16000. */
function branch16k(top: Node[]): Node[] {
  const ifs = top.filter((node) => node.op === 'If');
  if (ifs.length !== 1) throw new ProtoError(`expected one top-level If, found ${ifs.length}`);
  const ifNode = ifs[0] as Node;
  const condition = top.find((node) => node.outputs.includes(ifNode.inputs[0] ?? ''));
  if (condition?.op !== 'Equal' || !condition.inputs.includes('sr')) throw new ProtoError('If does not test sr');
  const constantName = condition.inputs.find((input) => input !== 'sr');
  const constant = top.find((node) => node.op === 'Constant' && node.outputs.includes(constantName ?? ''));
  if (constant === undefined) throw new ProtoError('sr is not compared with a constant');
  const rate = int64Scalar(constantTensor(constant));
  const branchName = rate === 16000 ? 'then_branch' : rate === 8000 ? 'else_branch' : undefined;
  if (branchName === undefined) throw new ProtoError(`sr compared with ${rate}`);
  return graphNodes(attributeBytes(ifNode, branchName, ATTR_G));
}

function findConstant(nodes: Node[], suffix: string): FloatTensor {
  const node = nodes.find((n) => n.op === 'Constant' && n.outputs.some((o) => o.endsWith(suffix)));
  if (node === undefined) throw new ProtoError(`no constant ${suffix}`);
  return floatTensor(constantTensor(node), suffix);
}

function sameDims(tensor: FloatTensor, dims: number[], what: string): void {
  if (tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
    throw new ProtoError(`${what} has shape [${tensor.dims.join(', ')}], expected [${dims.join(', ')}]`);
  }
}

/** PyTorch orders LSTM gates (input, forget, cell, output); ONNX's LSTM wants (input, output, forget, cell). */
function torchGatesToOnnx(data: Float32Array, hidden: number): Float32Array {
  const block = data.length / 4;
  if (block !== Math.floor(block) || block % hidden !== 0) throw new ProtoError('LSTM weights not in four gates');
  const out = new Float32Array(data.length);
  [0, 3, 1, 2].forEach((from, to) => out.set(data.subarray(from * block, (from + 1) * block), to * block));
  return out;
}

function floatInitializer(name: string, dims: number[], data: Float32Array): ProtoWriter {
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  data.forEach((value, i) => view.setFloat32(i * 4, value, true));
  return tensorWriter(name, dims, DTYPE_FLOAT, raw);
}

function int64Initializer(name: string, values: number[]): ProtoWriter {
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((value, i) => view.setBigInt64(i * 8, BigInt(value), true));
  return tensorWriter(name, [values.length], DTYPE_INT64, raw);
}

function tensorWriter(name: string, dims: number[], dtype: number, raw: Uint8Array): ProtoWriter {
  const tensor = new ProtoWriter();
  for (const dim of dims) tensor.uint(TENSOR_DIMS, dim);
  return tensor.uint(TENSOR_DATA_TYPE, dtype).string(TENSOR_NAME, name).bytes(TENSOR_RAW_DATA, raw);
}

function nodeWriter(op: string, inputs: string[], outputs: string[], attrs: Record<string, number | number[]> = {}) {
  const node = new ProtoWriter();
  for (const input of inputs) node.string(NODE_INPUT, input);
  for (const output of outputs) node.string(NODE_OUTPUT, output);
  node.string(NODE_NAME, `wts/${op}/${outputs[0] ?? ''}`).string(NODE_OP_TYPE, op);
  for (const [name, value] of Object.entries(attrs)) {
    const attr = new ProtoWriter().string(ATTR_NAME, name);
    if (typeof value === 'number') attr.uint(ATTR_I, value).uint(ATTR_TYPE, ATTR_TYPE_INT);
    else {
      for (const v of value) attr.uint(ATTR_INTS, v);
      attr.uint(ATTR_TYPE, ATTR_TYPE_INTS);
    }
    node.message(NODE_ATTRIBUTE, attr);
  }
  return node;
}

function valueInfo(name: string, dims: (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const dim of dims) {
    const d = new ProtoWriter();
    if (typeof dim === 'number') d.uint(DIM_VALUE, dim);
    else d.string(DIM_PARAM, dim);
    shape.message(SHAPE_DIM, d);
  }
  const tensorType = new ProtoWriter().uint(TYPE_TENSOR_ELEM_TYPE, DTYPE_FLOAT).message(TYPE_TENSOR_SHAPE, shape);
  const type = new ProtoWriter().message(TYPE_TENSOR, tensorType);
  return new ProtoWriter().string(VALUE_INFO_NAME, name).message(VALUE_INFO_TYPE, type);
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
export function buildSequenceModel(model: Uint8Array): SequenceModel {
  const modelFields = readFields(model);
  const graph = modelFields.find((f) => f.no === MODEL_GRAPH);
  if (graph === undefined) throw new ProtoError('no graph');
  const irVersion = modelFields.find((f) => f.no === MODEL_IR_VERSION)?.varint ?? 8;
  const opsets = modelFields.filter((f) => f.no === MODEL_OPSET_IMPORT);

  const nodes = branch16k(graphNodes(graph.bytes));
  const encoderOutput = nodes.flatMap((n) => n.outputs).find((o) => o.endsWith(ENCODER_OUTPUT_SUFFIX));
  if (encoderOutput === undefined) throw new ProtoError('no encoder output');
  const encoder = ancestors(nodes, encoderOutput);
  if (encoder.some((node) => node.op === 'If' || node.op === 'Loop' || node.op === 'Scan')) {
    throw new ProtoError('the encoder has control flow');
  }
  // the encoder reads exactly one name from outside the branch: the audio input
  const produced = new Set(encoder.flatMap((n) => n.outputs));
  const outer = [...new Set(encoder.flatMap((n) => n.inputs).filter((i) => i !== '' && !produced.has(i)))];
  if (outer.length !== 1) throw new ProtoError(`the encoder reads ${outer.length} outer names`);
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

  const g = new ProtoWriter().string(GRAPH_NAME, 'silero_vad_sequence');
  // The audio enters under our name; an Identity hands it to the copied nodes under the name they read.
  g.message(GRAPH_NODE, nodeWriter('Identity', [SEQUENCE_INPUT], [audioInput]));
  for (const node of encoder) g.raw(node.raw);
  // encoder output [T, features, 1] → [T (sequence), 1 (batch), features]
  g.message(GRAPH_NODE, nodeWriter('Reshape', [encoderOutput, 'wts_shape_seq'], ['wts_seq']));
  g.message(
    GRAPH_NODE,
    nodeWriter('LSTM', ['wts_seq', 'wts_W', 'wts_R', 'wts_B', '', SEQUENCE_H, SEQUENCE_C], ['wts_Y', SEQUENCE_HN, SEQUENCE_CN], {
      hidden_size: hidden,
    }),
  );
  // the head, as in the streaming model: ReLU → 1×1 convolution → sigmoid, per window
  g.message(GRAPH_NODE, nodeWriter('Reshape', ['wts_Y', 'wts_shape_head'], ['wts_y']));
  g.message(GRAPH_NODE, nodeWriter('Relu', ['wts_y'], ['wts_relu']));
  g.message(GRAPH_NODE, nodeWriter('Conv', ['wts_relu', 'wts_head_w', 'wts_head_b'], ['wts_logit'], { kernel_shape: [1] }));
  g.message(GRAPH_NODE, nodeWriter('Sigmoid', ['wts_logit'], ['wts_sigmoid']));
  g.message(GRAPH_NODE, nodeWriter('Reshape', ['wts_sigmoid', 'wts_shape_out'], [SEQUENCE_PROB]));

  g.message(GRAPH_INITIALIZER, floatInitializer('wts_W', [1, 4 * hidden, features], torchGatesToOnnx(weightIh.data, hidden)));
  g.message(GRAPH_INITIALIZER, floatInitializer('wts_R', [1, 4 * hidden, hidden], torchGatesToOnnx(weightHh.data, hidden)));
  g.message(GRAPH_INITIALIZER, floatInitializer('wts_B', [1, 8 * hidden], bias));
  g.message(GRAPH_INITIALIZER, floatInitializer('wts_head_w', [1, hidden, 1], headWeight.data));
  g.message(GRAPH_INITIALIZER, floatInitializer('wts_head_b', [1], headBias.data));
  g.message(GRAPH_INITIALIZER, int64Initializer('wts_shape_seq', [-1, 1, features]));
  g.message(GRAPH_INITIALIZER, int64Initializer('wts_shape_head', [-1, hidden, 1]));
  g.message(GRAPH_INITIALIZER, int64Initializer('wts_shape_out', [-1]));

  const windowInput = 576;
  g.message(GRAPH_INPUT, valueInfo(SEQUENCE_INPUT, ['T', windowInput]));
  g.message(GRAPH_INPUT, valueInfo(SEQUENCE_H, [1, 1, hidden]));
  g.message(GRAPH_INPUT, valueInfo(SEQUENCE_C, [1, 1, hidden]));
  g.message(GRAPH_OUTPUT, valueInfo(SEQUENCE_PROB, ['T']));
  g.message(GRAPH_OUTPUT, valueInfo(SEQUENCE_HN, [1, 1, hidden]));
  g.message(GRAPH_OUTPUT, valueInfo(SEQUENCE_CN, [1, 1, hidden]));

  const out = new ProtoWriter().uint(MODEL_IR_VERSION, irVersion).string(2, 'whisper-ts');
  out.message(MODEL_GRAPH, g);
  for (const opset of opsets) out.raw(opset.raw);
  return { bytes: out.finish(), windowInput, hidden };
}
