/**
 * Graph rewrites for the quantized Whisper graphs, done once per model file and cached on disk: float activations for
 * the 8-bit matrix products of encoder and decoder (`floatIntegerMatMuls`, below) or, for the decoder's cached steps,
 * int8 activations per block (`blockQuantizedWeight`), for the encoder windows shorter than 30 s
 * (`variableEncoderWindow`), and for the decoder the tied output projection, padding inputs and step outputs.
 *
 * The q8 decoders of the onnx-community layout (as transformers.js quantizes them) tie the output projection to the
 * token embedding: the int8 table [vocab, d_model] reaches the logits through
 * `MatMul(hidden, DequantizeLinear(Transpose(table)))`, so every decoding step transposes and dequantizes the whole
 * table (51865 × 512 for base) before a float MatMul. `optimizeDecoder` finds that pattern (in the main graph and in
 * the branches of the merged decoder's `If`) and gives the MatMul a precomputed, pre-transposed weight, so ONNX Runtime
 * sees a constant and does the work once at load. The rewritten model goes to a cache folder, never next to the source
 * (which may be a read-only Hub snapshot).
 *
 * Why not the file's integer arithmetic: the replacement must not change which token wins. Teacher-forcing the
 * reference tokens of 96 eval files (8171 positions, whisper-base), MatMulInteger with DynamicQuantizeLinear on the
 * activation (what quantize_dynamic emits) moved logits by up to 1.3 and changed the argmax at 40 positions (one of
 * them in jfk.wav with timestamps); com.microsoft MatMulNBits (bits = 8, accuracy_level 4) by up to 0.9, 21 positions;
 * MatMulNBits with float accumulation (accuracy_level 0) is exact but 4-7x slower than the original. A float32 weight
 * changes logits by at most 4.2e-5 (summation order only), at 7.5 ms/token against 21 for the original graph, but a
 * step then reads 4 bytes per table entry (106 MB for base). So the table is dequantized to float32 first (the
 * rewrite that finds the pattern), then `integerProjection` turns that product into one MatMulInteger on the file's
 * 8-bit table with the activation split in three 8-bit parts: logits within 4.6e-5 of the float32 table's, no argmax
 * changed (bench/projection-check.mjs), and 27 MB read per step (9.8 → 6.7 ms per cached step for base).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { WhisperError } from '../errors.js';
import {
  DataType,
  decodeModel,
  encodeModel,
  int64ToNumber,
  AttributeType,
  newAttribute,
  newNode,
  newOpset,
  newTensor,
  newTensorValueInfo,
  symbolicDim,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './onnx-proto.js';

/** Bump when the rewrite's output changes: cached files of other versions are then ignored. */
export const GRAPH_REWRITE_VERSION = 12;

export interface OptimizeOptions {
  /**
   * Folder for rewritten graphs. Default: `$XDG_CACHE_HOME/whisper-ts/graphs`, else `~/.cache/whisper-ts/graphs`.
   */
  cacheDir?: string;
  /**
   * Replace every dynamically quantized `MatMulInteger` / `ConvInteger` whose weight is a per-tensor quantized
   * initializer (what `quantize_dynamic` emits for q8, int8 and uint8 files) by a float `MatMul` / `Conv` on the
   * weight dequantized once: the weights stay the file's 8-bit values, the activations are no longer quantized.
   * Default true. See `floatIntegerMatMuls`.
   */
  floatActivations?: boolean;
  /**
   * With the files' own int8 activations (`floatActivations: false`): store `MatMulInteger` weights kept as uint8 (the
   * q8 encoder's) as int8, the same integers shifted by 128 with their zero point, so that ONNX Runtime runs its
   * u8×s8 kernels instead of u8×u8 (VNNI/AMX: 541 → 248 ms per window for base here, bit-identical results). Default:
   * on when `exactSignedInt8Kernels()` (x86 CPUs with VNNI or AMX, where those kernels sum exactly).
   */
  signedWeights?: boolean;
  /**
   * With `floatActivations: false`: quantize the activations per row (one scale per token) instead of per tensor as
   * the files do (`rowQuantizedActivations`). Default false.
   */
  rowActivations?: boolean;
  /**
   * Decoders: compute the tied output projection of an 8-bit file as an integer product on the activation split in
   * three 8-bit parts (`integerProjection`) instead of a float32 product on the dequantized table. Default true.
   */
  integerProjection?: boolean;
  /**
   * Decoders with float activations: compute the cached steps' projections (`If` branch with the past) as
   * `MatMulNBits` on the file's 8-bit weights, activations quantized to int8 per block of `STEP_BLOCK` along the inner
   * dimension (`blockQuantizedSteps`). The prompt step stays float. Default false.
   */
  blockQuantizedSteps?: boolean;
}

/**
 * The block length of `blockQuantizedSteps`: activations get one int8 scale per this many inputs of a product. On
 * whisper-base longform_en (openai's defaults): 64 → 13.06 % WER, 128 → 13.22 %, 256 → 14.62 % (float: 13.06 %);
 * cached steps of one row 7.1–8.0 → 5.1–5.2 ms at 128.
 */
export const STEP_BLOCK = 128;

/** What a graph is: the decoder also gets padding inputs and step outputs. */
export type GraphRole = 'encoder' | 'decoder';

export interface OptimizeResult {
  /** The file to load: the rewritten copy in the cache folder, or the source file itself. */
  path: string;
  /** True when `path` is a rewritten copy. */
  rewritten: boolean;
  /** Why the source is returned as it is (set only when `rewritten` is false). */
  reason?: string;
}

export function defaultGraphCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CACHE_HOME'];
  const base = xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache');
  return join(base, 'whisper-ts', 'graphs');
}

/**
 * Returns a faster equivalent of the ONNX decoder at `path`: on the first call for a given file content, the graph
 * is rewritten and written to the cache folder; later calls return the cached path without parsing the model.
 * A model without the pattern comes back unchanged (`rewritten: false`, with the reason).
 *
 * Throws `E_MODEL_FILE_MISSING` when `path` does not exist, `E_MODEL_INVALID` when it is not an ONNX model, and
 * `E_IO` when it cannot be read. A cache folder that cannot be written is not an error: the source comes back with
 * `rewritten: false` and the reason.
 */
export async function optimizeDecoder(path: string, options: OptimizeOptions = {}): Promise<OptimizeResult> {
  return optimizeGraph(path, 'decoder', options);
}

/**
 * As `optimizeDecoder`, for an encoder: float activations, per-row int8 ones, or (int8 activations) the signed-weight
 * storage; and in every variant windows shorter than 30 s.
 */
export async function optimizeEncoder(path: string, options: OptimizeOptions = {}): Promise<OptimizeResult> {
  return optimizeGraph(path, 'encoder', options);
}

async function optimizeGraph(path: string, role: GraphRole, options: OptimizeOptions): Promise<OptimizeResult> {
  const source = resolve(path);
  const cacheDir = resolve(options.cacheDir ?? defaultGraphCacheDir());
  const floatActivations = options.floatActivations !== false;
  const variant: Variant = {
    role,
    floatActivations,
    signedWeights: !floatActivations && (options.signedWeights ?? exactSignedInt8Kernels()),
    rowActivations: !floatActivations && options.rowActivations === true,
    integerProjection: role === 'decoder' && options.integerProjection !== false,
    signedProjection: role === 'decoder' && options.integerProjection !== false && exactSignedInt8Kernels(),
    blockSteps: role === 'decoder' && floatActivations && options.blockQuantizedSteps === true,
  };
  const key = `${source}\0${cacheDir}\0${variantTag(variant)}`;
  // Concurrent calls for the same file in this process share one rewrite.
  let pending = inFlight.get(key);
  if (pending === undefined) {
    pending = optimizeOnce(source, cacheDir, variant).finally(() => inFlight.delete(key));
    inFlight.set(key, pending);
  }
  return pending;
}

/** Which rewrites run; each variant of a source has its own cached copy. */
interface Variant {
  role: GraphRole;
  floatActivations: boolean;
  signedWeights: boolean;
  rowActivations: boolean;
  /** The decoder's `integerProjection`, and whether it reads its table as int8. */
  integerProjection: boolean;
  signedProjection: boolean;
  /** The decoder's `blockQuantizedSteps`. */
  blockSteps: boolean;
}

function variantTag(v: Variant): string {
  const int8 = `${v.rowActivations ? 'int8row' : 'int8'}${v.signedWeights ? 's' : ''}`;
  const projection = v.role !== 'decoder' ? '' : !v.integerProjection ? '-p32' : v.signedProjection ? '-ps' : '';
  return `${v.role}-${v.floatActivations ? 'float' : int8}${projection}${v.blockSteps ? `-nb${STEP_BLOCK}` : ''}`;
}

let signedKernels: boolean | undefined;

/**
 * Whether ONNX Runtime's u8×s8 integer GEMM sums exactly on this CPU: x86 with AVX-512 VNNI, AVX-VNNI or AMX (their
 * instructions accumulate in int32). Plain AVX2 multiplies u8 by s8 with `vpmaddubsw`, whose int16 pair sums can
 * saturate (why onnxruntime's quantization offers `reduce_range`); other CPUs are not assumed either. Linux only
 * (/proc/cpuinfo); false elsewhere.
 */
export function exactSignedInt8Kernels(): boolean {
  if (signedKernels === undefined) {
    let flags = '';
    try {
      if (process.platform === 'linux' && process.arch === 'x64') flags = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      flags = '';
    }
    signedKernels = /^flags\s*:.*\b(avx512_vnni|avx_vnni|amx_int8)\b/m.test(flags);
  }
  return signedKernels;
}

const inFlight = new Map<string, Promise<OptimizeResult>>();

/** What the cache remembers of a source content: rewritten (the copy sits beside it) or not, and why. */
interface Outcome {
  rewritten: boolean;
  reason?: string;
}

/** The content hash of a source file, remembered against its size, mtime and inode (as git's index does). */
interface StatMemo {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

async function optimizeOnce(source: string, cacheDir: string, variant: Variant): Promise<OptimizeResult> {
  const info = await statSource(source);
  const memoPath = join(cacheDir, 'stat', `${sha256Hex(Buffer.from(source))}.json`);

  // Warm path: the stat memo names the content hash; the cached outcome tells the rest. No read, no parse.
  const memo = await readJson<StatMemo>(memoPath);
  if (memo !== undefined && memo.size === info.size && memo.mtimeMs === info.mtimeMs && memo.ino === info.ino) {
    const cached = await cachedResult(source, cacheDir, memo.sha256, variant);
    if (cached !== undefined) return cached;
  }

  let bytes: Buffer;
  try {
    bytes = await readFile(source);
  } catch (cause) {
    throw new WhisperError('E_IO', `cannot read ${source}: ${String(cause)}`, { cause });
  }
  const hash = sha256Hex(bytes);
  const cached = await cachedResult(source, cacheDir, hash, variant);
  if (cached !== undefined) {
    await writeAtomic(memoPath, JSON.stringify({ ...statOf(info), sha256: hash })).catch(() => undefined);
    return cached;
  }

  const model = decodeModel(bytes, source);
  const outcome = rewriteModel(model, variant);
  if (outcome.rewritten && bytes.length + outcome.addedBytes > PROTOBUF_LIMIT) {
    outcome.rewritten = false;
    outcome.reason = 'the rewritten model would pass the 2 GB limit of a protobuf file';
  }
  try {
    await mkdir(join(cacheDir, 'stat'), { recursive: true });
    if (outcome.rewritten) {
      await writeAtomic(modelPath(cacheDir, hash, variant), encodeModel(model));
      await removeOtherVersions(cacheDir, hash);
    }
    const record: Outcome = outcome.rewritten ? { rewritten: true } : { rewritten: false, reason: outcome.reason };
    await writeAtomic(outcomePath(cacheDir, hash, variant), JSON.stringify({ ...record, source, rewrites: outcome.rewrites }));
    await writeAtomic(memoPath, JSON.stringify({ ...statOf(info), sha256: hash }));
  } catch (cause) {
    return { path: source, rewritten: false, reason: `the graph cache ${cacheDir} cannot be written: ${String(cause)}` };
  }
  return outcome.rewritten
    ? { path: modelPath(cacheDir, hash, variant), rewritten: true }
    : { path: source, rewritten: false, reason: outcome.reason };
}

async function statSource(source: string): Promise<{ size: number; mtimeMs: number; ino: number }> {
  try {
    const s = await stat(source);
    if (!s.isFile()) throw new WhisperError('E_MODEL_INVALID', `${source} is not a file`);
    return { size: s.size, mtimeMs: s.mtimeMs, ino: s.ino };
  } catch (cause) {
    if (cause instanceof WhisperError) throw cause;
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new WhisperError('E_MODEL_FILE_MISSING', `model file not found: ${source}`, { cause });
    }
    throw new WhisperError('E_IO', `cannot read ${source}: ${String(cause)}`, { cause });
  }
}

function statOf(info: { size: number; mtimeMs: number; ino: number }): Omit<StatMemo, 'sha256'> {
  return { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
}

/** Protobuf messages, hence ONNX files without external data, must stay under 2 GiB. */
const PROTOBUF_LIMIT = 2 ** 31 - 1;

/** `<sha256>.r<version>.<role>-<float|int8|int8s|int8row|int8rows>.onnx` (and `.json` for the outcome). */
const stem = (dir: string, hash: string, v: Variant): string =>
  join(dir, `${hash}.r${GRAPH_REWRITE_VERSION}.${variantTag(v)}`);
const modelPath = (dir: string, hash: string, v: Variant): string => `${stem(dir, hash, v)}.onnx`;
const outcomePath = (dir: string, hash: string, v: Variant): string => `${stem(dir, hash, v)}.json`;

async function cachedResult(
  source: string,
  cacheDir: string,
  hash: string,
  variant: Variant,
): Promise<OptimizeResult | undefined> {
  const outcome = await readJson<Outcome>(outcomePath(cacheDir, hash, variant));
  if (outcome === undefined) return undefined;
  if (!outcome.rewritten) return { path: source, rewritten: false, reason: outcome.reason ?? 'no rewrite applies' };
  const rewritten = modelPath(cacheDir, hash, variant);
  try {
    await stat(rewritten);
  } catch {
    return undefined; // the model file was removed from the cache: rewrite again
  }
  return { path: rewritten, rewritten: true };
}

/** Rewrites of the same source by other rewrite versions will never be read again: free their space. */
async function removeOtherVersions(cacheDir: string, hash: string): Promise<void> {
  const current = `${hash}.r${GRAPH_REWRITE_VERSION}.`;
  const stale = (await readdir(cacheDir)).filter(
    (f) => f.startsWith(`${hash}.r`) && !f.endsWith('.tmp') && !f.startsWith(current),
  );
  await Promise.all(stale.map((f) => rm(join(cacheDir, f), { force: true })));
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Writes to a unique temporary name in the same folder, then renames: readers never see a partial file. */
async function writeAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, file);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw cause;
  }
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// The rewrite

interface RewriteOutcome {
  rewritten: boolean;
  reason: string;
  /** One line per rewritten MatMul, for the cache's record. */
  rewrites: string[];
  /** Bytes of the initializers the rewrite added. */
  addedBytes: number;
}

/** An initializer and the graph that holds it (the main graph for tensors that `If` branches read). */
interface Initializer {
  tensor: TensorProto;
  graph: GraphProto;
}

/** A weight `DequantizeLinear([Transpose](int8 table), scale, zero_point)` found feeding a MatMul. */
interface QuantizedWeight {
  table: Initializer;
  transposed: boolean;
  scale: number;
  zeroPoint: number;
  /** The nodes that compute the weight at run time, for removal when nothing else reads them. */
  nodes: NodeProto[];
}

/**
 * Rewrites `model` in place; returns whether anything changed. Exported for tests and tools; `optimizeDecoder` and
 * `optimizeEncoder` are the entry points.
 */
export function rewriteModel(
  model: ModelProto,
  variant: {
    role: GraphRole;
    floatActivations: boolean;
    signedWeights?: boolean;
    /** With int8 activations: quantize them per row (`rowQuantizedActivations`) instead of per tensor. */
    rowActivations?: boolean;
    /** `integerProjection` (default true; false keeps the float32 table, for comparisons). */
    integerProjection?: boolean;
    /** `integerProjection` with the table as int8 (default: `exactSignedInt8Kernels()`). */
    signedProjection?: boolean;
    /** `splitCachedSelfAttention` (default true with float activations; false keeps the presents, for comparisons). */
    splitSelfAttention?: boolean;
    /** Encoders: `variableEncoderWindow` (default true; false keeps the fixed 30-s window, for comparisons). */
    shortWindows?: boolean;
    /** Decoders with float activations: `blockQuantizedSteps` (default false). */
    blockSteps?: boolean;
  } = {
    role: 'decoder',
    floatActivations: true,
  },
): RewriteOutcome {
  const graph = model.graph;
  const unchanged = (reason: string): RewriteOutcome => ({ rewritten: false, reason, rewrites: [], addedBytes: 0 });
  if (graph === undefined) return unchanged('the model has no graph');
  if (hasExternalData(graph)) {
    return unchanged('the model keeps its weights in external data files; a copy elsewhere could not find them');
  }
  const rewrites: string[] = [];
  const added = new Map<string, TensorProto>();
  const names = allNames(graph);
  if (variant.floatActivations) {
    const blocks = variant.role === 'decoder' && variant.blockSteps === true ? STEP_BLOCK : 0;
    const changes = floatIntegerMatMuls(graph, names, added, () => true, blocks);
    const usesMicrosoft = (g: GraphProto): boolean =>
      g.node.some((n) => n.domain === 'com.microsoft') || subgraphsOf(g).some(usesMicrosoft);
    if (usesMicrosoft(graph) && !model.opset_import.some((o) => o.domain === 'com.microsoft')) {
      model.opset_import = [...model.opset_import, newOpset({ domain: 'com.microsoft', version: 1 })];
    }
    rewrites.push(...changes);
  }
  else if (variant.rowActivations === true) {
    // a row of a convolution's input is not one output's input: the convolutions go float; so does the last layer
    const last = lastLayerTag(graph);
    rewrites.push(...floatIntegerMatMuls(graph, names, added, (op, x) => op === 'ConvInteger' || (last !== undefined && x.includes(last))));
    rewrites.push(...rowQuantizedActivations(graph, names, defaultOpset(model)));
  }
  if (!variant.floatActivations && variant.signedWeights === true) rewrites.push(...signedIntegerWeights(graph));
  if (variant.role === 'encoder' && variant.shortWindows !== false) rewrites.push(...variableEncoderWindow(graph, names));
  if (variant.role === 'decoder') {
    rewriteGraph(graph, new Map(), rewrites, added, names);
    rewrites.push(...addPaddingInputs(graph, names));
    rewrites.push(...addLogitsFrom(graph, names));
    rewrites.push(...addLogSumExp(graph, names, defaultOpset(model)));
    rewrites.push(...addStepOutputs(graph, names));
    if (variant.integerProjection !== false) {
      rewrites.push(...integerProjection(graph, names, defaultOpset(model), variant.signedProjection ?? exactSignedInt8Kernels()));
    }
    if (defaultOpset(model) >= 15) {
      rewrites.push(...groupSharedCrossAttention(graph, names));
      // only with float activations: with int8 ones, the new summation order moves the activations' 8-bit rounding
      // (logits 0.4 off the original's on whisper-base), and that variant's point is to compute what the files do
      if ((variant.floatActivations || variant.rowActivations === true) && variant.splitSelfAttention !== false) {
        rewrites.push(...splitCachedSelfAttention(graph, names));
      }
    }
  }
  if (rewrites.length === 0) {
    return unchanged(
      variant.role === 'decoder'
        ? 'no MatMul whose weight is DequantizeLinear of a per-tensor quantized initializer (or its Transpose), and ' +
            'no self-attention to give padding inputs'
        : (variant.floatActivations || variant.rowActivations === true
            ? 'no MatMulInteger or ConvInteger on a per-tensor quantized initializer'
            : variant.signedWeights === true
              ? 'no MatMulInteger with a uint8 initializer weight'
              : 'with int8 activations an encoder is rewritten for signed weights (see exactSignedInt8Kernels) and windows') +
            ', and no positional embedding to slice for windows shorter than 30 s',
    );
  }
  const addedBytes = [...added.values()].reduce((n, t) => n + (t.raw_data?.length ?? 0), 0);
  return { rewritten: true, reason: '', rewrites, addedBytes };
}

function rewriteGraph(
  graph: GraphProto,
  outer: ReadonlyMap<string, Initializer>,
  rewrites: string[],
  added: Map<string, TensorProto>,
  names: Set<string>,
): void {
  const scope = new Map(outer);
  for (const tensor of graph.initializer) if (tensor.name !== undefined) scope.set(tensor.name, { tensor, graph });
  // Names this graph computes shadow outer initializers of the same name.
  for (const input of graph.input) if (input.name !== undefined) scope.delete(input.name);
  const producer = new Map<string, NodeProto>();
  for (const node of graph.node) for (const output of node.output) producer.set(output, node);
  for (const name of producer.keys()) scope.delete(name);

  // Subgraphs first: they see this graph's initializers as outer-scope values.
  for (const node of graph.node) {
    for (const attribute of node.attribute) {
      if (attribute.g !== undefined && attribute.g !== null) rewriteGraph(attribute.g, scope, rewrites, added, names);
      for (const sub of attribute.graphs) rewriteGraph(sub, scope, rewrites, added, names);
    }
  }

  let changed = false;
  for (const node of graph.node) {
    if (node.op_type !== 'MatMul' || !isDefaultDomain(node.domain)) continue;
    const weightName = node.input[1];
    if (weightName === undefined) continue;
    const weight = matchQuantizedWeight(weightName, producer, scope);
    if (weight === undefined) continue;
    const newName = dequantizedInitializer(weight, added, names);
    node.input = [node.input[0] ?? '', newName];
    rewrites.push(
      `${node.name ?? '(unnamed MatMul)'}: ${weight.table.tensor.name ?? ''}` +
        `${weight.transposed ? ' transposed' : ''} dequantized to float32 ${newName}`,
    );
    changed = true;
  }
  if (changed) removeDeadNodes(graph);
}

/**
 * q8, int8 and uint8 files, as `quantize_dynamic` writes them, compute every projection (and the encoder's two Conv)
 * as `DynamicQuantizeLinear(x)` → `MatMulInteger(xq, Wq, x_zero, W_zero)` → `Cast` → `Mul(·, x_scale · W_scale)`:
 * besides the 8-bit weights, every activation is rounded to 8 bits with one scale for the whole tensor, at every
 * layer. Whisper's activations have outliers, so that rounding costs far more than the weights' own: on longform_en
 * (whisper-base, openai's defaults) the shipped q8 files give 15.86 % WER, the same q8 weights with float activations
 * 13.06 %, fp32 weights 12.75 %.
 *
 * This replaces each such chain by `MatMul(x, W)` (`Conv` for ConvInteger, same attributes) where
 * W = (Wq − W_zero) · W_scale is computed once, in float32, exactly as DequantizeLinear would: the weights keep the
 * file's 8-bit values; only the activations stop being quantized. The dead quantizers go too. Costs 4 bytes per
 * weight in the cached copy and in memory. With `stepBlock` > 0, the chains of the merged decoder's cached branch
 * become `MatMulNBits` on int8 activations per block of that many inputs instead (`blockQuantizedWeight`). Returns one
 * line per replaced node.
 */
function floatIntegerMatMuls(
  main: GraphProto,
  names: Set<string>,
  added: Map<string, TensorProto>,
  converts: (op: string, x: string) => boolean = () => true,
  stepBlock = 0,
): string[] {
  const changes: string[] = [];
  const scaleMuls = new Set<NodeProto>();
  const visit = (
    graph: GraphProto,
    outerScope: ReadonlyMap<string, Initializer>,
    outerProducer: ReadonlyMap<string, NodeProto>,
  ): void => {
    const { scope, producer } = scopeOf(graph, outerScope, outerProducer);
    for (const node of graph.node) {
      for (const attribute of node.attribute) {
        if (attribute.g !== undefined && attribute.g !== null) visit(attribute.g, scope, producer);
        for (const sub of attribute.graphs) visit(sub, scope, producer);
      }
    }
    const uses = new Map<string, number>();
    const consumers = new Map<string, NodeProto>();
    const read = (name: string): void => void uses.set(name, (uses.get(name) ?? 0) + 1);
    for (const o of graph.output) if (o.name !== undefined) read(o.name);
    for (const node of graph.node) {
      for (const i of node.input) {
        read(i);
        consumers.set(i, node);
      }
      const nested = new Set<string>();
      for (const a of node.attribute) {
        if (a.g !== undefined && a.g !== null) collectInputs(a.g, nested);
        for (const g of a.graphs) collectInputs(g, nested);
      }
      for (const i of nested) read(i);
    }
    const replaced = new Map<NodeProto, NodeProto>();
    const removed = new Set<NodeProto>();
    const blockHere = stepBlock > 0 && graph !== main && isCachedBranch(graph);
    for (const node of graph.node) {
      const chain = matchIntegerChain(node, producer, scope, consumers, uses);
      if (chain === undefined || !converts(node.op_type ?? '', chain.x)) continue;
      let replacement: NodeProto;
      if (blockHere && node.op_type === 'MatMulInteger') {
        const w = blockQuantizedWeight(chain, stepBlock, added, names);
        replacement = newNode({
          name: uniqueName(`${node.name ?? node.op_type}_blocks`, names),
          op_type: 'MatMulNBits',
          domain: 'com.microsoft',
          input: [chain.x, w.b, w.scales, w.zeros],
          output: [chain.mul.output[0] ?? ''],
          attribute: [
            newAttribute({ name: 'K', type: AttributeType.INT, i: w.k }),
            newAttribute({ name: 'N', type: AttributeType.INT, i: w.n }),
            newAttribute({ name: 'bits', type: AttributeType.INT, i: 8 }),
            newAttribute({ name: 'block_size', type: AttributeType.INT, i: stepBlock }),
            newAttribute({ name: 'accuracy_level', type: AttributeType.INT, i: 4 }),
          ],
        });
        changes.push(`${node.name ?? node.op_type}: MatMulNBits on ${w.b} (int8 activations per block of ${stepBlock})`);
      } else {
        const weightName = dequantizedInitializer(
          { table: chain.weight, transposed: false, scale: chain.scale, zeroPoint: chain.zeroPoint, nodes: [] },
          added,
          names,
        );
        const isConv = node.op_type === 'ConvInteger';
        replacement = newNode({
          name: uniqueName(`${node.name ?? node.op_type}_float`, names),
          op_type: isConv ? 'Conv' : 'MatMul',
          input: [chain.x, weightName],
          output: [chain.mul.output[0] ?? ''],
          attribute: isConv ? node.attribute : [],
        });
        changes.push(`${node.name ?? node.op_type}: ${isConv ? 'Conv' : 'MatMul'} on float activations, ${weightName}`);
      }
      replaced.set(chain.mul, replacement);
      removed.add(node);
      removed.add(chain.cast);
      scaleMuls.add(chain.scaleMul);
    }
    if (replaced.size === 0) return;
    const gone = new Set([...removed].flatMap((n) => n.output));
    graph.node = graph.node.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
    graph.value_info = graph.value_info.filter((v) => v.name === undefined || !gone.has(v.name));
  };
  visit(main, new Map(), new Map());
  if (changes.length > 0) {
    removeDeadNodesDeep(main, scaleMuls);
    removeUnreadInitializers(main, new Set());
  }
  return changes;
}

/** The merged decoder's branch with the past: it concatenates past_key_values.N.decoder.* with the step's keys/values. */
function isCachedBranch(graph: GraphProto): boolean {
  return graph.node.some((n) => n.op_type === 'Concat' && /^past_key_values\.\d+\.decoder\./.test(n.input[0] ?? ''));
}

/**
 * The file's 8-bit weight [K, N] (per-tensor scale and zero point) as com.microsoft `MatMulNBits` (bits 8) takes it:
 * [N, ⌈K/block⌉, block] uint8 (each output's column, the last block padded with the zero point), and a scale and a zero
 * point per block, all the file's (int8 weights shifted by 128 with their zero point: the same differences). So the
 * weights are exactly the file's; with `accuracy_level` 4 ONNX Runtime quantizes the activation to int8 per block of
 * `block` inputs and runs its integer kernels. Why only in cached steps: a step of 1–16 rows is bound by reading the
 * weights (1 byte each instead of 4 as float32): the products of base's 6 layers take 3.0 → 0.6–0.7 ms for one row, 3.8
 * → 2.0 ms for eight (this box, ONNX Runtime 1.30). A prompt step (150–220 rows) gained nothing measurable, and
 * longform_en's WER rose to 13.69 % with it. The tied output projection keeps `integerProjection` (MatMulNBits there
 * moved logits by up to 0.9).
 */
function blockQuantizedWeight(
  chain: IntegerChain,
  block: number,
  added: Map<string, TensorProto>,
  names: Set<string>,
): BlockQuantizedWeight {
  const { tensor, graph } = chain.weight;
  const [k, n] = tensor.dims.map(int64ToNumber) as [number, number];
  const key = `${tensor.name ?? ''}\0blocks${block}\0${chain.scale}\0${chain.zeroPoint}`;
  const made = added.get(key);
  const known = made === undefined ? undefined : blockQuantized.get(made);
  if (known !== undefined) return known;
  const blocks = Math.ceil(k / block);
  const raw = tensor.raw_data as Uint8Array;
  const shift = tensor.data_type === DataType.INT8 ? 128 : 0;
  const zero = (chain.zeroPoint + shift) & 255;
  const b = new Uint8Array(n * blocks * block).fill(zero);
  for (let r = 0; r < k; r++) {
    const row = r * n;
    for (let c = 0; c < n; c++) b[c * blocks * block + r] = ((raw[row + c] as number) + shift) & 255;
  }
  const stem = (tensor.name ?? 'weight').replace(/_quantized$/, '');
  const result: BlockQuantizedWeight = {
    b: uniqueName(`${stem}_blocks${block}`, names),
    scales: uniqueName(`${stem}_blocks${block}_scales`, names),
    zeros: uniqueName(`${stem}_blocks${block}_zeros`, names),
    k,
    n,
  };
  const scales = new Float32Array(n * blocks).fill(chain.scale);
  const tensors = [
    newTensor({ name: result.b, dims: [n, blocks, block], data_type: DataType.UINT8, raw_data: b }),
    // [N, blocks] (ONNX Runtime still reads the older flat [N · blocks] too, but marks it for removal)
    newTensor({ name: result.scales, dims: [n, blocks], data_type: DataType.FLOAT, raw_data: new Uint8Array(scales.buffer) }),
    newTensor({ name: result.zeros, dims: [n, blocks], data_type: DataType.UINT8, raw_data: new Uint8Array(n * blocks).fill(zero) }),
  ];
  graph.initializer = [...graph.initializer, ...tensors];
  tensors.forEach((t, i) => added.set(i === 0 ? key : `${key}\0${i}`, t));
  blockQuantized.set(tensors[0] as TensorProto, result);
  return result;
}

interface BlockQuantizedWeight {
  /** Initializer names: the weights, their scales and zero points. */
  b: string;
  scales: string;
  zeros: string;
  k: number;
  n: number;
}

const blockQuantized = new WeakMap<TensorProto, BlockQuantizedWeight>();

/**
 * `MatMulInteger(a, B, a_zero, B_zero)` computes Σ (a − a_zero)(B − B_zero) in int32: storing a uint8 B and its zero
 * point as int8, both shifted by −128, leaves every (B − B_zero) and so the result unchanged, and lets ONNX Runtime
 * use its u8×s8 kernels (VNNI/AMX) instead of u8×u8. Only initializers that nothing but a MatMulInteger's weight or
 * weight zero point reads, with a per-tensor zero point. Returns one line per converted weight.
 */
function signedIntegerWeights(main: GraphProto): string[] {
  const changes: string[] = [];
  const readers = new Map<string, { node: NodeProto; slot: number }[]>();
  const initializers = new Map<string, TensorProto>();
  const collect = (graph: GraphProto): void => {
    for (const t of graph.initializer) if (t.name !== undefined) initializers.set(t.name, t);
    for (const node of graph.node) {
      node.input.forEach((name, slot) => readers.set(name, [...(readers.get(name) ?? []), { node, slot }]));
    }
    for (const sub of subgraphsOf(graph)) collect(sub);
  };
  collect(main);
  const onlyWeightOf = (name: string, slot: number): boolean =>
    (readers.get(name) ?? []).every((r) => r.node.op_type === 'MatMulInteger' && isDefaultDomain(r.node.domain) && r.slot === slot);
  const shift = (t: TensorProto): void => {
    if (t.raw_data !== undefined && t.raw_data !== null && t.raw_data.length > 0) {
      const out = new Int8Array(t.raw_data.length);
      for (let i = 0; i < out.length; i++) out[i] = (t.raw_data[i] as number) - 128;
      t.raw_data = new Uint8Array(out.buffer);
    } else t.int32_data = t.int32_data.map((v) => v - 128);
    t.data_type = DataType.INT8;
  };
  // per weight zero point: the weights its MatMulIntegers read; all of them must convert, or none does
  for (const [zeroName, zeroReaders] of readers) {
    const zero = initializers.get(zeroName);
    if (zero?.data_type !== DataType.UINT8 || elementCount(zero) !== 1 || !onlyWeightOf(zeroName, 3)) continue;
    const weights = [...new Set(zeroReaders.map((r) => r.node.input[1] ?? ''))];
    const convertible = weights.every((w) => {
      const t = initializers.get(w);
      return (
        t?.data_type === DataType.UINT8 &&
        onlyWeightOf(w, 1) &&
        (readers.get(w) ?? []).every((r) => r.node.input[3] === zeroName)
      );
    });
    if (!convertible) continue;
    shift(zero);
    for (const w of weights) {
      shift(initializers.get(w) as TensorProto);
      changes.push(`${w}: uint8 weight stored as int8 (with its zero point ${zeroName})`);
    }
  }
  return changes;
}

/**
 * Per-row dynamic int8 activations for the files' `DynamicQuantizeLinear → MatMulInteger` chains. The files quantize
 * each activation tensor with one scale and zero point for the whole tensor (`DynamicQuantizeLinear`): every token's
 * row shares the range of the tensor's largest outlier. This replaces each such quantizer, where every reader is a
 * matched `MatMulInteger` chain (in its graph or in a nested one), by a per-row symmetric one (as CTranslate2 quantizes
 * activations): s = max|x_row| / 127, q = round(x / s) + 128 as uint8 (`QuantizeLinear` along the rows, zero point
 * 128), so each row uses its own 8 bits. The chains keep a scalar activation scale, the largest row's, and a `Mul` after
 * each chain multiplies every output row by its own scale over that one (why not the row scales in the chain: below).
 * The weights stay the files' 8-bit values, and the products ONNX Runtime's integer kernels. ConvInteger chains are
 * left alone (the caller makes them float: a row of a convolution's input is not one output's input). A quantizer
 * whose outputs share their names with values of another graph (the branches of a merged decoder's `If` may repeat
 * names) is left alone too, as is every one below opset 13 (`QuantizeLinear` along an axis). Returns one line per
 * replaced quantizer.
 */
function rowQuantizedActivations(main: GraphProto, names: Set<string>, opset: number): string[] {
  const changes: string[] = [];
  if (opset < 13) return changes;
  const { constant, floatConstant, i64 } = constantPool(main, names, 'row_quant');

  // every graph's MatMulInteger chains, and every read of every name (nested graphs read outer names)
  const chainOf = new Map<NodeProto, { chain: IntegerChain; graph: GraphProto }>();
  const readers = new Map<string, { node: NodeProto; slot: number }[]>();
  const quantizers: { node: NodeProto; graph: GraphProto }[] = [];
  const produced = new Map<string, number>();
  const visit = (
    graph: GraphProto,
    outerScope: ReadonlyMap<string, Initializer>,
    outerProducer: ReadonlyMap<string, NodeProto>,
  ): void => {
    const { scope, producer } = scopeOf(graph, outerScope, outerProducer);
    for (const sub of subgraphsOf(graph)) visit(sub, scope, producer);
    const uses = new Map<string, number>();
    const consumers = new Map<string, NodeProto>();
    for (const o of graph.output) if (o.name !== undefined) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
    for (const node of graph.node) {
      node.input.forEach((name, slot) => {
        readers.set(name, [...(readers.get(name) ?? []), { node, slot }]);
        uses.set(name, (uses.get(name) ?? 0) + 1);
        consumers.set(name, node);
      });
      const nested = new Set<string>();
      for (const a of node.attribute) {
        if (a.g !== undefined && a.g !== null) collectInputs(a.g, nested);
        for (const g of a.graphs) collectInputs(g, nested);
      }
      for (const name of nested) uses.set(name, (uses.get(name) ?? 0) + 1);
      for (const output of node.output) produced.set(output, (produced.get(output) ?? 0) + 1);
      if (node.op_type === 'DynamicQuantizeLinear' && isDefaultDomain(node.domain)) quantizers.push({ node, graph });
    }
    for (const node of graph.node) {
      if (node.op_type !== 'MatMulInteger') continue;
      const chain = matchIntegerChain(node, producer, scope, consumers, uses);
      if (chain !== undefined) chainOf.set(node, { chain, graph });
    }
  };
  visit(main, new Map(), new Map());

  const replace = new Map<NodeProto, NodeProto[]>();
  for (const { node, graph } of quantizers) {
    const [x] = node.input;
    const [xq, xScale, xZero] = node.output;
    if (!x || !xq || !xScale || !xZero || [xq, xScale, xZero].some((o) => produced.get(o) !== 1)) continue;
    const chains = (readers.get(xq) ?? []).map((r) =>
      r.slot === 0 && r.node.input[2] === xZero ? chainOf.get(r.node) : undefined,
    );
    const ok =
      chains.length > 0 &&
      chains.every((c) => c !== undefined) &&
      (readers.get(xScale) ?? []).every((r) => chains.some((c) => c?.chain.scaleMul === r.node)) &&
      (readers.get(xZero) ?? []).every((r) => r.node.op_type === 'MatMulInteger' && r.slot === 2);
    if (!ok) continue;
    const tmp = (what: string): string => uniqueName(`${x}_row_${what}`, names);
    const [rowMax, rowMin, negMin, absMax, rowScale] = ['max', 'min', 'neg_min', 'absmax', 'scale'].map(tmp) as [string, string, string, string, string];
    const [flatScale, flatShape, flatZero, flat, flatQ, shape, rowFactor] = ['scale_flat', 'scale_shape', 'zero', 'flat', 'q_flat', 'shape', 'factor'].map(tmp) as [string, string, string, string, string, string, string];
    const op = (op_type: string, input: string[], output: string, attribute: NodeProto['attribute'] = []): NodeProto =>
      newNode({ name: uniqueName(`${node.name ?? 'DynamicQuantizeLinear'}_row_${op_type}`, names), op_type, input, output: [output], attribute });
    const reduce = (op_type: string, output: string): NodeProto =>
      op(op_type, opset >= 18 ? [x, i64('axes', [-1n])] : [x], output, [
        newAttribute({ name: 'keepdims', type: AttributeType.INT, i: 1 }),
        ...(opset >= 18 ? [] : [newAttribute({ name: 'axes', type: AttributeType.INTS, ints: [-1] })]),
      ]);
    replace.set(node, [
      // s = max |x_row| / 127, shaped [.., 1] (an all-zero row gets a tiny scale, and codes 128)
      reduce('ReduceMax', rowMax),
      reduce('ReduceMin', rowMin),
      op('Neg', [rowMin], negMin),
      op('Max', [rowMax, negMin, floatConstant('floor', 1e-30)], absMax),
      op('Mul', [absMax, floatConstant('inv127', 1 / 127)], rowScale),
      // QuantizeLinear along axis 0 of x seen as [rows, K]: one pass, round half to even, zero point 128
      op('Reshape', [rowScale, i64('flat', [-1n])], flatScale),
      op('Shape', [flatScale], flatShape),
      op(
        'Expand',
        [constant('zero128', (name) => newTensor({ name, data_type: DataType.UINT8, dims: [1], raw_data: Uint8Array.of(128) })), flatShape],
        flatZero,
      ),
      op('Flatten', [x], flat, [newAttribute({ name: 'axis', type: AttributeType.INT, i: -1 })]),
      op('QuantizeLinear', [flat, flatScale, flatZero], flatQ, [newAttribute({ name: 'axis', type: AttributeType.INT, i: 0 })]),
      op('Shape', [x], shape),
      op('Reshape', [flatQ, shape], xq),
      // the chains' activation scale: the largest row's, computed (not a constant: see below); each row's output is
      // then multiplied by its own scale over that one, ≤ 1
      op('ReduceMax', [rowScale], xScale, [newAttribute({ name: 'keepdims', type: AttributeType.INT, i: 0 })]),
      op('Div', [rowScale, xScale], rowFactor),
    ]);
    // The chains keep a scalar activation scale and zero point (128). ONNX Runtime fuses each chain, with the bias Add
    // after it, into MatMulIntegerToFloat; given the [.., 1] row scales as its activation scale, that fused node
    // computes values far off (relative error ~1 on the base encoder, ONNX Runtime 1.30), so the row factors multiply
    // its output in a Mul of their own (which also keeps the bias out of it). The scalar scale is computed, not a
    // constant: a constant makes the chain's scale product constant-folded, the fusion (which looks for that Mul) no
    // longer applies, and the int32 product goes through Cast and Mul (50 ms more per window for base).
    graph.initializer = [...graph.initializer, newTensor({ name: xZero, data_type: DataType.UINT8, dims: [], raw_data: Uint8Array.of(128) })];
    graph.value_info = graph.value_info.filter((v) => v.name !== xScale && v.name !== xZero);
    for (const c of chains) {
      if (c === undefined) continue;
      const y = c.chain.mul.output[0] ?? '';
      const unscaled = uniqueName(`${y}_unscaled`, names);
      c.chain.mul.output = [unscaled];
      replace.set(c.chain.mul, [c.chain.mul, op('Mul', [unscaled, rowFactor], y)]);
    }
    changes.push(`${node.name ?? 'DynamicQuantizeLinear'}: per-row int8 activations for ${chains.length} MatMulInteger`);
  }
  const apply = (graph: GraphProto): void => {
    for (const sub of subgraphsOf(graph)) apply(sub);
    graph.node = graph.node.flatMap((n) => replace.get(n) ?? [n]);
  };
  if (replace.size > 0) apply(main);
  return changes;
}

/**
 * Lets the encoder take windows shorter than 30 s: its input's frame count becomes symbolic and the positional
 * embedding it adds after the convolutions ([1500, d_model], an initializer) is sliced to the positions the input
 * has. A whole window computes as before (the slice takes all rows). Whisper is trained on 30-s windows, the audio
 * padded with silence; with a few seconds of that padding left a window still decodes well, and the encoder's work
 * falls with its square (stream/window.ts `decodeStep`; an encoder run on the audio alone, whisper.cpp's audio_ctx
 * with no padding, loops and misses words). Returns one line, or none when the graph does not have that shape.
 */
function variableEncoderWindow(main: GraphProto, names: Set<string>): string[] {
  const input = main.input[0];
  const frames = input?.type?.tensor_type?.shape?.dim?.[2];
  const framesFixed = frames !== undefined && frames.dim_value !== undefined && frames.dim_value !== null ? int64ToNumber(frames.dim_value) : 0;
  if (input === undefined || frames === undefined || framesFixed <= 0 || framesFixed % 2 !== 0) return [];
  const positions = framesFixed / 2;
  const initializers = new Map(main.initializer.map((t) => [t.name ?? '', t]));
  const isEmbedding = (name: string): boolean => {
    const t = initializers.get(name);
    return t !== undefined && t.data_type === DataType.FLOAT && t.dims.length === 2 && int64ToNumber(t.dims[0]) === positions;
  };
  const adds = main.node.filter((n) => n.op_type === 'Add' && isDefaultDomain(n.domain) && n.input.some(isEmbedding));
  const add = adds[0];
  if (adds.length !== 1 || add === undefined) return [];
  const embedding = add.input.find(isEmbedding) ?? '';
  const x = add.input.find((i) => i !== embedding) ?? '';
  const { i64 } = constantPool(main, names, 'window');
  const name = (what: string): string => uniqueName(`${embedding}_window_${what}`, names);
  const [shape, count, sliced] = [name('shape'), name('positions'), name('sliced')];
  const node = (op_type: string, inputs: string[], output: string): NodeProto =>
    newNode({ name: uniqueName(`/window/${op_type}`, names), op_type, input: inputs, output: [output] });
  main.node.splice(
    main.node.indexOf(add),
    0,
    node('Shape', [x], shape),
    node('Slice', [shape, i64('one', [1n]), i64('two', [2n])], count),
    node('Slice', [embedding, i64('zero', [0n]), count, i64('zero', [0n])], sliced),
  );
  add.input = add.input.map((i) => (i === embedding ? sliced : i));
  // the input's frames and every fixed length of the window (frames or positions) become symbolic
  symbolicDim(frames, 'frames');
  for (const o of main.output) {
    const d = o.type?.tensor_type?.shape?.dim?.[1];
    if (d !== undefined && d.dim_value !== undefined && d.dim_value !== null && int64ToNumber(d.dim_value) === positions) {
      symbolicDim(d, 'positions');
    }
  }
  main.value_info = main.value_info.filter(
    (v) => !(v.type?.tensor_type?.shape?.dim ?? []).some((d) => [positions, framesFixed].includes(int64ToNumber(d.dim_value))),
  );
  return [`${add.name ?? 'Add'}: positional embedding ${embedding} sliced to the input's length (windows shorter than 30 s)`];
}

/**
 * The name part (`/layers.N/`, N the largest) of the activations the graph's last layer quantizes, in the names the
 * exporters give (Optimum's, transformers.js's): `mixed` keeps that layer's products float, as quantizers commonly keep
 * a network's last layer. Measured on whisper-base (longform_en, openai's defaults): every layer per row, 12.91 % WER
 * and 24 of the 30 pieces of segments.tsv with a segment starting within 1 s; the last layer float, 13.06 % and 28
 * (float everywhere: 13.06 %, 27), for ~6 % of the encoder's time. The timestamps react to small changes of the
 * encoder's output erratically (its relative error is 5.4 % either way; the fc2 inputs float instead also gave 28),
 * so this is a measured choice on one file, not a law. Undefined when no quantized activation has such a name (then
 * every layer is per row).
 */
function lastLayerTag(main: GraphProto): string | undefined {
  let last = -1;
  const visit = (graph: GraphProto): void => {
    for (const node of graph.node) {
      const m = node.op_type === 'DynamicQuantizeLinear' ? /\/layers\.(\d+)\//.exec(node.input[0] ?? '') : null;
      if (m) last = Math.max(last, Number(m[1]));
    }
    for (const sub of subgraphsOf(graph)) visit(sub);
  };
  visit(main);
  return last < 0 ? undefined : `/layers.${last}/`;
}

/**
 * What a graph's nodes see: the initializers in scope (its own and, for a nested graph, the outer ones that none of its
 * inputs or nodes shadows) and the producer of every value (outer ones included).
 */
function scopeOf(
  graph: GraphProto,
  outerScope: ReadonlyMap<string, Initializer>,
  outerProducer: ReadonlyMap<string, NodeProto>,
): { scope: Map<string, Initializer>; producer: Map<string, NodeProto> } {
  const scope = new Map(outerScope);
  for (const tensor of graph.initializer) if (tensor.name !== undefined) scope.set(tensor.name, { tensor, graph });
  for (const input of graph.input) if (input.name !== undefined) scope.delete(input.name);
  const producer = new Map(outerProducer);
  for (const node of graph.node) for (const output of node.output) producer.set(output, node);
  for (const node of graph.node) for (const output of node.output) scope.delete(output);
  return { scope, producer };
}

/** Drops initializers nothing reads any more (the bypassed 8-bit weights, their scales and zero points). */
function removeUnreadInitializers(graph: GraphProto, outerReads: ReadonlySet<string>): void {
  const reads = new Set(outerReads);
  const collect = (g: GraphProto): void => {
    for (const o of g.output) if (o.name !== undefined) reads.add(o.name);
    for (const node of g.node) {
      for (const i of node.input) reads.add(i);
      for (const a of node.attribute) {
        if (a.g !== undefined && a.g !== null) collect(a.g);
        for (const sub of a.graphs) collect(sub);
      }
    }
  };
  collect(graph);
  graph.initializer = graph.initializer.filter((t) => t.name === undefined || reads.has(t.name));
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.g !== undefined && a.g !== null) removeUnreadInitializers(a.g, reads);
      for (const g of a.graphs) removeUnreadInitializers(g, reads);
    }
  }
}

/** The nodes of one `DynamicQuantizeLinear → MatMulInteger/ConvInteger → Cast → Mul(scales)` chain. */
interface IntegerChain {
  /** The float activation the DynamicQuantizeLinear quantized. */
  x: string;
  weight: Initializer;
  scale: number;
  zeroPoint: number;
  cast: NodeProto;
  mul: NodeProto;
  scaleMul: NodeProto;
}

function matchIntegerChain(
  node: NodeProto,
  producer: ReadonlyMap<string, NodeProto>,
  scope: ReadonlyMap<string, Initializer>,
  consumers: ReadonlyMap<string, NodeProto>,
  uses: ReadonlyMap<string, number>,
): IntegerChain | undefined {
  if ((node.op_type !== 'MatMulInteger' && node.op_type !== 'ConvInteger') || !isDefaultDomain(node.domain)) {
    return undefined;
  }
  const [xq, wName, xZero, wZero] = node.input;
  const out = node.output[0];
  if (xq === undefined || wName === undefined || out === undefined) return undefined;
  const dql = producer.get(xq);
  if (dql?.op_type !== 'DynamicQuantizeLinear' || !isDefaultDomain(dql.domain) || dql.output[0] !== xq) return undefined;
  if ((xZero ?? '') !== (dql.output[2] ?? '')) return undefined;
  const x = dql.input[0];
  if (x === undefined || x === '') return undefined;
  const weight = scope.get(wName);
  const t = weight?.tensor;
  if (weight === undefined || t === undefined || t.raw_data === undefined || t.raw_data === null) return undefined;
  if (t.data_type !== DataType.UINT8 && t.data_type !== DataType.INT8) return undefined;
  if (t.raw_data.length !== elementCount(t) || t.dims.length !== (node.op_type === 'MatMulInteger' ? 2 : 3)) {
    return undefined;
  }
  let zeroPoint = 0;
  if (wZero !== undefined && wZero !== '') {
    const zeroInit = scope.get(wZero);
    const zero = zeroInit === undefined ? undefined : scalarInt8(zeroInit.tensor);
    if (zero === undefined || zero.type !== t.data_type) return undefined; // per-channel zero points are left alone
    zeroPoint = zero.value;
  }
  const cast = consumers.get(out);
  if (uses.get(out) !== 1 || cast?.op_type !== 'Cast' || !isDefaultDomain(cast.domain)) return undefined;
  const to = cast.attribute.find((a) => a.name === 'to');
  const castOut = cast.output[0];
  if (to === undefined || int64ToNumber(to.i) !== DataType.FLOAT || castOut === undefined) return undefined;
  const mul = consumers.get(castOut);
  if (uses.get(castOut) !== 1 || mul?.op_type !== 'Mul' || !isDefaultDomain(mul.domain) || mul.input.length !== 2) {
    return undefined;
  }
  const other = mul.input[0] === castOut ? mul.input[1] : mul.input[0];
  const scaleMul = other === undefined ? undefined : producer.get(other);
  if (scaleMul?.op_type !== 'Mul' || !isDefaultDomain(scaleMul.domain) || scaleMul.input.length !== 2) return undefined;
  const xScale = dql.output[1];
  const wScale = scaleMul.input[0] === xScale ? scaleMul.input[1] : scaleMul.input[1] === xScale ? scaleMul.input[0] : undefined;
  const scaleInit = wScale === undefined ? undefined : scope.get(wScale);
  const scale = scaleInit === undefined ? undefined : scalarFloat(scaleInit.tensor);
  if (scale === undefined) return undefined; // per-channel scales are left alone
  return { x, weight, scale, zeroPoint, cast, mul, scaleMul };
}

/** The inputs `addPaddingInputs` gives the decoder. */
export const PADDING_INPUTS = { positions: 'position_ids', bias: 'attention_bias' } as const;

/**
 * Gives the decoder two inputs that let rows of different prompt lengths share a batch (left-padded to one length):
 * `position_ids` [batch, n] (int64) replaces the positions the graph derives from the cache length, so a padded row
 * keeps the positions it would have alone; `attention_bias` [batch, 1, 1, past + n] (float32) is added to every
 * self-attention score before the softmax (0 for real tokens, a large negative number for padding), next to the
 * graph's causal mask. A row with no padding and positions 0, 1, … computes what the original graph computes.
 *
 * Matches the Hugging Face export's names (`embed_positions` Gather, `self_attn` Softmax) in the graph and in the
 * branches of the merged decoder's `If`; returns one line per change (none when the graph is not that export).
 */
function addPaddingInputs(main: GraphProto, names: Set<string>): string[] {
  const changes: string[] = [];
  const visit = (graph: GraphProto): void => {
    for (const sub of subgraphsOf(graph)) visit(sub);
    const positions = graph.node.filter(
      (n) => n.op_type === 'Gather' && isDefaultDomain(n.domain) && (n.input[0] ?? '').includes('embed_positions'),
    );
    const softmaxes = graph.node.filter(
      (n) => n.op_type === 'Softmax' && isDefaultDomain(n.domain) && (n.name ?? '').includes('/self_attn/'),
    );
    if (positions.length !== 1 || softmaxes.length === 0) return;
    const gather = positions[0] as NodeProto;
    gather.input = [gather.input[0] ?? '', PADDING_INPUTS.positions];
    changes.push(`${gather.name ?? '(Gather)'}: positions from ${PADDING_INPUTS.positions}`);
    const added: NodeProto[] = [];
    for (const softmax of softmaxes) {
      const scores = softmax.input[0] ?? '';
      const biased = uniqueName(`${scores}_padding_bias`, names);
      added.push(
        newNode({
          name: uniqueName(`${softmax.name ?? 'self_attn'}_padding_bias`, names),
          op_type: 'Add',
          input: [scores, PADDING_INPUTS.bias],
          output: [biased],
        }),
      );
      softmax.input = [biased, ...softmax.input.slice(1)];
      changes.push(`${softmax.name ?? '(Softmax)'}: scores + ${PADDING_INPUTS.bias}`);
    }
    // each Add goes right before its Softmax (node order is topological)
    const nodes: NodeProto[] = [];
    for (const n of graph.node) {
      const i = softmaxes.indexOf(n);
      if (i >= 0) nodes.push(added[i] as NodeProto);
      nodes.push(n);
    }
    graph.node = nodes;
  };
  visit(main);
  if (changes.length > 0) {
    main.input = [
      ...main.input,
      newTensorValueInfo(PADDING_INPUTS.positions, DataType.INT64, ['batch_size', 'decoder_sequence_length']),
      newTensorValueInfo(PADDING_INPUTS.bias, DataType.FLOAT, ['batch_size', 1, 1, 'total_sequence_length']),
    ];
  }
  return changes;
}

/** The decoder input `addLogitsFrom` adds: [1] int64, the first position whose logits are computed. */
export const LOGITS_FROM = 'logits_from';

/**
 * Gives the decoder an input `logits_from` ([1] int64) and slices the output projection's input to positions
 * `logits_from …`: the `logits` output then holds only those positions (0: all of them, as the graph had it). A
 * required input (ONNX Runtime lists an input with a default initializer apart from the others, as overridable).
 * The first step of a window runs the whole prompt (with the previous text, often 150–220 tokens) and, as exported,
 * projects every position onto the 51865-token vocabulary (5 GMAC and a 40-MB output for 190 positions of base), of
 * which decoding reads the last position and the no-speech position a few before it; word alignment reads all.
 *
 * In the main graph or the branches of the merged decoder's `If`, where `logits` is computed by a MatMul. Returns one
 * line per sliced graph.
 */
function addLogitsFrom(main: GraphProto, names: Set<string>): string[] {
  if (names.has(LOGITS_FROM)) return [];
  const found = logitsSites(main)?.sites ?? [];
  if (found.length === 0) return [];
  const changes: string[] = [];
  const int64 = (values: bigint[]): Uint8Array => new Uint8Array(BigInt64Array.from(values).buffer);
  const ends = uniqueName('logits_from_ends', names);
  const axes = uniqueName('logits_from_axes', names);
  main.initializer = [
    ...main.initializer,
    newTensor({ name: ends, data_type: DataType.INT64, dims: [1], raw_data: int64([2n ** 62n]) }),
    newTensor({ name: axes, data_type: DataType.INT64, dims: [1], raw_data: int64([1n]) }),
  ];
  main.input = [...main.input, newTensorValueInfo(LOGITS_FROM, DataType.INT64, [1])];
  names.add(LOGITS_FROM);
  for (const { graph, matmul } of found) {
    const hidden = matmul.input[0] ?? '';
    const sliced = uniqueName(`${hidden}_from`, names);
    const slice = newNode({
      name: uniqueName('/proj_out/logits_from/Slice', names),
      op_type: 'Slice',
      input: [hidden, LOGITS_FROM, ends, axes],
      output: [sliced],
    });
    matmul.input = [sliced, ...matmul.input.slice(1)];
    const at = graph.node.indexOf(matmul);
    graph.node = [...graph.node.slice(0, at), slice, ...graph.node.slice(at)];
    changes.push(`${matmul.name ?? '(MatMul)'}: logits of positions ${LOGITS_FROM} … only`);
  }
  return changes;
}

/**
 * Where the decoder computes its `logits` output with a MatMul: in the main graph, or in each branch of the merged
 * decoder's `If` (undefined when not so).
 */
function logitsSites(main: GraphProto): { ifNode: NodeProto | undefined; sites: { graph: GraphProto; matmul: NodeProto }[] } | undefined {
  const producerOf = (graph: GraphProto, output: string): NodeProto | undefined =>
    graph.node.find((n) => n.output.includes(output));
  const own = producerOf(main, 'logits');
  if (own === undefined || !isDefaultDomain(own.domain)) return undefined;
  if (own.op_type === 'MatMul') return { ifNode: undefined, sites: [{ graph: main, matmul: own }] };
  if (own.op_type !== 'If') return undefined;
  const index = own.output.indexOf('logits');
  const sites: { graph: GraphProto; matmul: NodeProto }[] = [];
  for (const a of own.attribute) {
    const branch = a.g;
    if (branch === undefined || branch === null) continue;
    const output = branch.output[index]?.name;
    const node = output === undefined ? undefined : producerOf(branch, output);
    if (node?.op_type !== 'MatMul' || !isDefaultDomain(node.domain)) return undefined;
    sites.push({ graph: branch, matmul: node });
  }
  return sites.length === 2 ? { ifNode: own, sites } : undefined;
}

/** The decoder output `addLogSumExp` adds: log Σ exp of each position's logits, [batch, positions]. */
export const LOGITS_LOGSUMEXP = 'logits_logsumexp';

/**
 * Gives the decoder an output `logits_logsumexp` [batch, positions]: log Σ exp of the logits over the vocabulary,
 * computed by ONNX Runtime (a JavaScript loop of `Math.exp` over 51865 logits takes about a millisecond per row and
 * step). Decoding derives each filtered row's normaliser from it (decoding `filteredLogZ`). One `ReduceLogSumExp` sums
 * 51865 terms in float32 one after another: 1e-4 off the float64 value; so the vocabulary is split in two factors
 * (205 × 253 for 51865) and reduced in two levels, 2e-6 off (float32 rounding of the result). Returns one line per
 * graph.
 */
function addLogSumExp(main: GraphProto, names: Set<string>, opset: number): string[] {
  if (names.has(LOGITS_LOGSUMEXP)) return [];
  const found = logitsSites(main);
  if (found === undefined) return [];
  const changes: string[] = [];
  let axes: string | undefined;
  if (opset >= 18) {
    axes = uniqueName('logits_logsumexp_axes', names);
    const raw = new Uint8Array(BigInt64Array.of(-1n).buffer);
    main.initializer = [...main.initializer, newTensor({ name: axes, data_type: DataType.INT64, dims: [1], raw_data: raw })];
  }
  const value = (name: string): ValueInfoProto =>
    newTensorValueInfo(name, DataType.FLOAT, ['batch_size', 'logits_sequence_length']);
  // the vocabulary size, from the projection's weight, and its two most balanced factors
  const initializers = new Map<string, TensorProto>();
  for (const g of [main, ...found.sites.map((x) => x.graph)]) for (const t of g.initializer) if (t.name) initializers.set(t.name, t);
  const weight = initializers.get(found.sites[0]?.matmul.input[1] ?? '');
  const vocab = weight?.dims.length === 2 ? int64ToNumber(weight.dims[1] ?? 0) : 0;
  let rows = Math.floor(Math.sqrt(vocab));
  while (rows > 1 && vocab % rows !== 0) rows--;
  let shape: string | undefined;
  if (rows >= 16) {
    shape = uniqueName('logits_logsumexp_shape', names);
    const raw = new Uint8Array(BigInt64Array.of(0n, 0n, BigInt(rows), BigInt(vocab / rows)).buffer);
    main.initializer = [...main.initializer, newTensor({ name: shape, data_type: DataType.INT64, dims: [4], raw_data: raw })];
  }
  const reduce = (input: string, output: string): NodeProto =>
    newNode({
      name: uniqueName('/proj_out/ReduceLogSumExp', names),
      op_type: 'ReduceLogSumExp',
      input: axes === undefined ? [input] : [input, axes],
      output: [output],
      attribute: [
        newAttribute({ name: 'keepdims', type: AttributeType.INT, i: 0 }),
        ...(axes === undefined ? [newAttribute({ name: 'axes', type: AttributeType.INTS, ints: [-1] })] : []),
      ],
    });
  for (const { graph, matmul } of found.sites) {
    const logits = matmul.output[0] ?? '';
    const out = found.ifNode === undefined ? LOGITS_LOGSUMEXP : uniqueName(`${logits}_logsumexp`, names);
    if (shape === undefined) graph.node = [...graph.node, reduce(logits, out)];
    else {
      const split = uniqueName(`${logits}_split`, names);
      const partial = uniqueName(`${logits}_logsumexp_partial`, names);
      graph.node = [
        ...graph.node,
        newNode({ name: uniqueName('/proj_out/Reshape', names), op_type: 'Reshape', input: [logits, shape], output: [split] }),
        reduce(split, partial),
        reduce(partial, out),
      ];
    }
    graph.output = [...graph.output, value(out)];
    changes.push(`${matmul.name ?? '(MatMul)'}: ${LOGITS_LOGSUMEXP} output`);
  }
  if (found.ifNode !== undefined) {
    found.ifNode.output = [...found.ifNode.output, LOGITS_LOGSUMEXP];
    main.output = [...main.output, value(LOGITS_LOGSUMEXP)];
  }
  names.add(LOGITS_LOGSUMEXP);
  return changes;
}

/** How many 8-bit parts `integerProjection` splits the activation into: each divides the rounding error by 254 (two
 * parts: logits up to 7e-3 off). */
const PROJECTION_PARTS = 3;

/**
 * The tied output projection of an 8-bit file as an integer product, as exact as the float32 one: the largest single
 * cost of a cached decoding step is reading the projection's weight (51865 × 512 for base: 106 MB as the float32
 * `dequantizedInitializer` makes it, 27 MB as the file's 8-bit table), and a step of one to eight rows is bound by
 * that read, not by arithmetic. The files' own arithmetic (one 8-bit code per activation element) moves logits by up
 * to 1.3 and changes argmaxes (see the top of this file), so each row of the activation is split into three 8-bit
 * parts: x ≈ s₁·q₁ + s₂·q₂ + s₃·q₃ with s₁ = max|x| / 127, s₂ = s₁ / 254, s₃ = s₂ / 254 and each q the rounded rest
 * over its scale, off by at most s₃ / 2 per element. The parts go through one MatMulInteger as rows of one batch (the
 * table is read once for all), and the logits are Σ s_k·s_w·P_k. The table keeps the file's integers (as int8 when
 * `signed`: see `exactSignedInt8Kernels`). Teacher-forced over the eval files' reference tokens this moves logits by
 * at most 4.6e-5 (whisper-base; 2.5e-5 tiny.en), as float32 summation order does, and changes no argmax
 * (bench/projection-check.mjs); the float32 table is dropped when nothing else reads it. Returns one line per site.
 */
function integerProjection(main: GraphProto, names: Set<string>, opset: number, signed: boolean): string[] {
  const changes: string[] = [];
  if (opset < 13) return changes;
  const found = logitsSites(main);
  if (found === undefined) return changes;
  const { constant, floatConstant, i64 } = constantPool(main, names, 'proj_int8');
  const scalarI64 = (key: string, value: bigint): string =>
    constant(key, (name) => newTensor({ name, data_type: DataType.INT64, dims: [], raw_data: new Uint8Array(BigInt64Array.of(value).buffer) }));
  const tables = new Map<TensorProto, { weight: string; zero: string; scale: number }>();
  for (const { graph, matmul } of found.sites) {
    const [x, weightName] = matmul.input;
    const [logits] = matmul.output;
    if (!x || !weightName || !logits) continue;
    const float = [...graph.initializer, ...main.initializer].find((t) => t.name === weightName);
    const source = float === undefined ? undefined : dequantizedFrom.get(float);
    if (float === undefined || source === undefined) continue;
    let table = tables.get(float);
    if (table === undefined) {
      // the weight as MatMulInteger reads it, [d_model, vocab]: the file's integers, transposed when the graph did
      const t = source.table.tensor;
      const [rows, cols] = t.dims.map(int64ToNumber) as [number, number];
      const raw = t.raw_data as Uint8Array;
      // the stored type the kernels sum exactly: int8 where `signed`, else uint8 (an int8 table moves up by 128, as
      // u8×s8 on plain AVX2 can saturate); the same integers, with the zero point moved alike
      const unsigned = t.data_type === DataType.UINT8;
      const shift = unsigned && signed ? 128 : !unsigned && !signed ? -128 : 0;
      const out = new Uint8Array(raw.length);
      if (source.transposed) {
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = ((raw[r * cols + c] as number) - shift) & 0xff;
      } else for (let i = 0; i < raw.length; i++) out[i] = ((raw[i] as number) - shift) & 0xff;
      const type = signed ? DataType.INT8 : DataType.UINT8;
      const weight = uniqueName(`${(t.name ?? 'proj').replace(/_quantized$/, '')}_int8${source.transposed ? '_transposed' : ''}`, names);
      const zero = uniqueName(`${weight}_zero_point`, names);
      main.initializer = [
        ...main.initializer,
        newTensor({ name: weight, data_type: type, dims: source.transposed ? [cols, rows] : [rows, cols], raw_data: out }),
        newTensor({ name: zero, data_type: type, dims: [], raw_data: Uint8Array.of((source.zeroPoint - shift) & 0xff) }),
      ];
      table = { weight, zero, scale: source.scale };
      tables.set(float, table);
    }
    const tmp = (what: string): string => uniqueName(`${logits}_int8_${what}`, names);
    const op = (op_type: string, input: string[], output: string, attribute: NodeProto['attribute'] = []): NodeProto =>
      newNode({ name: uniqueName(`/proj_out/int8/${op_type}`, names), op_type, input, output: [output], attribute });
    const int = (name: string, i: number): NodeProto['attribute'] => [newAttribute({ name, type: AttributeType.INT, i })];
    const [abs, max, top] = [tmp('abs'), tmp('max'), tmp('top')];
    const nodes: NodeProto[] = [
      op('Abs', [x], abs),
      op('ReduceMax', opset >= 18 ? [abs, i64('axes', [-1n])] : [abs], max, [
        ...int('keepdims', 1),
        ...(opset >= 18 ? [] : [newAttribute({ name: 'axes', type: AttributeType.INTS, ints: [-1] })]),
      ]),
      op('Max', [max, floatConstant('floor', 1e-30)], top),
    ];
    // part k: scale s_k (s_1 = max|x| / 127, then / 254 each), codes q_k = round(rest / s_k), rest −= s_k · q_k
    const scales: string[] = [];
    const codes: string[] = [];
    let rest = x;
    for (let k = 0; k < PROJECTION_PARTS; k++) {
      const scale = tmp(`s${k}`);
      nodes.push(op('Mul', [k === 0 ? top : (scales[k - 1] as string), floatConstant(k === 0 ? 'inv127' : 'inv254', k === 0 ? 1 / 127 : 1 / 254)], scale));
      const [divided, rounded, clipped, unsqueezed] = [tmp(`d${k}`), tmp(`r${k}`), tmp(`q${k}`), tmp(`u${k}`)];
      nodes.push(
        op('Div', [rest, scale], divided),
        op('Round', [divided], rounded),
        op('Clip', [rounded, floatConstant('lo', -127), floatConstant('hi', 127)], clipped),
        op('Unsqueeze', [clipped, i64('axis0', [0n])], unsqueezed),
      );
      if (k < PROJECTION_PARTS - 1) {
        const [part, next] = [tmp(`p${k}`), tmp(`x${k + 1}`)];
        nodes.push(op('Mul', [clipped, scale], part), op('Sub', [rest, part], next));
        rest = next;
      }
      scales.push(scale);
      codes.push(unsqueezed);
    }
    // the parts as rows of one product: the weight is read once for all of them
    const [stacked, shifted, unsigned, products, productsFloat] = [tmp('stacked'), tmp('shifted'), tmp('codes'), tmp('products'), tmp('products_float')];
    nodes.push(
      op('Concat', codes, stacked, int('axis', 0)),
      op('Add', [stacked, floatConstant('c128', 128)], shifted),
      op('Cast', [shifted], unsigned, int('to', DataType.UINT8)),
      op(
        'MatMulInteger',
        [unsigned, table.weight, constant('zero128', (name) => newTensor({ name, data_type: DataType.UINT8, dims: [], raw_data: Uint8Array.of(128) })), table.zero],
        products,
      ),
      op('Cast', [products], productsFloat, int('to', DataType.FLOAT)),
    );
    let sum = '';
    for (let k = 0; k < PROJECTION_PARTS; k++) {
      const [p, w, term] = [tmp(`part${k}`), tmp(`w${k}`), k === PROJECTION_PARTS - 1 && k === 0 ? logits : tmp(`term${k}`)];
      nodes.push(
        op('Gather', [productsFloat, scalarI64(`index${k}`, BigInt(k))], p, int('axis', 0)),
        op('Mul', [scales[k] as string, floatConstant(`sw${table.scale}`, table.scale)], w),
        op('Mul', [p, w], term),
      );
      if (k > 0) {
        const total = k === PROJECTION_PARTS - 1 ? logits : tmp(`sum${k}`);
        nodes.push(op('Add', [sum, term], total));
        sum = total;
      } else sum = term;
    }
    const at = graph.node.indexOf(matmul);
    graph.node = [...graph.node.slice(0, at), ...nodes, ...graph.node.slice(at + 1)];
    changes.push(`${matmul.name ?? '(MatMul)'}: logits from the 8-bit table ${table.weight} and the activation in ${PROJECTION_PARTS} 8-bit parts`);
  }
  if (changes.length > 0) removeUnreadInitializers(main, new Set());
  return changes;
}

/** The output `addStepOutputs` adds beside `present.{i}.decoder.{kind}`: only the positions of this step. */
export function stepOutputName(present: string): string {
  return present.replace(/^present\./, 'step.');
}

/**
 * Gives the merged decoder one more output per self-attention cache tensor: `step.{i}.decoder.{key,value}`, the keys
 * and values of this step's positions only (the second input of the cached branch's Concat; the whole present in the
 * first-step branch). The caller appends them to the cache it holds instead of fetching the whole `present` tensor
 * every step: ONNX Runtime's Node binding copies every fetched output into a new JavaScript buffer, and the whole
 * cache is `rows × heads × positions × headDim` floats (7.4 MB at 300 positions for base), a cost that grows with
 * the prompt; the step's part is `positions` times smaller. The `present` outputs stay as they were.
 */
function addStepOutputs(main: GraphProto, names: Set<string>): string[] {
  const ifs = main.node.filter((n) => n.op_type === 'If' && isDefaultDomain(n.domain));
  if (ifs.length !== 1) return [];
  const ifNode = ifs[0] as NodeProto;
  const branches = ifNode.attribute.filter((a) => a.g !== undefined && a.g !== null).map((a) => a.g as GraphProto);
  if (branches.length !== 2) return [];
  const presents = ifNode.output.filter((o) => /^present\.\d+\.decoder\.(key|value)$/.test(o));
  if (presents.length === 0 || presents.some((p) => names.has(stepOutputName(p)))) return [];
  // in each branch, the value that holds only this step's positions, per present output
  const plans: { graph: GraphProto; values: string[]; identities: NodeProto[] }[] = [];
  for (const branch of branches) {
    const producer = new Map<string, NodeProto>();
    for (const node of branch.node) for (const output of node.output) producer.set(output, node);
    const values: string[] = [];
    const identities: NodeProto[] = [];
    for (const present of presents) {
      const index = ifNode.output.indexOf(present);
      const branchOutput = branch.output[index]?.name;
      if (branchOutput === undefined) return [];
      const node = producer.get(branchOutput);
      if (node?.op_type === 'Concat' && node.input.length === 2 && /^past_key_values\./.test(node.input[0] ?? '')) {
        values.push(node.input[1] ?? '');
      } else if (node !== undefined && node.op_type !== 'Concat') {
        // the first-step branch: the present is this step's positions already; a graph output may not repeat a name
        const copy = uniqueName(`${branchOutput}_step`, names);
        identities.push(newNode({ name: uniqueName(`${copy}_Identity`, names), op_type: 'Identity', input: [branchOutput], output: [copy] }));
        values.push(copy);
      } else return [];
    }
    plans.push({ graph: branch, values, identities });
  }
  const typeOf = new Map(main.output.map((o) => [o.name, o]));
  for (const { graph, values, identities } of plans) {
    graph.node = [...graph.node, ...identities];
    graph.output = [...graph.output, ...values.map((v, k) => copyValueInfo(typeOf.get(presents[k] as string), v))];
  }
  const steps = presents.map(stepOutputName);
  for (const n of steps) names.add(n);
  ifNode.output = [...ifNode.output, ...steps];
  main.output = [...main.output, ...steps.map((n, k) => copyValueInfo(typeOf.get(presents[k] as string), n))];
  return [`If: ${steps.length} step outputs (${steps[0] ?? ''} …) beside the presents`];
}

/**
 * Beams (and best-of samples) of one window share one row of cross-attention keys/values (`KvCache.expand`), which
 * the cached branch's MatMuls broadcast over the rows: `q [rows, heads, n, headDim] × Kᵀ [1, heads, headDim, frames]`
 * runs as one matrix-vector product per row and head, so K and V (3 MB each per layer for base) are read once per
 * row, every step: at 5 beams that is half of the extra time a step costs over one row. This groups the queries by the
 * keys' batch instead: the query Reshape that splits heads gets the shape `[kb, -1, heads, headDim]` (kb = the keys'
 * batch) in place of `[rows, n, heads, headDim]`, so after the existing Transpose the product is
 * `[kb, heads, (rows / kb) · n, headDim] × Kᵀ [kb, heads, headDim, frames]`: one matrix product per head that reads K
 * and V once. When every row has its own keys (kb = rows) the shape is the one the graph had. The attention output
 * needs no change: its Transpose and Reshape to `[rows, n, d_model]` read the rows in the same order.
 *
 * Only in the branch that reads `past_key_values.{i}.encoder.key` (the cached steps), and only where the attention
 * weights feed nothing but their product with V (the timestamped export also outputs them as `cross_attentions.{i}`,
 * whose shape must stay per row). Needs opset ≥ 15 (Shape with `start`/`end`). Returns one line per layer changed.
 */
function groupSharedCrossAttention(main: GraphProto, names: Set<string>): string[] {
  const changes: string[] = [];
  const visit = (graph: GraphProto): void => {
    for (const sub of subgraphsOf(graph)) visit(sub);
    const producer = new Map<string, NodeProto>();
    const consumers = new Map<string, NodeProto[]>();
    for (const node of graph.node) {
      for (const output of node.output) producer.set(output, node);
      for (const input of node.input) consumers.set(input, [...(consumers.get(input) ?? []), node]);
    }
    const outputs = new Set(graph.output.map((o) => o.name));
    const only = (value: string): NodeProto | undefined => {
      const readers = consumers.get(value) ?? [];
      return readers.length === 1 && !outputs.has(value) ? readers[0] : undefined;
    };
    // the graph input a value comes from through at most `depth` Transpose/Mul nodes
    const origin = (value: string, depth: number): string => {
      const node = producer.get(value);
      if (node === undefined || depth === 0 || (node.op_type !== 'Transpose' && node.op_type !== 'Mul')) return value;
      return origin(node.input[0] ?? '', depth - 1);
    };
    const added: { before: NodeProto; nodes: NodeProto[] }[] = [];
    const bypassed = new Set<NodeProto>();
    for (const scores of graph.node) {
      if (scores.op_type !== 'MatMul' || !isDefaultDomain(scores.domain)) continue;
      const key = origin(scores.input[1] ?? '', 2);
      const layer = /^past_key_values\.(\d+)\.encoder\.key$/.exec(key)?.[1];
      if (layer === undefined) continue;
      const softmax = only(scores.output[0] ?? '');
      const product = softmax?.op_type === 'Softmax' ? only(softmax.output[0] ?? '') : undefined;
      if (product?.op_type !== 'MatMul' || product.input[1] !== `past_key_values.${layer}.encoder.value`) continue;
      // the query: [Mul(scale)] ← Transpose(0, 2, 1, 3) ← Reshape(q_proj, Concat(rows, n, heads, headDim))
      // each of them read by the next alone: no other reader may see the regrouped shape
      let reader: NodeProto = scores;
      let transpose = producer.get(scores.input[0] ?? '');
      if (transpose?.op_type === 'Mul') {
        if (only(transpose.output[0] ?? '') !== scores) continue;
        reader = transpose;
        transpose = producer.get(transpose.input[0] ?? '');
      }
      if (transpose?.op_type !== 'Transpose' || only(transpose.output[0] ?? '') !== reader) continue;
      const perm = transpose.attribute.find((a) => a.name === 'perm')?.ints.map(int64ToNumber);
      if (perm?.join(',') !== '0,2,1,3') continue;
      const reshape = producer.get(transpose.input[0] ?? '');
      if (reshape?.op_type !== 'Reshape' || only(reshape.output[0] ?? '') !== transpose) continue;
      const shape = producer.get(reshape.input[1] ?? '');
      if (shape?.op_type !== 'Concat' || shape.input.length !== 4 || only(shape.output[0] ?? '') !== reshape) continue;
      // [kb], [heads] and [headDim] from the keys [kb, heads, frames, headDim] (the export's own shape may say -1
      // for the heads, and at most one -1 is allowed)
      const dims = (['batch', 'heads', 'head_dim'] as const).map((what, k) => {
        const start = k === 2 ? 3 : k;
        const value = uniqueName(`${key}_${what}`, names);
        return newNode({
          name: uniqueName(`${value}_Shape`, names),
          op_type: 'Shape',
          input: [key],
          output: [value],
          attribute: [
            newAttribute({ name: 'start', type: AttributeType.INT, i: start }),
            newAttribute({ name: 'end', type: AttributeType.INT, i: start + 1 }),
          ],
        });
      });
      const minusOne = uniqueName(`${shape.name ?? 'query_shape'}_minus_one`, names);
      const constant = newNode({
        name: uniqueName(`${minusOne}_Constant`, names),
        op_type: 'Constant',
        output: [minusOne],
        attribute: [newAttribute({ name: 'value_ints', type: AttributeType.INTS, ints: [-1] })],
      });
      added.push({ before: shape, nodes: [...dims, constant] });
      const [kb, heads, headDim] = dims.map((d) => d.output[0] ?? '');
      // the old shape's producers (Unsqueeze of the batch, Constant) and theirs (the Unsqueeze axes' Constant)
      for (const old of shape.input) {
        const node = producer.get(old);
        if (node === undefined) continue;
        bypassed.add(node);
        for (const input of node.input) {
          const before = producer.get(input);
          if (before !== undefined) bypassed.add(before);
        }
      }
      shape.input = [kb ?? '', minusOne, heads ?? '', headDim ?? ''];
      changes.push(`${reshape.name ?? '(Reshape)'}: queries grouped by the batch of ${key}`);
    }
    if (added.length === 0) return;
    const nodes: NodeProto[] = [];
    for (const n of graph.node) {
      for (const a of added) if (a.before === n) nodes.push(...a.nodes);
      nodes.push(n);
    }
    graph.node = nodes;
    removeDeadNodes(graph, bypassed); // where nothing else reads them
  };
  visit(main);
  return changes;
}

/**
 * Takes the self-attention `Concat(past, step)` of the cached branch out of the graph. As exported, each cached step
 * copies the whole past keys and values of every layer into a new tensor (`present`) only to multiply the query with
 * it: 12 copies of `rows × heads × positions × headDim` floats per step for base (at 5 beams and 250 positions, 3.5 ms
 * of a 27-ms step). Here the scores are computed against the past and against the step's own keys separately and
 * concatenated (`rows × heads × n × (positions + n)`, headDim times smaller), the softmax is unchanged, and the
 * attention output is `P[…, :past] · V_past + P[…, past:] · V_step`. The causal mask's length comes from the past and
 * the scores. The `present.{i}.decoder.*` outputs go (from both branches, the `If` and the graph): callers keep the
 * cache from the `step.*` outputs (`addStepOutputs`, which must run first), which the first-step branch gives whole.
 *
 * Only where every layer matches (past keys read through Transpose/Mul nodes by the scores' MatMul and by a Shape;
 * past values by the output MatMul alone); otherwise nothing changes. Needs opset ≥ 15 (Shape with start/end).
 */
function splitCachedSelfAttention(main: GraphProto, names: Set<string>): string[] {
  const ifs = main.node.filter((n) => n.op_type === 'If' && isDefaultDomain(n.domain));
  if (ifs.length !== 1) return [];
  const ifNode = ifs[0] as NodeProto;
  const presents = ifNode.output.filter((o) => /^present\.\d+\.decoder\.(key|value)$/.test(o));
  if (presents.length === 0 || presents.some((p) => !ifNode.output.includes(stepOutputName(p)))) return [];
  const branches = ifNode.attribute.filter((a) => a.g !== undefined && a.g !== null).map((a) => a.g as GraphProto);
  const cached = branches.filter(isCachedBranch);
  if (branches.length !== 2 || cached.length !== 1) return [];
  const graph = cached[0] as GraphProto;
  const producer = new Map<string, NodeProto>();
  const consumers = new Map<string, NodeProto[]>();
  for (const node of graph.node) {
    for (const output of node.output) producer.set(output, node);
    for (const input of node.input) consumers.set(input, [...(consumers.get(input) ?? []), node]);
  }
  const readers = (value: string): NodeProto[] => consumers.get(value) ?? [];
  const constInts = (base: string, ints: number[]): { node: NodeProto; value: string } => {
    const value = uniqueName(base, names);
    const node = newNode({
      name: uniqueName(`${value}_Constant`, names),
      op_type: 'Constant',
      output: [value],
      attribute: [newAttribute({ name: 'value_ints', type: AttributeType.INTS, ints })],
    });
    return { node, value };
  };
  const node = (op: string, base: string, input: string[], attribute: NodeProto['attribute'] = []): { node: NodeProto; value: string } => {
    const value = uniqueName(base, names);
    return { node: newNode({ name: uniqueName(`${value}_${op}`, names), op_type: op, input, output: [value], attribute }), value };
  };
  const shapeSlice = (of: string, start: number, end: number) =>
    node('Shape', `${of}_dims_${start}_${end}`, [of], [
      newAttribute({ name: 'start', type: AttributeType.INT, i: start }),
      newAttribute({ name: 'end', type: AttributeType.INT, i: end }),
    ]);

  type Plan = { groups: Map<NodeProto, NodeProto[]>; shapes: NodeProto[]; presentShape: string; removed: NodeProto[] };
  const plans: Plan[] = [];
  const layers = new Set(presents.map((p) => /^present\.(\d+)\./.exec(p)?.[1]));
  for (const layer of layers) {
    const concatOf = (kind: string): NodeProto | undefined =>
      graph.node.find((n) => n.op_type === 'Concat' && n.input.length === 2 && n.input[0] === `past_key_values.${layer}.decoder.${kind}`);
    const kc = concatOf('key');
    const vc = concatOf('value');
    if (kc === undefined || vc === undefined) return [];
    const [pastK, stepK] = kc.input as [string, string];
    const [pastV, stepV] = vc.input as [string, string];
    const presentK = kc.output[0] ?? '';
    const presentV = vc.output[0] ?? '';
    // keys: read by Shape nodes and by one chain of Transpose/Mul nodes that ends in the scores' MatMul (input 1)
    const shapes = readers(presentK).filter((n) => n.op_type === 'Shape' && n.attribute.length === 0);
    const others = readers(presentK).filter((n) => !shapes.includes(n));
    if (others.length !== 1) return [];
    const chain: NodeProto[] = [];
    let at = others[0] as NodeProto;
    let value = presentK;
    while (at.op_type === 'Transpose' || at.op_type === 'Mul') {
      if (at.input[0] !== value || readers(at.output[0] ?? '').length !== 1) return [];
      chain.push(at);
      value = at.output[0] ?? '';
      at = readers(value)[0] as NodeProto;
    }
    const scores = at;
    if (scores.op_type !== 'MatMul' || scores.input[1] !== value || !isDefaultDomain(scores.domain)) return [];
    // values: read by the output MatMul alone (as input 1)
    const vReaders = readers(presentV);
    const product = vReaders[0];
    if (vReaders.length !== 1 || product?.op_type !== 'MatMul' || product.input[1] !== presentV) return [];
    const groups = new Map<NodeProto, NodeProto[]>([[kc, []], [scores, []], [product, []]]);
    let into: NodeProto[] = [];
    const push = (x: { node: NodeProto; value: string }): string => {
      into.push(x.node);
      return x.value;
    };
    // before the keys' Concat: the present's shape for its Shape readers ([rows, heads] and headDim of the past, the
    // two lengths added)
    into = groups.get(kc) as NodeProto[];
    const lead = push(shapeSlice(pastK, 0, 2));
    const total = push(node('Add', `${presentK}_length`, [push(shapeSlice(pastK, 2, 3)), push(shapeSlice(stepK, 2, 3))]));
    const tail = push(shapeSlice(pastK, 3, 4));
    const presentShape = push(node('Concat', `${presentK}_shape`, [lead, total, tail], [newAttribute({ name: 'axis', type: AttributeType.INT, i: 0 })]));
    // in place of the scores' MatMul: the query against the past's keys and the step's, each through the same chain
    into = groups.get(scores) as NodeProto[];
    const cloneChain = (from: string, tag: string): string => {
      let v = from;
      for (const c of chain) {
        const out = uniqueName(`${c.output[0] ?? ''}_${tag}`, names);
        into.push(newNode({ ...c, name: uniqueName(`${c.name ?? c.op_type}_${tag}`, names), input: [v, ...c.input.slice(1)], output: [out] }));
        v = out;
      }
      return v;
    };
    const query = scores.input[0] ?? '';
    const scoresOut = scores.output[0] ?? '';
    const sPast = push(node('MatMul', `${scoresOut}_past`, [query, cloneChain(pastK, 'past')]));
    const sStep = push(node('MatMul', `${scoresOut}_step`, [query, cloneChain(stepK, 'step')]));
    into.push(newNode({ name: uniqueName(`${scores.name ?? 'scores'}_Concat`, names), op_type: 'Concat', input: [sPast, sStep], output: [scoresOut], attribute: [newAttribute({ name: 'axis', type: AttributeType.INT, i: -1 })] }));
    // in place of the output MatMul: P[…, :past] · V_past + P[…, past:] · V_step
    into = groups.get(product) as NodeProto[];
    const probs = product.input[0] ?? '';
    const productOut = product.output[0] ?? '';
    const pastLength = push(shapeSlice(pastV, 2, 3));
    const zero = push(constInts(`${probs}_zero`, [0]));
    const end = push(constInts(`${probs}_end`, [2147483647]));
    const axis = push(constInts(`${probs}_axis`, [3]));
    const pPast = push(node('Slice', `${probs}_past`, [probs, zero, pastLength, axis]));
    const pStep = push(node('Slice', `${probs}_step`, [probs, pastLength, end, axis]));
    const oPast = push(node('MatMul', `${productOut}_past`, [pPast, pastV]));
    const oStep = push(node('MatMul', `${productOut}_step`, [pStep, stepV]));
    into.push(newNode({ name: uniqueName(`${product.name ?? 'product'}_Add`, names), op_type: 'Add', input: [oPast, oStep], output: [productOut] }));
    plans.push({ groups, shapes, presentShape, removed: [kc, vc, scores, product, ...chain] });
  }
  if (plans.length !== layers.size) return [];
  const nodes: NodeProto[] = [];
  for (const n of graph.node) {
    for (const p of plans) nodes.push(...(p.groups.get(n) ?? []));
    nodes.push(n);
  }
  const removed = new Set(plans.flatMap((p) => p.removed));
  graph.node = nodes.filter((n) => !removed.has(n));
  for (const p of plans) {
    for (const shape of p.shapes) {
      // a Shape of the present becomes an Identity of the shape computed above
      shape.op_type = 'Identity';
      shape.input = [p.presentShape];
    }
  }
  // the presents leave the If (both branches, at the same positions) and the graph
  const drop = new Set(presents.map((p) => ifNode.output.indexOf(p)));
  for (const b of branches) b.output = b.output.filter((_, k) => !drop.has(k));
  ifNode.output = ifNode.output.filter((_, k) => !drop.has(k));
  main.output = main.output.filter((o) => !presents.includes(o.name ?? ''));
  removeDeadNodes(graph);
  return [`If: self-attention of ${plans.length} layers reads the past and the step apart; ${presents.length} present outputs removed`];
}

/** A value info named `name` with the type of `like` (the element type of a present output). */
function copyValueInfo(like: ValueInfoProto | undefined, name: string): ValueInfoProto {
  const elemType = (like as { type?: { tensor_type?: { elem_type?: number } } } | undefined)?.type?.tensor_type?.elem_type;
  return newTensorValueInfo(name, elemType ?? DataType.FLOAT, ['batch_size', 'num_heads', 'step_sequence_length', 'head_dim']);
}

/** The model's version of the default ONNX operator set (0 when it names none). */
function defaultOpset(model: ModelProto): number {
  const entry = model.opset_import.find((o) => isDefaultDomain(o.domain));
  return entry === undefined ? 0 : int64ToNumber(entry.version);
}

/** The graphs nested in `graph`'s nodes (the branches of an `If`, a `Loop`'s body), one level down. */
function subgraphsOf(graph: GraphProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const node of graph.node) {
    for (const attribute of node.attribute) {
      if (attribute.g !== undefined && attribute.g !== null) out.push(attribute.g);
      out.push(...attribute.graphs);
    }
  }
  return out;
}

function isDefaultDomain(domain: string | undefined | null): boolean {
  return domain === undefined || domain === null || domain === '' || domain === 'ai.onnx';
}

function matchQuantizedWeight(
  name: string,
  producer: ReadonlyMap<string, NodeProto>,
  scope: ReadonlyMap<string, Initializer>,
): QuantizedWeight | undefined {
  const dq = producer.get(name);
  if (dq === undefined || dq.op_type !== 'DequantizeLinear' || !isDefaultDomain(dq.domain)) return undefined;
  // Blocked quantization (opset 21 block_size) and other layouts are left alone.
  if (dq.attribute.some((a) => a.name === 'block_size' && int64ToNumber(a.i) !== 0)) return undefined;
  const [xName, scaleName, zeroName] = dq.input;
  if (xName === undefined || scaleName === undefined) return undefined;
  const scaleInit = scope.get(scaleName);
  const scale = scaleInit === undefined ? undefined : scalarFloat(scaleInit.tensor);
  if (scale === undefined) return undefined;
  let zeroPoint = 0;
  let zeroType: number = DataType.UINT8;
  if (zeroName !== undefined && zeroName !== '') {
    const zeroInit = scope.get(zeroName);
    const zero = zeroInit === undefined ? undefined : scalarInt8(zeroInit.tensor);
    if (zero === undefined) return undefined;
    zeroPoint = zero.value;
    zeroType = zero.type;
  }
  const nodes: NodeProto[] = [dq];
  let tableName = xName;
  let transposed = false;
  const transpose = producer.get(xName);
  if (transpose !== undefined) {
    if (transpose.op_type !== 'Transpose' || !isDefaultDomain(transpose.domain)) return undefined;
    const perm = transpose.attribute.find((a) => a.name === 'perm')?.ints.map(int64ToNumber);
    if (perm !== undefined && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) return undefined;
    tableName = transpose.input[0] ?? '';
    transposed = true;
    nodes.push(transpose);
  }
  const table = scope.get(tableName);
  if (table === undefined) return undefined;
  const t = table.tensor;
  if (t.dims.length !== 2 || t.data_type !== zeroType || t.raw_data === undefined || t.raw_data === null) {
    return undefined;
  }
  const [rows, cols] = t.dims.map(int64ToNumber) as [number, number];
  if (t.raw_data.length !== rows * cols) return undefined;
  return { table, transposed, scale, zeroPoint, nodes };
}

/** A float32 scalar (shape [] or [1]) from raw_data or float_data. */
function scalarFloat(t: TensorProto): number | undefined {
  if (t.data_type !== DataType.FLOAT || elementCount(t) !== 1) return undefined;
  const raw = t.raw_data;
  if (raw !== undefined && raw !== null && raw.length === 4) {
    return new DataView(raw.buffer, raw.byteOffset, 4).getFloat32(0, true);
  }
  return t.float_data.length === 1 ? t.float_data[0] : undefined;
}

/** A uint8 or int8 scalar (shape [] or [1]) from raw_data or int32_data. */
function scalarInt8(t: TensorProto): { value: number; type: number } | undefined {
  if ((t.data_type !== DataType.UINT8 && t.data_type !== DataType.INT8) || elementCount(t) !== 1) return undefined;
  const raw = t.raw_data;
  let value: number | undefined;
  if (raw !== undefined && raw !== null && raw.length === 1) value = raw[0];
  else if (t.int32_data.length === 1) value = t.int32_data[0];
  if (value === undefined) return undefined;
  if (t.data_type === DataType.INT8) value = (value << 24) >> 24;
  return { value, type: t.data_type };
}

function elementCount(t: TensorProto): number {
  return t.dims.reduce<number>((n, d) => n * int64ToNumber(d), 1);
}

/**
 * Adds (once per table, scale, zero point and orientation) a float32 initializer holding the dequantized weight,
 * transposed when the graph transposed it, next to the table (so both `If` branches share it). Returns its name.
 *
 * `(q - zero_point) * scale` in float32 is what DequantizeLinear computes: the integer difference is exact, and the
 * double product of two float32 values is exact too, so `Math.fround` gives the same float32 ONNX Runtime does.
 */
function dequantizedInitializer(
  weight: QuantizedWeight,
  added: Map<string, TensorProto>,
  names: Set<string>,
): string {
  const { tensor, graph } = weight.table;
  const tableName = tensor.name ?? '';
  const key = `${tableName}\0${weight.scale}\0${weight.zeroPoint}\0${weight.transposed}`;
  const existing = added.get(key);
  if (existing?.name !== undefined) return existing.name;

  const dims = tensor.dims.map(int64ToNumber);
  const [rows, cols] = dims as [number, number]; // the transposed case is two-dimensional
  const raw = tensor.raw_data as Uint8Array;
  const q = tensor.data_type === DataType.INT8 ? new Int8Array(raw.buffer, raw.byteOffset, raw.length) : raw;
  const out = new Float32Array(raw.length);
  const { scale, zeroPoint } = weight;
  if (weight.transposed) {
    // out[c][r] = deq(table[r][c]): walk the output in order, reading the table by column.
    for (let c = 0; c < cols; c++) {
      const base = c * rows;
      for (let r = 0; r < rows; r++) out[base + r] = Math.fround(((q[r * cols + c] as number) - zeroPoint) * scale);
    }
  } else {
    for (let i = 0; i < out.length; i++) out[i] = Math.fround(((q[i] as number) - zeroPoint) * scale);
  }

  const stem = tableName.replace(/_quantized$/, '');
  const name = uniqueName(`${stem}_dequantized${weight.transposed ? '_transposed' : ''}`, names);
  const initializer = newTensor({
    name,
    dims: weight.transposed ? [cols, rows] : dims,
    data_type: DataType.FLOAT,
    raw_data: new Uint8Array(out.buffer, out.byteOffset, out.byteLength),
  });
  // Replace, never push: an absent repeated field is a shared frozen array.
  graph.initializer = [...graph.initializer, initializer];
  added.set(key, initializer);
  dequantizedFrom.set(initializer, weight);
  return name;
}

/** The quantized weight each float32 initializer of `dequantizedInitializer` was made from. */
const dequantizedFrom = new WeakMap<TensorProto, QuantizedWeight>();

/**
 * Initializers in the main graph made once per key (so both branches of an `If` read the same one), named
 * `{prefix}_{key}`: `constant` for any tensor, `floatConstant` for a float32 scalar, `i64` for an int64 vector.
 */
function constantPool(
  main: GraphProto,
  names: Set<string>,
  prefix: string,
): {
  constant: (key: string, make: (name: string) => TensorProto) => string;
  floatConstant: (key: string, value: number) => string;
  i64: (key: string, values: bigint[]) => string;
} {
  const constants = new Map<string, string>();
  const constant = (key: string, make: (name: string) => TensorProto): string => {
    let name = constants.get(key);
    if (name === undefined) {
      name = uniqueName(`${prefix}_${key}`, names);
      main.initializer = [...main.initializer, make(name)];
      constants.set(key, name);
    }
    return name;
  };
  const floatConstant = (key: string, value: number): string =>
    constant(key, (name) => newTensor({ name, data_type: DataType.FLOAT, dims: [], raw_data: new Uint8Array(Float32Array.of(value).buffer) }));
  const i64 = (key: string, values: bigint[]): string =>
    constant(key, (name) =>
      newTensor({ name, data_type: DataType.INT64, dims: [values.length], raw_data: new Uint8Array(BigInt64Array.from(values).buffer) }),
    );
  return { constant, floatConstant, i64 };
}

function uniqueName(base: string, names: Set<string>): string {
  let name = base;
  for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
  names.add(name);
  return name;
}

/** Every tensor and node name in the model, so new names never collide. */
function allNames(graph: GraphProto, names = new Set<string>()): Set<string> {
  for (const t of graph.initializer) if (t.name !== undefined) names.add(t.name);
  for (const v of [...graph.input, ...graph.output, ...graph.value_info]) if (v.name !== undefined) names.add(v.name);
  for (const node of graph.node) {
    for (const n of [...node.input, ...node.output]) names.add(n);
    if (node.name !== undefined) names.add(node.name);
    for (const a of node.attribute) {
      if (a.g !== undefined && a.g !== null) allNames(a.g, names);
      for (const g of a.graphs) allNames(g, names);
    }
  }
  return names;
}

function hasExternalData(graph: GraphProto): boolean {
  for (const t of graph.initializer) if (t.data_location === 1) return true;
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.t?.data_location === 1) return true;
      if (a.g !== undefined && a.g !== null && hasExternalData(a.g)) return true;
      if (a.graphs.some(hasExternalData)) return true;
    }
  }
  return false;
}

/**
 * Drops nodes whose outputs nobody reads any more (the Transpose and DequantizeLinear the rewrite bypassed), with
 * their value_info. Reads by nested subgraphs (outer-scope names) and graph outputs count as uses.
 */
function removeDeadNodes(graph: GraphProto, removable: ReadonlySet<NodeProto> = new Set()): void {
  for (;;) {
    const used = new Set<string>();
    for (const o of graph.output) if (o.name !== undefined) used.add(o.name);
    for (const node of graph.node) {
      for (const i of node.input) used.add(i);
      for (const a of node.attribute) {
        if (a.g !== undefined && a.g !== null) collectInputs(a.g, used);
        for (const g of a.graphs) collectInputs(g, used);
      }
    }
    const dead = graph.node.filter(
      (n) => n.output.length > 0 && n.output.every((o) => !used.has(o)) && (isPure(n) || removable.has(n)),
    );
    if (dead.length === 0) return;
    const deadOutputs = new Set(dead.flatMap((n) => n.output));
    graph.node = graph.node.filter((n) => !dead.includes(n));
    graph.value_info = graph.value_info.filter((v) => v.name === undefined || !deadOutputs.has(v.name));
  }
}

/** `removeDeadNodes` on the nested subgraphs first (their reads keep outer nodes alive), then on `graph`. */
function removeDeadNodesDeep(graph: GraphProto, removable: ReadonlySet<NodeProto>): void {
  for (const node of graph.node) {
    for (const a of node.attribute) {
      if (a.g !== undefined && a.g !== null) removeDeadNodesDeep(a.g, removable);
      for (const g of a.graphs) removeDeadNodesDeep(g, removable);
    }
  }
  removeDeadNodes(graph, removable);
}

/** Only the ops the rewrites bypass are removed when unused; anything else stays as the author wrote it. */
function isPure(node: NodeProto): boolean {
  return (
    isDefaultDomain(node.domain) &&
    (node.op_type === 'DequantizeLinear' || node.op_type === 'Transpose' || node.op_type === 'DynamicQuantizeLinear')
  );
}

function collectInputs(graph: GraphProto, used: Set<string>): void {
  for (const node of graph.node) {
    for (const i of node.input) used.add(i);
    for (const a of node.attribute) {
      if (a.g !== undefined && a.g !== null) collectInputs(a.g, used);
      for (const g of a.graphs) collectInputs(g, used);
    }
  }
}
