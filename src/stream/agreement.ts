/**
 * The commit policy of whisper_streaming (ufal/whisper_streaming, whisper_online.py, HypothesisBuffer): a word is
 * final once consecutive hypotheses agree on it — the longest common prefix of the last `n` hypotheses, compared
 * word by word (LocalAgreement-n; n = 2 is the paper's policy). Hypotheses hold only the words after the committed
 * ones (the decoder is forced through the committed words, so they never come back). One rule is added: a word must
 * also have been followed by another word in every older hypothesis.
 */
import type { Word } from '../types.js';

/** A hypothesis word with its times in the stream (seconds). */
export type TimedWord = Word;

/**
 * The form two hypotheses' words are compared in: lower case, letters, digits and apostrophes only, so that a word
 * counts as agreed when only its punctuation or capitalisation changed (whisper_streaming compares the raw strings,
 * which holds back a word whenever the punctuation after it is still undecided).
 */
export function comparable(word: string): string {
  return word.toLowerCase().replace(/[^\p{L}\p{N}']/gu, '');
}

export class LocalAgreement {
  readonly n: number;
  /** The last `n` hypotheses (uncommitted words only), oldest first. */
  #history: TimedWord[][] = [];

  constructor(n = 2) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`LocalAgreement: n must be an integer ≥ 1, got ${n}`);
    this.n = n;
  }

  /**
   * Adds the newest hypothesis (the words after the committed ones) and returns the words all of the last `n`
   * hypotheses now agree on, taken from the newest (its times and spelling); they are removed from the history.
   */
  insert(words: readonly TimedWord[]): TimedWord[] {
    this.#history.push([...words]);
    if (this.#history.length > this.n) this.#history.shift();
    if (this.#history.length < this.n) return [];
    const newest = this.#history[this.#history.length - 1] as TimedWord[];
    let k = 0;
    for (; k < newest.length; k++) {
      const w = comparable((newest[k] as TimedWord).word);
      if (!this.#history.every((h) => h[k] !== undefined && comparable((h[k] as TimedWord).word) === w)) break;
    }
    // the last word of an older hypothesis was heard up to the end of its audio, where words are guessed from their
    // first sounds: it is not final until a hypothesis has heard something after it
    for (const h of this.#history.slice(0, -1)) k = Math.min(k, h.length - 1);
    return this.commit(Math.max(0, k));
  }

  /** Commits the first `count` words of the newest hypothesis whatever the others say (a forced commit). */
  commit(count: number): TimedWord[] {
    const newest = this.#history[this.#history.length - 1] ?? [];
    const committed = newest.slice(0, count);
    if (committed.length > 0) this.#history = this.#history.map((h) => h.slice(committed.length));
    return committed;
  }

  /** The uncommitted words of the newest hypothesis (what a partial shows). */
  get tentative(): readonly TimedWord[] {
    return this.#history[this.#history.length - 1] ?? [];
  }

  /** Forgets every hypothesis (after an utterance was committed whole). */
  reset(): void {
    this.#history = [];
  }
}
