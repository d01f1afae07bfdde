import { N_FRAMES } from '../audio/constants.js';
import { WhisperError, throwIfAborted } from '../errors.js';
import { assertDeviceAvailable, createSession, ort, type SessionOptions } from '../runtime/session.js';
import { WhisperTokenizer } from '../tokenizer/index.js';
import { parseConfig, readJson, resolveModelFiles, type ModelFiles, type WhisperConfig } from './config.js';
import { KvCache } from './kv-cache.js';
import { exactSignedInt8Kernels, LOGITS_FROM, LOGITS_LOGSUMEXP, PADDING_INPUTS } from '../runtime/optimize.js';
import type { Dtype } from '../dtypes.js';
import type { Activations } from '../options.js';

export { KvCache };

export interface LoadModelFolderOptions extends SessionOptions {
  dtype?: Dtype;
  encoderDtype?: Dtype;
  decoderDtype?: Dtype;
  /**
   * Rewrite the graphs once and cache the result (runtime/optimize): the quantized decoder's tied output projection,
   * the decoder's padding inputs and step outputs, and (see `activations`) the 8-bit matrix products. On by
   * default; off loads the files as they are.
   */
  optimizeDecoder?: boolean;
  /** How 8-bit weights compute (load option `activations`); default `auto`. */
  activations?: Activations;
  /** Where rewritten graphs are cached; defaults to ~/.cache/whisper-ts/graphs. */
  graphCacheDir?: string;
  /** Rewrites a model file and returns the path to load (injected by the loader). */
  graphRewriter?: (path: string, rewrite: GraphRewrite) => Promise<string>;
}

/** What `graphRewriter` is asked to do with one file. */
export interface GraphRewrite {
  role: 'encoder' | 'decoder';
  /** Replace the dynamically quantized matrix products by float ones on dequantized weights. */
  floatActivations: boolean;
  /** With int8 activations: quantize them per row instead of per tensor. */
  rowActivations: boolean;
  /**
   * Decoders: the tied output projection as an integer product (runtime/optimize `integerProjection`): on CPUs, where a
   * step is bound by reading the table; not on CUDA, which has no kernel for its uint8 × int8 product.
   */
  integerProjection: boolean;
  /** Decoders with float activations: the cached steps' projections on int8 activations per block (`mixed`, CPU). */
  blockQuantizedSteps: boolean;
  cacheDir: string | undefined;
}

/** The dtypes whose files quantize activations at run time (`quantize_dynamic`: MatMulInteger / ConvInteger). */
const DYNAMIC_INT8: readonly Dtype[] = ['q8', 'int8', 'uint8'];

/** The load option `activations` once `auto` is decided. */
export type ResolvedActivations = Exclude<Activations, 'auto'>;

/**
 * What `auto` means: for an 8-bit encoder with rewriting on, on the CPU, `mixed` where ONNX Runtime's u8×s8 kernels sum
 * exactly (x86 with VNNI or AMX: there the 8-bit encoder takes 25 % less time for base), else `float32`;
 * with rewriting off, the files as they are (`int8`); float files: `float32`.
 */
function resolveActivations(
  requested: Activations,
  at: { dynamic: boolean; encoderDynamic: boolean; rewrites: boolean; device: string | undefined },
): ResolvedActivations {
  if (requested !== 'auto') return requested;
  if (!at.dynamic) return 'float32';
  if (!at.rewrites) return 'int8';
  return at.encoderDynamic && (at.device ?? 'cpu') === 'cpu' && exactSignedInt8Kernels() ? 'mixed' : 'float32';
}

export interface DecoderOutput {
  /** Logits of the last position of each row: [batch, vocab] row-major. */
  logits: Float32Array;
  vocab: number;
  /**
   * Logits of every position of the step from `allLogitsFrom` on (only filled on request): [batch, positions −
   * allLogitsFrom, vocab].
   */
  allLogits?: Float32Array;
  /** The first position `allLogits` holds (the `logitsFrom` asked for, when the decoder can skip positions). */
  allLogitsFrom?: number;
  /**
   * log Σ exp of each row's `logits` (before any filter), when the decoder computes it (runtime/optimize
   * `addLogSumExp`): [batch], float32.
   */
  logSumExp?: Float32Array;
  /** log Σ exp of every position `allLogits` holds, when the decoder computes it: [batch, positions − allLogitsFrom]. */
  allLogSumExp?: Float32Array;
  /** Cross-attention weights per layer [batch, heads, positions, audioCtx] when the decoder exports them. */
  crossAttentions?: ort.Tensor[];
}

/**
 * A loaded Whisper model: configuration, tokenizer and the two ONNX Runtime sessions. Immutable and safe to share
 * between concurrent calls; everything that changes during a call lives in a `KvCache` owned by that call.
 */
export class WhisperModel {
  private disposed = false;
  /** Whether the decoder broadcasts one row of cross-attention keys/values over many rows (learnt on first use). */
  private crossBroadcast: boolean | undefined;

  private constructor(
    readonly dir: string,
    readonly config: WhisperConfig,
    readonly tokenizer: WhisperTokenizer,
    readonly files: ModelFiles,
    private readonly encoder: ort.InferenceSession,
    private readonly decoder: ort.InferenceSession,
    readonly hasCrossAttentions: boolean,
    /** How the 8-bit matrix products compute (the load option `activations`, `auto` resolved). */
    readonly activations: ResolvedActivations,
  ) {}

  static async load(dir: string, options: LoadModelFolderOptions = {}): Promise<WhisperModel> {
    assertDeviceAvailable(options.device);
    const [configJson, generation, preprocessor, tokenizerJson, tokenizerConfig] = await Promise.all([
      readJson(dir, 'config.json'),
      readJson(dir, 'generation_config.json'),
      readJson(dir, 'preprocessor_config.json'),
      readJson(dir, 'tokenizer.json'),
      readJson(dir, 'tokenizer_config.json'),
    ]);
    const config = parseConfig(configJson, generation, preprocessor);
    const files = await resolveModelFiles(dir, options);
    const numberOr = (v: unknown, fallback: number | undefined): number | undefined =>
      typeof v === 'number' ? v : fallback;
    const noTimestamps = numberOr(generation.no_timestamps_token_id, undefined);
    const eos = numberOr(generation.eos_token_id, numberOr(configJson.eos_token_id, undefined));
    const sot = numberOr(generation.decoder_start_token_id, numberOr(configJson.decoder_start_token_id, undefined));
    if (noTimestamps === undefined || eos === undefined || sot === undefined) {
      throw new WhisperError(
        'E_MODEL_INVALID',
        `${dir}/generation_config.json lacks no_timestamps_token_id, eos_token_id or decoder_start_token_id`,
      );
    }
    const tokenizer = WhisperTokenizer.fromFiles({
      tokenizerJson,
      tokenizerConfig,
      langToId: generation.lang_to_id as Record<string, number> | undefined,
      taskToId: generation.task_to_id as Record<string, number> | undefined,
      noTimestampsTokenId: noTimestamps,
      eosTokenId: eos,
      decoderStartTokenId: sot,
      prevSotTokenId: numberOr(generation.prev_sot_token_id, undefined),
    });
    const dynamic = [files.encoderDtype, files.decoderDtype].some((d) => DYNAMIC_INT8.includes(d));
    const requested = options.activations ?? 'auto';
    const encoderDynamic = DYNAMIC_INT8.includes(files.encoderDtype);
    if ((requested === 'int8' && !dynamic) || (requested === 'mixed' && !encoderDynamic)) {
      throw new WhisperError(
        'E_OPTIONS',
        requested === 'int8'
          ? `activations 'int8' applies to the 8-bit files (q8, int8, uint8); this model loads ` +
              `${files.encoderDtype} / ${files.decoderDtype}, whose activations are float already`
          : `activations 'mixed' applies to an 8-bit encoder (q8, int8, uint8); this model loads ` +
              `${files.encoderDtype} / ${files.decoderDtype}, whose encoder's activations are float already`,
      );
    }
    const rewrite = options.optimizeDecoder !== false ? options.graphRewriter : undefined;
    if (rewrite === undefined && dynamic && (requested === 'float32' || requested === 'mixed')) {
      throw new WhisperError(
        'E_OPTIONS',
        `activations '${requested}' rewrites the 8-bit graphs; to load them as they are (optimizeDecoder: false), ` +
          "pass activations: 'int8' (or 'auto')",
      );
    }
    const activations = resolveActivations(requested, {
      dynamic,
      encoderDynamic,
      rewrites: rewrite !== undefined,
      device: options.device,
    });
    let { encoderPath, decoderPath } = files;
    if (rewrite !== undefined) {
      const cacheDir = options.graphCacheDir;
      const int8 = activations === 'int8';
      [encoderPath, decoderPath] = await Promise.all([
        // the 8-bit encoder: float activations, per-row int8 ones (mixed), or (int8) its uint8 weights stored as int8
        encoderDynamic
          ? rewrite(files.encoderPath, {
              role: 'encoder',
              floatActivations: activations === 'float32',
              rowActivations: activations === 'mixed',
              integerProjection: false,
              blockQuantizedSteps: false,
              cacheDir,
            })
          : files.encoderPath,
        rewrite(files.decoderPath, {
          role: 'decoder',
          floatActivations: !int8,
          rowActivations: false,
          integerProjection: (options.device ?? 'cpu') === 'cpu',
          // accuracy_level 4 (int8 compute) is a CPU kernel setting, like the integer projection's product
          blockQuantizedSteps: activations === 'mixed' && (options.device ?? 'cpu') === 'cpu',
          cacheDir,
        }),
      ]);
    }
    const sessionOptions: SessionOptions = {};
    if (options.threads !== undefined) sessionOptions.threads = options.threads;
    if (options.device !== undefined) sessionOptions.device = options.device;
    const [encoder, decoder] = await Promise.all([
      createSession(encoderPath, sessionOptions),
      createSession(decoderPath, sessionOptions),
    ]);
    const hasCross = decoder.outputNames.some((n) => n.startsWith('cross_attentions'));
    return new WhisperModel(dir, config, tokenizer, files, encoder, decoder, hasCross, activations);
  }

  /**
   * Whether the decoder takes `position_ids` and `attention_bias` (added by runtime/optimize): rows of different prompt
   * lengths can then share a batch, left-padded (`KvCache.padding`).
   */
  get paddingInputs(): boolean {
    return (this.#paddingInputs ??=
      this.decoder.inputNames.includes(PADDING_INPUTS.positions) && this.decoder.inputNames.includes(PADDING_INPUTS.bias));
  }
  #paddingInputs: boolean | undefined;

  /** Whether the decoder takes `logits_from` (runtime/optimize `addLogitsFrom`). */
  private get logitsFromInput(): boolean {
    return (this.#logitsFromInput ??= this.decoder.inputNames.includes(LOGITS_FROM));
  }
  #logitsFromInput: boolean | undefined;

  get isMultilingual(): boolean {
    return this.tokenizer.isMultilingual;
  }

  /** Throws E_DISPOSED once `dispose` has been called. */
  assertUsable(): void {
    if (this.disposed) throw new WhisperError('E_DISPOSED', 'the model was disposed');
  }

  /** A run that failed because the model was disposed while it ran is E_DISPOSED, not an inference failure. */
  private runFailure(what: string, cause: unknown): WhisperError {
    if (this.disposed) return new WhisperError('E_DISPOSED', `the model was disposed while the ${what} ran`, { cause });
    return new WhisperError('E_INFERENCE', `the ${what} failed: ${String(cause)}`, { cause });
  }

  /**
   * Whether the encoder takes windows shorter than 30 s (an even number of mel frames): its input's frame count is
   * symbolic, as the graph rewrite makes it for 8-bit files (runtime/optimize `variableEncoderWindow`). Files loaded
   * as they are (fp32, fp16) take whole windows only.
   */
  get shortWindows(): boolean {
    const meta = this.encoder.inputMetadata[0];
    return meta !== undefined && meta.isTensor && typeof meta.shape[2] === 'string';
  }

  /**
   * Runs the encoder on `batch` mel windows ([batch, nMels, frames] row-major): 3000 frames (30 s), or fewer where
   * `shortWindows`.
   */
  async encode(mel: Float32Array, batch: number, signal?: AbortSignal): Promise<ort.Tensor> {
    this.assertUsable();
    throwIfAborted(signal);
    const frames = mel.length / (batch * this.config.nMels);
    if (frames !== N_FRAMES && (!this.shortWindows || frames % 2 !== 0 || frames <= 0 || frames > N_FRAMES)) {
      const takes = this.shortWindows ? `an even number of mel frames up to ${N_FRAMES}` : `${N_FRAMES} mel frames (30 s)`;
      throw new WhisperError('E_INFERENCE', `the encoder takes ${takes} per window, not ${frames}`);
    }
    const input = new ort.Tensor('float32', mel, [batch, this.config.nMels, frames]);
    try {
      const out = await this.encoder.run({ [this.encoder.inputNames[0] ?? 'input_features']: input });
      const hidden = out[this.encoder.outputNames[0] ?? 'last_hidden_state'];
      if (!hidden) throw new Error('the encoder returned no output');
      return hidden;
    } catch (cause) {
      throw this.runFailure('encoder', cause);
    }
  }

  newCache(encoderHidden: ort.Tensor): KvCache {
    const batch = encoderHidden.dims[0] ?? 1;
    return new KvCache(batch, encoderHidden, this.spareCache);
  }

  /**
   * Whether caches get spare room (`KvCache.capacity`): the decoder's `attention_bias` masks the unused positions and
   * its `step.*` outputs give each step's keys/values alone (runtime/optimize).
   */
  private get spareCache(): boolean {
    return (this.#spareCache ??= this.paddingInputs && this.decoder.outputNames.some((n) => n.startsWith('step.')));
  }
  #spareCache: boolean | undefined;

  /**
   * One decoder step. `tokens` is [batch, n] row-major: the whole prompt at the first step, one token per row after.
   * The first step runs the no-cache branch (empty past, `use_cache_branch` false) and keeps the cross-attention
   * keys/values; later steps feed them back unchanged with the growing self-attention cache.
   */
  async decode(
    tokens: readonly number[],
    cache: KvCache,
    opts: {
      allLogits?: boolean;
      crossAttentions?: boolean;
      /**
       * The first position whose logits the step needs (default 0: all): the prompt step of a window needs only its
       * last few (runtime/optimize `addLogitsFrom`). Ignored by a decoder without that input.
       */
      logitsFrom?: number;
    } = {},
  ): Promise<DecoderOutput> {
    this.assertUsable();
    const batch = cache.batch;
    const n = tokens.length / batch;
    const { decoderLayers: layers, decoderHeads: heads, dModel } = this.config;
    const headDim = dModel / heads;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(tokens, (t) => BigInt(t)), [batch, n]),
      encoder_hidden_states: cache.encoderHidden,
      use_cache_branch: new ort.Tensor('bool', Uint8Array.of(cache.started ? 1 : 0), [1]),
    };
    if (this.paddingInputs) Object.assign(feeds, paddingFeeds(cache, batch, n));
    const from = this.logitsFromInput ? Math.min(Math.max(0, Math.floor(opts.logitsFrom ?? 0)), n - 1) : 0;
    if (this.logitsFromInput) feeds[LOGITS_FROM] = new ort.Tensor('int64', BigInt64Array.of(BigInt(from)), [1]);
    else if (cache.padding.some((p) => p > 0)) {
      throw new WhisperError('E_INFERENCE', 'padded rows need a decoder with padding inputs (runtime/optimize)');
    }
    const empty = cache.started ? undefined : new ort.Tensor('float32', new Float32Array(0), [batch, heads, 0, headDim]);
    for (let i = 0; i < layers; i++) {
      for (const kind of ['key', 'value'] as const) {
        const d = `past_key_values.${i}.decoder.${kind}`;
        const e = `past_key_values.${i}.encoder.${kind}`;
        feeds[d] = empty ?? (cache.decoder.get(d) as ort.Tensor);
        feeds[e] = empty ?? (cache.encoder.get(e) as ort.Tensor);
      }
    }
    // one shared row of cross-attention keys/values for many decoding rows (KvCache.expand): the decoder's MatMuls
    // broadcast it; a graph that does not gets them expanded once, and the model remembers that
    if (cache.started && cache.encoderBatch !== batch && this.crossBroadcast === false) {
      cache.expandEncoder();
      for (const [name, t] of cache.encoder) feeds[name] = t;
    }
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      // after the first step the cross-attention keys/values are fed back unchanged: not fetching their `present`
      // copies saves copying them out of ONNX Runtime every step (about 37 MB per row for base; −20 % per step at 8 rows)
      if (cache.started) {
        const fetches = this.stepFetches(opts.crossAttentions === true);
        // the cached branch reads the cross-attention keys/values, not the encoder output, but the q8 graph still
        // quantizes encoder_hidden_states every step: a one-position stand-in makes that free (checked once per model:
        // the logits must be the same)
        const standIn = new ort.Tensor('float32', new Float32Array((cache.encoderHidden.dims[0] ?? 1) * dModel), [
          cache.encoderHidden.dims[0] ?? 1,
          1,
          dModel,
        ]);
        if (this.hiddenUnusedWhenCached === true) {
          out = await this.decoder.run({ ...feeds, encoder_hidden_states: standIn }, fetches);
        } else {
          out = await this.decoder.run(feeds, fetches);
          if (this.hiddenUnusedWhenCached === undefined) this.hiddenUnusedWhenCached = await this.standInAgrees(feeds, standIn, fetches, out);
        }
      } else out = await this.decoder.run(feeds, this.firstFetches());
      if (cache.started && cache.encoderBatch !== batch) this.crossBroadcast = true;
    } catch (cause) {
      if (cache.started && cache.encoderBatch !== batch && this.crossBroadcast === undefined) {
        this.crossBroadcast = false;
        return this.decode(tokens, cache, opts);
      }
      throw this.runFailure('decoder', cause);
    }
    const first = !cache.started;
    for (let i = 0; i < layers; i++) {
      for (const kind of ['key', 'value'] as const) {
        const present = out[`present.${i}.decoder.${kind}`];
        const step = out[`step.${i}.decoder.${kind}`];
        if (present) cache.decoder.set(`past_key_values.${i}.decoder.${kind}`, present);
        else if (step) cache.append(`past_key_values.${i}.decoder.${kind}`, step);
        if (first) {
          const enc = out[`present.${i}.encoder.${kind}`];
          if (enc) cache.encoder.set(`past_key_values.${i}.encoder.${kind}`, enc);
        }
      }
    }
    cache.length += n;
    const logitsTensor = out.logits;
    if (!logitsTensor) throw new WhisperError('E_INFERENCE', 'the decoder returned no logits');
    const all = logitsTensor.data as Float32Array;
    const vocab = logitsTensor.dims[2] ?? this.config.vocabSize;
    const np = n - from; // positions the logits hold
    let last: Float32Array;
    if (np === 1) last = all;
    else {
      last = new Float32Array(batch * vocab);
      for (let b = 0; b < batch; b++) last.set(all.subarray((b * np + np - 1) * vocab, (b * np + np) * vocab), b * vocab);
    }
    const result: DecoderOutput = { logits: last, vocab };
    const lse = out[LOGITS_LOGSUMEXP];
    if (lse) {
      const values = lse.data as Float32Array;
      result.logSumExp =
        np === 1 ? values : Float32Array.from({ length: batch }, (_, b) => values[b * np + np - 1] as number);
    }
    if (opts.allLogits) {
      result.allLogits = all;
      result.allLogitsFrom = from;
      if (lse) result.allLogSumExp = lse.data as Float32Array;
    }
    if (opts.crossAttentions && this.hasCrossAttentions) {
      result.crossAttentions = Array.from({ length: layers }, (_, i) => out[`cross_attentions.${i}`]).filter(
        (t): t is ort.Tensor => t !== undefined,
      );
    }
    return result;
  }

  #stepFetches = new Map<boolean, readonly string[]>();
  /** Whether cached steps give the same logits with a stand-in for encoder_hidden_states (learnt on first use). */
  private hiddenUnusedWhenCached: boolean | undefined;

  private async standInAgrees(
    feeds: Record<string, ort.Tensor>,
    standIn: ort.Tensor,
    fetches: readonly string[],
    reference: ort.InferenceSession.OnnxValueMapType,
  ): Promise<boolean> {
    try {
      const out = await this.decoder.run({ ...feeds, encoder_hidden_states: standIn }, fetches);
      const a = reference.logits?.data as Float32Array | undefined;
      const b = out.logits?.data as Float32Array | undefined;
      return a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
    } catch {
      return false; // a graph that needs the real encoder output on cached steps
    }
  }

  /**
   * The decoder outputs a cached step needs: logits, the self-attention cache (only this step's positions when the
   * decoder has `step.*` outputs, see runtime/optimize `addStepOutputs`), cross-attentions when asked for.
   */
  private stepFetches(crossAttentions: boolean): readonly string[] {
    let names = this.#stepFetches.get(crossAttentions);
    if (names === undefined) {
      const steps = this.decoder.outputNames.some((n) => n.startsWith('step.'));
      names = this.decoder.outputNames.filter(
        (n) =>
          !/^present\.\d+\.encoder\./.test(n) &&
          !(steps && /^present\.\d+\.decoder\./.test(n)) &&
          (crossAttentions || !n.startsWith('cross_attentions')),
      );
      this.#stepFetches.set(crossAttentions, names);
    }
    return names;
  }

  /**
   * The first step's outputs: everything but the `step.*` copies of the presents (all of it when the decoder has no
   * decoder presents: runtime/optimize `splitCachedSelfAttention`).
   */
  private firstFetches(): readonly string[] {
    if (this.#firstFetches === undefined) {
      const names = this.decoder.outputNames;
      const presents = names.some((n) => /^present\.\d+\.decoder\./.test(n));
      this.#firstFetches = names.filter((n) => !presents || !n.startsWith('step.'));
    }
    return this.#firstFetches;
  }
  #firstFetches: readonly string[] | undefined;

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all([this.encoder.release(), this.decoder.release()]);
  }
}

/** A score bias that removes a position from the softmax (finite: a fully padded query row must not become NaN). */
const MASKED = -1e9;

/**
 * The padding inputs of one decoder step: each row's own positions (its padding does not count) and a bias that hides
 * the padding positions and the cache's spare room from self-attention. With no padding and no spare room they are
 * the positions and the zero bias of the original graph.
 */
function paddingFeeds(cache: KvCache, batch: number, n: number): Record<string, ort.Tensor> {
  // the past the decoder reads: `length` positions, then the cache's spare room (masked)
  const past = cache.started ? cache.capacity : 0;
  const total = past + n;
  const positions = new BigInt64Array(batch * n);
  const bias = new Float32Array(batch * total);
  for (let b = 0; b < batch; b++) {
    const pad = cache.padding[b] ?? 0;
    for (let j = 0; j < n; j++) positions[b * n + j] = BigInt(Math.max(0, cache.length + j - pad));
    bias.fill(MASKED, b * total, b * total + Math.min(pad, total));
    if (past > cache.length) bias.fill(MASKED, b * total + cache.length, b * total + past);
  }
  return {
    [PADDING_INPUTS.positions]: new ort.Tensor('int64', positions, [batch, n]),
    [PADDING_INPUTS.bias]: new ort.Tensor('float32', bias, [batch, 1, 1, total]),
  };
}
