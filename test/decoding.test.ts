import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeAudio, logMelSpectrogram, melWindow, N_SAMPLES } from '../src/audio/index.js';
import { BeamSearchChooser, GreedyChooser, type DecodeState } from '../src/decoding/choosers.js';
import { decodeWindow, type DecodeWindowOptions } from '../src/decoding/decode.js';
import { NoRepeatNgram, RepetitionPenalty, SuppressTokens, filteredLogZ, logSumExp, topK } from '../src/decoding/logit-filters.js';
import { MaximumLikelihoodRanker } from '../src/decoding/ranker.js';
import { jsTopLogprobs, ortTopLogprobs } from '../src/decoding/top-logprobs.js';
import { loadModel, type Whisper } from '../src/index.js';
import { KvCache } from '../src/model/kv-cache.js';
import { WhisperModel } from '../src/model/whisper-model.js';
import { optimizeDecoder } from '../src/runtime/optimize.js';
import type { ort } from '../src/runtime/session.js';
import { BASE, EVAL, JFK, TINY_EN, readReference } from './helpers/paths.js';

const THREADS = 2;

const WINDOW: Omit<DecodeWindowOptions, 'language'> = {
  task: 'transcribe',
  prompt: [],
  prefix: [],
  withoutTimestamps: true,
  temperature: 0,
  bestOf: 1,
  suppressTokens: [-1],
  suppressBlank: true,
  maxInitialTimestamp: 1,
  maxNewTokens: 224,
  seed: 0,
};

async function firstWindow(model: WhisperModel, file: string): Promise<ort.Tensor> {
  const mel = logMelSpectrogram(await decodeAudio(file), model.config.nMels, N_SAMPLES);
  return model.encode(melWindow(mel, 0), 1);
}

describe('beam search on whisper-base against the reference (transformers num_beams 5, length penalty 1)', () => {
  let model: WhisperModel;
  beforeAll(async () => {
    // the reference ran these q8 files as they are: no decoder rewrite
    model = await WhisperModel.load(BASE, { threads: THREADS, activations: 'int8' });
  });
  afterAll(async () => model.dispose());
  const refs = readReference(BASE);

  it.each([
    ['jfk', 'jfk.wav'],
    // a file where beam search and greedy decoding disagree
    ['librispeech_test_clean', '1089-134686-0000.flac'],
  ])('%s/%s: beam 5 token ids equal the reference exactly', async (set, file) => {
    const ref = refs.find((r) => r.set === set && r.file === file);
    expect(ref?.beam5).toBeDefined();
    const hidden = await firstWindow(model, `${EVAL}/${set}/${file}`);
    const beam = await decodeWindow(model, hidden, { ...WINDOW, language: 'en', beamSize: 5 });
    expect(beam.tokens).toEqual(ref?.beam5?.tokens);
    expect(beam.temperature).toBe(0);
    if (file !== 'jfk.wav') {
      const greedy = await decodeWindow(model, hidden, { ...WINDOW, language: 'en' });
      expect(greedy.tokens).toEqual(ref?.greedy?.tokens);
      expect(greedy.tokens).not.toEqual(beam.tokens);
    }
  });

  // (float32 graphs give them too: runtime-optimize.test.ts, float activations, on both models)
  it.each(['mixed'] as const)('jfk: with activations %s (loadModel), beam 5 and greedy token ids equal the reference too', async (activations) => {
    const whisper = await loadModel(BASE, { threads: THREADS, activations });
    try {
      const ref = refs.find((r) => r.file === 'jfk.wav');
      for (const [mode, beamSize] of [['beam5', 5], ['greedy', 1]] as const) {
        const r = await whisper.transcribeAll(JFK, { language: 'en', beamSize, temperature: [0], withoutTimestamps: true });
        expect(r.segments.flatMap((s) => s.tokens), mode).toEqual(ref?.[mode]?.tokens);
      }
    } finally {
      await whisper.dispose();
    }
  });
});

describe('KvCache rows on the real decoder (whisper-tiny.en)', () => {
  let model: WhisperModel;
  let hidden: ort.Tensor;
  beforeAll(async () => {
    model = await WhisperModel.load(TINY_EN, { threads: THREADS, activations: 'int8' });
    hidden = await firstWindow(model, JFK);
  });
  afterAll(async () => model.dispose());

  const sot = (): number[] => [model.tokenizer.special.sot, model.tokenizer.special.noTimestamps];
  const row = (logits: Float32Array, vocab: number, r: number): Float32Array => logits.subarray(r * vocab, (r + 1) * vocab);
  const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - (b[i] as number))), 0);

  it('expand gives every row the prompt; reorder moves each row with its hypothesis', async () => {
    const [and, so, my] = [' And', ' So', ' my'].map((w) => model.tokenizer.encode(w)[0] as number);
    const run = async (reorder: number[] | null): Promise<{ logits: Float32Array; vocab: number }> => {
      const cache = model.newCache(hidden);
      await model.decode(sot(), cache);
      cache.expand(2);
      expect(cache.batch).toBe(2);
      expect(cache.encoderBatch).toBe(1); // the cross-attention keys/values stay one shared row
      await model.decode([and as number, so as number], cache);
      if (reorder) cache.reorder(reorder);
      return model.decode([my as number, my as number], cache);
    };
    const plain = await run(null);
    const swapped = await run([1, 0]);
    const v = plain.vocab;
    // the same rows in another order: the batch is the same set of rows, so the numbers are the same
    expect(maxDiff(row(swapped.logits, v, 0), row(plain.logits, v, 1))).toBeLessThan(1e-3);
    expect(maxDiff(row(swapped.logits, v, 1), row(plain.logits, v, 0))).toBeLessThan(1e-3);
    // the two hypotheses differ, so a reorder that did nothing would fail the checks above
    expect(maxDiff(row(plain.logits, v, 0), row(plain.logits, v, 1))).toBeGreaterThan(0.5);

    // duplicating a row: both rows continue " And" (the batch changes, so int8 activations may round differently)
    const dup = await run([0, 0]);
    expect(maxDiff(row(dup.logits, v, 0), row(dup.logits, v, 1))).toBeLessThan(0.05);
    expect(maxDiff(row(dup.logits, v, 1), row(plain.logits, v, 0))).toBeLessThan(0.25);
  });

  it('a cache with spare room (written in place, masked) gives the logits of an exact one, across regrowth and reorders', async () => {
    const rewritten = await WhisperModel.load(TINY_EN, {
      threads: THREADS,
      graphRewriter: async (path, { role, floatActivations }) =>
        role === 'decoder' ? (await optimizeDecoder(path, { floatActivations })).path : path,
    });
    try {
      const spare = rewritten.newCache(hidden);
      expect(spare.spare).toBe(true); // padding inputs and step outputs: the model gives its caches spare room
      const exact = new KvCache(1, hidden);
      const tokens = rewritten.tokenizer.encode(
        ' And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.' +
          ' And so my fellow citizens of the world, ask not what America will do for you, but what together we can do' +
          ' for the freedom of man. And so my fellow Americans, ask not what your country can do for you.',
      );
      expect(tokens.length).toBeGreaterThan(40); // past a few regrowths (16 spare positions at a time)
      // the two rows are fed different tokens, so that their histories differ and every reorder moves real data
      const feeds = (i: number): number[] => [tokens[i]!, tokens[(i + 7) % tokens.length]!];
      let a = await rewritten.decode(sot(), spare);
      let b = await rewritten.decode(sot(), exact);
      spare.expand(2);
      exact.expand(2);
      const capacities = new Set<number>();
      let rowsDiffer = 0;
      for (const i of tokens.keys()) {
        const v = a.vocab;
        for (const r of i === 0 ? [0] : [0, 1]) {
          expect(maxDiff(row(a.logits, v, r), row(b.logits, v, r))).toBeLessThan(1e-3);
        }
        if (i > 0 && maxDiff(row(a.logits, v, 0), row(a.logits, v, 1)) > 0.5) rowsDiffer++;
        if (i > 0) {
          // they swap (saved rows), keep their places, or one takes the other's history: the copies must carry the
          // positions written in place
          const sources = ([[1, 0], [0, 1], [0, 0], [1, 0], [1, 1]] as const)[i % 5]!.slice();
          spare.reorder(sources);
          exact.reorder(sources);
        }
        a = await rewritten.decode(feeds(i), spare);
        b = await rewritten.decode(feeds(i), exact);
        capacities.add(spare.capacity);
        expect(spare.capacity).toBeGreaterThanOrEqual(spare.length);
        expect(exact.capacity).toBe(exact.length);
      }
      expect(rowsDiffer).toBeGreaterThan(tokens.length / 2);
      expect(capacities.size).toBeGreaterThan(1); // the tensors grew at least once
    } finally {
      await rewritten.dispose();
    }
  });

  it("the decoder's log Σ exp gives each filtered row's normaliser (filteredLogZ), on its cheap and its direct path", async () => {
    // through the rewrite that adds the output (runtime/optimize addLogSumExp)
    const rewritten = await WhisperModel.load(TINY_EN, {
      threads: THREADS,
      activations: 'int8',
      graphRewriter: async (path, { role, floatActivations }) =>
        role === 'decoder' ? (await optimizeDecoder(path, { floatActivations })).path : path,
    });
    const cache = rewritten.newCache(hidden);
    let out = await rewritten.decode(sot(), cache);
    const tokens = rewritten.tokenizer.encode(' And so my fellow Americans');
    const suppress = new SuppressTokens(Array.from({ length: 300 }, (_, i) => 50000 + i));
    const penalty = new RepetitionPenalty(1.5);
    for (const [i, token] of tokens.entries()) {
      expect(out.logSumExp).toHaveLength(1);
      const raw = out.logits.slice();
      const z = out.logSumExp![0]!;
      // float32 in ONNX Runtime, in two levels (51864 = 24 × 2161 for tiny.en), float64 here
      expect(Math.abs(z - logSumExp(raw))).toBeLessThan(5e-5);
      const filtered = raw.slice();
      suppress.apply(filtered);
      penalty.apply(filtered, tokens.slice(0, i + 1));
      expect(Math.abs(filteredLogZ(raw, filtered, z) - logSumExp(filtered))).toBeLessThan(5e-5);
      // most of the mass disabled: the direct sum, exactly
      const few = raw.slice().fill(-Infinity, 0, raw.length - 5);
      expect(filteredLogZ(raw, few, z)).toBe(logSumExp(few));
      out = await rewritten.decode([token], cache);
    }
    await rewritten.dispose();
  });

  it('a draft of the tokens to come changes nothing that greedy decoding picks, and saves a decoder run per token it got right', async () => {
    // the rewritten graphs (padding inputs, spare cache room: a rewind masks) and the files as they are (a rewind cuts).
    // float32 activations: the prompt run that checks the draft and the cached steps compute alike. With `mixed` the
    // cached steps run on int8 activations per block and the prompt run on float ones (see below).
    const whisper = await loadModel(TINY_EN, { threads: THREADS, activations: 'float32' });
    try {
      for (const m of [whisper.model, model]) {
        const h = await firstWindow(m, JFK);
        const o = { ...WINDOW, withoutTimestamps: false, language: 'en' };
        const runs = async (draft: number[] | undefined, prefix: number[] = []): Promise<{ tokens: number[]; sum: number; calls: number }> => {
          const spy = vi.spyOn(m, 'decode');
          try {
            const r = await decodeWindow(m, h, { ...o, prefix, draft });
            return { tokens: r.tokens, sum: r.sumLogprob, calls: spy.mock.calls.length };
          } finally {
            spy.mockRestore();
          }
        };
        const plain = await runs(undefined);
        const n = plain.tokens.length;
        expect(n).toBeGreaterThan(20);
        expect(plain.calls).toBe(n + 1); // one run per token and one for end-of-text
        if (m === model) {
          // the files' int8 arithmetic quantizes a run's positions with one scale: a draft would move every logit
          expect(m.activations).toBe('int8');
          expect(await runs(plain.tokens)).toEqual(plain);
          continue;
        }
        // beam search and sampling do not use it
        const beam = vi.spyOn(m, 'decode');
        await decodeWindow(m, h, { ...o, beamSize: 2, draft: plain.tokens });
        const sampled = await decodeWindow(m, h, { ...o, temperature: 0.5, bestOf: 2, draft: plain.tokens });
        expect(beam.mock.calls.filter(([tokens]) => tokens.length > 10)).toEqual([]); // no run took the draft
        beam.mockRestore();
        expect(sampled.tokens.length).toBeGreaterThan(0);
        const wrong = [...plain.tokens.slice(0, 12), model.tokenizer.encode(' banana')[0]!, ...plain.tokens.slice(13)];
        const cases: [string, number[], number][] = [
          ['all right', plain.tokens, 1], // the prompt run checks every token and picks end-of-text after them
          ['right for 12 tokens, then wrong', wrong, n + 1 - 12],
          ['wrong from the start', plain.tokens.slice(1), n + 1],
          ['empty', [], n + 1],
        ];
        for (const [name, draft, calls] of cases) {
          const got = await runs(draft);
          expect(got.tokens, name).toEqual(plain.tokens);
          expect(Math.abs(got.sum - plain.sum), name).toBeLessThan(1e-3);
          expect(got.calls, name).toBe(calls);
        }
        // after a forced prefix (the live transcriber's committed words): the draft continues it
        const prefix = plain.tokens.slice(1, 9).filter((t) => t < model.tokenizer.special.timestampBegin);
        const forcedPlain = await runs(undefined, prefix);
        const forcedDraft = await runs(forcedPlain.tokens.slice(prefix.length + 1), prefix);
        expect(forcedDraft.tokens).toEqual(forcedPlain.tokens);
        expect(forcedDraft.calls).toBe(1);
      }
    } finally {
      await whisper.dispose();
    }
  });

  it('with mixed activations a draft is checked in float arithmetic, the tokens after it in the steps\' int8 blocks', async () => {
    const whisper = await loadModel(TINY_EN, { threads: THREADS, activations: 'mixed' });
    try {
      const m = whisper.model;
      const h = await firstWindow(m, JFK);
      const o = { ...WINDOW, withoutTimestamps: false, language: 'en' };
      const spy = vi.spyOn(m, 'decode');
      const plain = await decodeWindow(m, h, o);
      const plainCalls = spy.mock.calls.length;
      const drafted = await decodeWindow(m, h, { ...o, draft: plain.tokens });
      const draftedCalls = spy.mock.calls.length - plainCalls;
      spy.mockRestore();
      // the two arithmetics pick the same tokens here; their log-probabilities differ a little (measured 0.037 in the
      // sum over 27 tokens, against < 1e-3 when both are float)
      expect(drafted.tokens).toEqual(plain.tokens);
      expect(draftedCalls).toBe(1);
      // float against float: < 1e-3 (above); so the int8 steps ran
      expect(Math.abs(drafted.sumLogprob - plain.sumLogprob)).toBeGreaterThan(5e-3);
      expect(Math.abs(drafted.sumLogprob - plain.sumLogprob)).toBeLessThan(0.1);
    } finally {
      await whisper.dispose();
    }
  });

  it('rejects reorders of the wrong size and expanding a cache twice', () => {
    const cache = model.newCache(hidden);
    cache.expand(3);
    expect(() => cache.reorder([0, 1])).toThrow(RangeError);
    expect(() => cache.reorder([0, 1, 3])).toThrow(RangeError);
    expect(() => cache.expand(2)).toThrow(RangeError);
  });
});

describe('choosers, ranker and repetition filters (openai/whisper decoding.py and CTranslate2 rules)', () => {
  const V = 6;
  const EOT = 5;
  /** Logits [rows, V] whose softmax is the given probabilities per row. */
  const probs = (rows: number[][]): Float32Array => Float32Array.from(rows.flat().map((p) => (p > 0 ? Math.log(p) : -Infinity)));

  it('MaximumLikelihoodRanker: null divides by the length, else by ((5 + length) / 6) ** alpha', () => {
    const short = { tokens: [1, 2], sumLogprob: -1.2 };
    const long = { tokens: [1, 2, 3, 4, 5, 6], sumLogprob: -3.0 };
    expect(new MaximumLikelihoodRanker(null).score(short)).toBeCloseTo(-0.6, 12);
    expect(new MaximumLikelihoodRanker(null).rank([short, long])).toBe(1); // -0.5 beats -0.6
    expect(new MaximumLikelihoodRanker(1).score(long)).toBeCloseTo(-3.0 / (11 / 6), 12);
    expect(new MaximumLikelihoodRanker(0).rank([short, long])).toBe(0); // no penalty: the likelier sum wins
  });

  it('beam search keeps the best unfinished beams, collects finished ones, and stops at beamSize × patience', async () => {
    const chooser = new BeamSearchChooser(2, EOT, 0, 1);
    const state: DecodeState = { sequences: [[], []], sumLogprobs: [0, 0] };
    // step 1: both rows are the same prompt, so the candidates come from one row only
    let step = await chooser.update(state, probs([[0.5, 0.3, 0.1, 0, 0, 0.1], [0.5, 0.3, 0.1, 0, 0, 0.1]]), V);
    expect(state.sequences).toEqual([[0], [1]]);
    expect(step.sources).toEqual([0, 0]);
    expect(step.completed).toBe(false);
    // step 2: [0] → EOT is the best candidate (finished), [1, 2] and [0, 1] live on
    step = await chooser.update(state, probs([[0, 0.2, 0, 0, 0, 0.8], [0, 0, 0.9, 0.1, 0, 0]]), V);
    expect(state.sequences).toEqual([[1, 2], [0, 1]]);
    expect(step.sources).toEqual([1, 0]);
    expect(step.completed).toBe(false);
    // step 3: both finish; two finished sequences = beamSize × patience: complete
    step = await chooser.update(state, probs([[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1]]), V);
    expect(step.completed).toBe(true);
    const candidates = chooser.finalize(state);
    expect(candidates.map((c) => c.tokens)).toEqual([[0], [1, 2]]);
    expect(candidates[0]?.sumLogprob).toBeCloseTo(Math.log(0.5 * 0.8), 6);
    expect(candidates[1]?.sumLogprob).toBeCloseTo(Math.log(0.3 * 0.9), 6);
    // ranked by log-probability over length: [1, 2] (-1.309 / 2) beats [0] (-0.916 / 1)
    expect(new MaximumLikelihoodRanker(null).rank(candidates)).toBe(1);
  });

  it("with every row's normaliser known, beam search picks in JavaScript what the log-softmax path picks", async () => {
    // logits shifted by a per-row constant, with that constant as the row's log Σ exp; a `top` that must not be called
    const refuse = (): never => {
      throw new Error('the log-softmax path ran although every normaliser was known');
    };
    const chooser = new BeamSearchChooser(2, EOT, 0, 1, refuse);
    const reference = new BeamSearchChooser(2, EOT, 0, 1);
    const steps = [
      [[0.5, 0.3, 0.1, 0, 0, 0.1], [0.5, 0.3, 0.1, 0, 0, 0.1]],
      [[0, 0.2, 0, 0, 0, 0.8], [0, 0, 0.9, 0.1, 0, 0]],
      [[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1]],
    ];
    const state: DecodeState = { sequences: [[], []], sumLogprobs: [0, 0] };
    const refState: DecodeState = { sequences: [[], []], sumLogprobs: [0, 0] };
    for (const [k, rows] of steps.entries()) {
      const shift = [3.5 + k, -7.25 * k];
      const logits = probs(rows).map((x, i) => x + (shift[Math.floor(i / V)] as number));
      const step = await chooser.update(state, logits, V, Float64Array.from(shift));
      const ref = await reference.update(refState, probs(rows), V);
      expect(step).toEqual(ref);
      expect(state.sequences).toEqual(refState.sequences);
      state.sumLogprobs.forEach((s, r) => expect(s).toBeCloseTo(refState.sumLogprobs[r] as number, 5));
    }
    expect(chooser.finalize(state).map((c) => c.tokens)).toEqual(reference.finalize(refState).map((c) => c.tokens));
    // a NaN normaliser (unknown) sends the step to the log-softmax path
    await expect(
      new BeamSearchChooser(2, EOT, 0, 1, refuse).update(
        { sequences: [[], []], sumLogprobs: [0, 0] },
        probs(steps[0]!),
        V,
        Float64Array.of(0, Number.NaN),
      ),
    ).rejects.toThrow('log-softmax path ran');
  });

  it('patience 2 waits for twice as many finished sequences', async () => {
    const chooser = new BeamSearchChooser(1, EOT, 0, 2);
    const state: DecodeState = { sequences: [[]], sumLogprobs: [0] };
    // end-of-text ranks first: one finished sequence, and [0] lives on
    expect((await chooser.update(state, probs([[0.4, 0, 0, 0, 0, 0.6]]), V)).completed).toBe(false);
    expect(state.sequences).toEqual([[0]]);
    expect((await chooser.update(state, probs([[0, 0.3, 0, 0, 0, 0.7]]), V)).completed).toBe(true);
    expect(chooser.finalize(state).map((c) => c.tokens)).toEqual([[], [0]]);
    // with patience 1 the first finished sequence would have ended the search
    const impatient = new BeamSearchChooser(1, EOT, 0, 1);
    const s1: DecodeState = { sequences: [[]], sumLogprobs: [0] };
    expect((await impatient.update(s1, probs([[0.4, 0, 0, 0, 0, 0.6]]), V)).completed).toBe(true);
  });

  it('greedy rows stop at end-of-text and are fed end-of-text after', async () => {
    const chooser = new GreedyChooser(2, 0, EOT, 0, 0);
    const state: DecodeState = { sequences: [[], []], sumLogprobs: [0, 0] };
    expect((await chooser.update(state, probs([[0.9, 0, 0, 0, 0, 0.1], [0, 0, 0, 0, 0, 1]]), V)).completed).toBe(false);
    expect(chooser.isDone(state, 1)).toBe(true);
    expect((await chooser.update(state, probs([[0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0]]), V)).completed).toBe(true);
    expect(state.sequences).toEqual([[0, EOT], [EOT, EOT]]);
    expect(chooser.finalize(state).map((c) => c.tokens)).toEqual([[0], []]);
  });

  it('ONNX Runtime top log-probabilities agree with the float64 JavaScript ones', async () => {
    const vocab = 51865;
    const logits = new Float32Array(3 * vocab);
    for (let i = 0; i < logits.length; i++) logits[i] = Math.sin(i * 0.37) * 8 + ((i * 7919) % 97) * 0.05;
    logits.fill(-Infinity, vocab, vocab + 1000); // a suppressed range, as the logit filters leave it
    logits.fill(-Infinity, 2 * vocab, 2 * vocab + 50257); // a row where only timestamps are allowed
    const [fast, exact] = await Promise.all([ortTopLogprobs(logits, 3, vocab, 6), jsTopLogprobs(logits, 3, vocab, 6)]);
    expect(fast.map((r) => r.map((e) => e.index))).toEqual(exact.map((r) => r.map((e) => e.index)));
    fast.flat().forEach((e, i) => expect(e.logprob).toBeCloseTo(exact.flat()[i]?.logprob ?? 0, 4));
  });

  it('topK returns the largest entries, ties by lower index', () => {
    const r = Float32Array.from([1, 5, 3, 5, -Infinity, 2]);
    expect(topK(r, 3)).toEqual([
      { index: 1, value: 5 },
      { index: 3, value: 5 },
      { index: 2, value: 3 },
    ]);
    expect(topK(Float32Array.from([-Infinity, 1]), 2).map((e) => e.index)).toEqual([1, 0]);
  });

  it('repetition penalty and no-repeat n-grams as CTranslate2 applies them', () => {
    const logits = Float32Array.from([2, -2, 1, 0, 3, 0]);
    new RepetitionPenalty(2).apply(logits, [0, 1, 1]);
    expect([...logits]).toEqual([1, -4, 1, 0, 3, 0]);
    const l2 = new Float32Array(V);
    // sequence 1 2 3 1 2: the last 2-gram "1 2" was followed by 3 → 3 is banned for n = 3
    new NoRepeatNgram(3).apply(l2, [1, 2, 3, 1, 2]);
    expect([...l2].map((x) => x === -Infinity)).toEqual([false, false, false, true, false, false]);
    const l1 = new Float32Array(V);
    new NoRepeatNgram(1).apply(l1, [4, 2]);
    expect([...l1].map((x) => x === -Infinity)).toEqual([false, false, true, false, true, false]);
  });
});

describe('temperature fallback on a window that fails the compression check (whisper-tiny.en)', () => {
  let whisper: Whisper;
  beforeAll(async () => {
    // seeded draws at T > 0 depend on every logit: float32 activations pin the arithmetic these draws were measured on
    whisper = await loadModel(TINY_EN, { threads: THREADS, activations: 'float32' });
  });
  afterAll(async () => whisper.dispose());
  // a forced repetitive prefix: greedy decoding continues the loop ("And, and, and, …"); 96 tokens show a loop
  const loop = { language: 'en', prefix: 'And, and, and, and,', withoutTimestamps: true, maxNewTokens: 96 } as const;

  it('at temperature 0 alone the window loops (compression ratio far above 2.4)', async () => {
    const r = await whisper.transcribeAll(JFK, { ...loop, temperature: [0] });
    expect(r.segments).toHaveLength(1);
    expect(r.segments[0]?.compressionRatio).toBeGreaterThan(2.4);
    expect(r.text).not.toContain('your country');
  });

  it('with fallback temperatures the window is sampled again at T > 0 until it passes, and recovers the speech', async () => {
    // best of 5 at 0.4 still loops here; 0.8 recovers (each temperature's sampler is seeded alike, so these are the
    // same draws as in the default list 0, 0.2, …, 1.0)
    const r = await whisper.transcribeAll(JFK, { ...loop, temperature: [0, 0.4, 0.8] });
    const s = r.segments[0];
    expect(s?.temperature).toBe(0.8);
    expect(s?.compressionRatio).toBeLessThanOrEqual(2.4);
    expect(r.text).toMatch(/^ And, and, and, and,/);
    expect(r.text.toLowerCase()).toContain('what your country can do for you');
  });

  it('beam search and the repetition rules also break the loop at temperature 0', async () => {
    for (const o of [{ beamSize: 5 }, { repetitionPenalty: 1.5 }, { noRepeatNgramSize: 2 }]) {
      const r = await whisper.transcribeAll(JFK, { ...loop, temperature: [0], ...o });
      expect(r.segments[0]?.compressionRatio, JSON.stringify(o)).toBeLessThanOrEqual(2.4);
      expect(r.text.toLowerCase(), JSON.stringify(o)).toContain('my fellow americans');
      if ('noRepeatNgramSize' in o) {
        // no bigram completed after the forced prefix repeats an earlier one
        const t = r.segments[0]?.tokens ?? [];
        const forced = whisper.model.tokenizer.encode(' And, and, and, and,').length;
        for (let i = forced; i < t.length; i++) {
          for (let j = 1; j < i; j++) expect(t[j - 1] === t[i - 1] && t[j] === t[i], `bigram at ${i}`).toBe(false);
        }
      }
    }
  });
});
