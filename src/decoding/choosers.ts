/**
 * Token choosers: how the next token of each decoding row is picked from its filtered logits (openai/whisper
 * decoding.py TokenDecoder: GreedyDecoder, BeamSearchDecoder). The decoding loop only knows this interface.
 */
import { argmax, logSumExp, topK } from './logit-filters.js';
import { Rng, sampleToken } from './sampler.js';
import { jsTopLogprobs, type TopLogprobs } from './top-logprobs.js';

/** What the decoding rows hold so far; a chooser updates it in place. */
export interface DecodeState {
  /** Per row: the forced tokens (timestamp, prefix) and the tokens chosen after them. */
  sequences: number[][];
  /** Per row: summed log-probabilities of the chosen tokens. */
  sumLogprobs: number[];
}

/** A finished hypothesis: its chosen tokens (forced ones and end-of-text excluded) and summed log-probability. */
export interface Candidate {
  tokens: number[];
  sumLogprob: number;
}

export interface ChooserStep {
  /** Row i continues from the old row sources[i] (the decoder cache is reordered to match); null: no row moved. */
  sources: number[] | null;
  /** Decoding is over. */
  completed: boolean;
}

export interface TokenChooser {
  /** Rows run through the decoder as one batch. */
  readonly rows: number;
  /** Whether `update` reads `logZ`, the filtered rows' normalisers (when not, the loop need not compute them). */
  readonly needsLogZ: boolean;
  /** Whether a row takes no more tokens (its logits need no filtering). */
  isDone(state: DecodeState, row: number): boolean;
  /**
   * Picks the next token of every row from `logits` ([rows, vocab], filtered) and appends it to the state.
   * `logZ[r]`, when not NaN, is row r's log Σ exp, already known from the filters.
   */
  update(state: DecodeState, logits: Float32Array, vocab: number, logZ?: Float64Array): Promise<ChooserStep>;
  /** The candidates the ranker chooses from, after the last step. */
  finalize(state: DecodeState): Candidate[];
}

/**
 * openai/whisper decoding.py GreedyDecoder: the most likely token at temperature 0, else a sample from
 * softmax(logits / T), one independent row per candidate (best-of). A finished row is fed end-of-text until all are.
 */
export class GreedyChooser implements TokenChooser {
  private readonly rng: Rng;
  readonly needsLogZ = true;

  constructor(
    readonly rows: number,
    private readonly temperature: number,
    private readonly eot: number,
    private readonly forced: number,
    seed: number,
  ) {
    this.rng = new Rng(seed);
  }

  isDone(state: DecodeState, row: number): boolean {
    return (state.sequences[row] as number[]).at(-1) === this.eot && (state.sequences[row] as number[]).length > this.forced;
  }

  update(state: DecodeState, logits: Float32Array, vocab: number, logZ?: Float64Array): Promise<ChooserStep> {
    let completed = true;
    for (let r = 0; r < this.rows; r++) {
      const seq = state.sequences[r] as number[];
      if (this.isDone(state, r)) {
        seq.push(this.eot);
        continue;
      }
      const row = logits.subarray(r * vocab, (r + 1) * vocab);
      const next = this.temperature === 0 ? argmax(row) : sampleToken(row, this.temperature, this.rng);
      state.sumLogprobs[r] = (state.sumLogprobs[r] as number) + (row[next] as number) - rowLogZ(row, logZ?.[r]);
      seq.push(next);
      if (next !== this.eot) completed = false;
    }
    return Promise.resolve({ sources: null, completed });
  }

  finalize(state: DecodeState): Candidate[] {
    return state.sequences.map((seq, r) => {
      const chosen = seq.slice(this.forced);
      const end = chosen.indexOf(this.eot);
      return { tokens: end < 0 ? chosen : chosen.slice(0, end), sumLogprob: state.sumLogprobs[r] as number };
    });
  }
}

/**
 * openai/whisper decoding.py BeamSearchDecoder for one audio window: every step, each beam proposes its beamSize + 1
 * likeliest tokens; the beamSize best unfinished sequences live on, and sequences ending in end-of-text are kept until
 * round(beamSize × patience) of them are finished.
 */
export class BeamSearchChooser implements TokenChooser {
  private readonly finished = new Map<string, Candidate>();
  private readonly maxCandidates: number;
  /**
   * With every row's normaliser known (from the decoder's log Σ exp, see decode.ts), log-probabilities are the k best
   * logits minus it, picked in JavaScript; otherwise they come from `top` (a log-softmax of its own over the rows).
   */
  readonly needsLogZ = true;

  constructor(
    readonly rows: number,
    private readonly eot: number,
    private readonly forced: number,
    patience: number,
    private readonly top: TopLogprobs = jsTopLogprobs,
  ) {
    this.maxCandidates = Math.round(rows * patience);
    if (this.maxCandidates <= 0) throw new RangeError('beam search needs beamSize × patience ≥ 1');
  }

  isDone(): boolean {
    return false;
  }

  async update(state: DecodeState, logits: Float32Array, vocab: number, logZ?: Float64Array): Promise<ChooserStep> {
    const beam = this.rows;
    // STEP 1: candidate sequences from every distinct beam (all beams start identical: a sequence counts once)
    const known = logZ !== undefined && logZ.length >= beam && logZ.subarray(0, beam).every((z) => Number.isFinite(z));
    const top = known
      ? Array.from({ length: beam }, (_, r) =>
          topK(logits.subarray(r * vocab, (r + 1) * vocab), beam + 1).map(({ index, value }) => ({
            index,
            logprob: value - (logZ[r] as number),
          })),
        )
      : await this.top(logits, beam, vocab, beam + 1);
    const candidates: { source: number; token: number; score: number }[] = [];
    for (let r = 0; r < beam; r++) {
      const seq = state.sequences[r] as number[];
      if (state.sequences.slice(0, r).some((other) => sameTokens(other, seq))) continue;
      const base = state.sumLogprobs[r] as number;
      for (const { index, logprob } of top[r] ?? []) {
        candidates.push({ source: r, token: index, score: base + logprob });
      }
    }
    // STEP 2: the best beamSize unfinished ones live on; finished ones met before that are collected
    // stable: ties (-Infinity ones included) keep the beam order, as Python's sorted()
    candidates.sort((a, b) => (a.score === b.score ? 0 : b.score > a.score ? 1 : -1));
    const sources: number[] = [];
    const nextSeqs: number[][] = [];
    const nextSums: number[] = [];
    const newlyFinished: Candidate[] = [];
    for (const c of candidates) {
      const prefix = state.sequences[c.source] as number[];
      if (c.token === this.eot) {
        newlyFinished.push({ tokens: prefix.slice(this.forced), sumLogprob: c.score });
      } else {
        sources.push(c.source);
        nextSeqs.push([...prefix, c.token]);
        nextSums.push(c.score);
        if (nextSeqs.length === beam) break;
      }
    }
    // each distinct beam proposes beamSize + 1 tokens, at most one of them end-of-text: never fewer than beamSize live
    for (let i = 0; i < beam; i++) {
      state.sequences[i] = nextSeqs[i] as number[];
      state.sumLogprobs[i] = nextSums[i] as number;
    }
    for (const f of newlyFinished) {
      if (this.finished.size >= this.maxCandidates) break;
      const key = f.tokens.join(',');
      if (!this.finished.has(key)) this.finished.set(key, f);
    }
    return { sources, completed: this.finished.size >= this.maxCandidates };
  }

  finalize(state: DecodeState): Candidate[] {
    // not enough finished sequences: the live beams count as finished, likeliest first
    if (this.finished.size < this.rows) {
      const order = state.sumLogprobs.map((s, i) => ({ s, i })).sort((a, b) => b.s - a.s);
      for (const { s, i } of order) {
        const tokens = (state.sequences[i] as number[]).slice(this.forced);
        const key = tokens.join(',');
        if (!this.finished.has(key)) this.finished.set(key, { tokens, sumLogprob: s });
        if (this.finished.size >= this.rows) break;
      }
    }
    return [...this.finished.values()];
  }
}

function rowLogZ(row: Float32Array, known: number | undefined): number {
  return known === undefined || Number.isNaN(known) ? logSumExp(row) : known;
}

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = a.length - 1; i >= 0; i--) if (a[i] !== b[i]) return false;
  return true;
}
