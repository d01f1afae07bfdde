import type { Candidate } from './choosers.js';

/** Picks the candidate a window's decoding returns (openai/whisper decoding.py SequenceRanker). */
export interface Ranker {
  /** Index of the best candidate. */
  rank(candidates: readonly Candidate[]): number;
}

/**
 * openai/whisper decoding.py MaximumLikelihoodRanker: summed log-probability over a length penalty, which is the
 * length itself when `lengthPenalty` is null, else the Google NMT penalty ((5 + length) / 6) ** lengthPenalty.
 */
export class MaximumLikelihoodRanker implements Ranker {
  constructor(private readonly lengthPenalty: number | null) {}

  score(c: Candidate): number {
    const length = c.tokens.length;
    // an empty candidate counts as length 1 (openai would divide by zero)
    const penalty = this.lengthPenalty === null ? Math.max(1, length) : ((5 + length) / 6) ** this.lengthPenalty;
    return c.sumLogprob / penalty;
  }

  rank(candidates: readonly Candidate[]): number {
    let best = 0;
    let bestScore = -Infinity;
    candidates.forEach((c, i) => {
      const s = this.score(c);
      if (s > bestScore) {
        bestScore = s;
        best = i;
      }
    });
    return best;
  }
}
