/**
 * Splitting text tokens into words and merging punctuation into its neighbours, as openai/whisper tokenizer.py and
 * timing.py do it.
 */
import type { WhisperTokenizer } from '../tokenizer/index.js';

/** Python's string.punctuation. */
const ASCII_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

/** Languages written without spaces between words: split at every complete character (tokenizer.py). */
const NO_SPACE_LANGUAGES: ReadonlySet<string> = new Set(['zh', 'ja', 'th', 'lo', 'my', 'yue']);

/**
 * Python's `a in b` for strings: substring test, true for the empty string. Upstream's punctuation rules use it on
 * whole words, so e.g. `"()"` counts as punctuation; kept as is.
 */
export function pyIn(needle: string, haystack: string): boolean {
  return haystack.includes(needle);
}

/** Python's str.strip(): whitespace at both ends. */
function pyStrip(s: string): string {
  return s.replace(/^\s+|\s+$/gu, '');
}

export interface WordTokens {
  word: string;
  tokens: number[];
}

const REPLACEMENT = '\ufffd';

/**
 * openai/whisper tokenizer.py split_tokens_on_unicode: cut wherever the tokens so far decode to whole characters
 * (a U+FFFD is accepted only where the full text has one too, i.e. genuinely invalid bytes). UTF-8 boundaries are
 * found from the tokens' raw bytes. Tokens left over at the end (an incomplete character) form a last word, so that
 * the words always add up to the text.
 */
export function splitTokensOnUnicode(tk: WhisperTokenizer, tokens: readonly number[]): WordTokens[] {
  const decoder = new TextDecoder('utf-8');
  const bytesOf = (ts: readonly number[]): Uint8Array => {
    const parts = ts.map((t) => tk.tokenBytes(t));
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const full = Array.from(decoder.decode(bytesOf(tokens)));
  const out: WordTokens[] = [];
  let current: number[] = [];
  let offset = 0;
  for (const t of tokens) {
    current.push(t);
    const decoded = Array.from(decoder.decode(bytesOf(current)));
    const bad = decoded.indexOf(REPLACEMENT);
    if (bad < 0 || full[offset + bad] === REPLACEMENT) {
      out.push({ word: tk.decode(current), tokens: current });
      current = [];
      offset += decoded.length;
    }
  }
  if (current.length) out.push({ word: tk.decode(current), tokens: current });
  return out;
}

/**
 * openai/whisper tokenizer.py split_tokens_on_spaces: subwords join the word before them unless they start with a
 * space or are punctuation.
 */
export function splitTokensOnSpaces(tk: WhisperTokenizer, tokens: readonly number[]): WordTokens[] {
  const out: WordTokens[] = [];
  for (const sub of splitTokensOnUnicode(tk, tokens)) {
    const special = (sub.tokens[0] as number) >= tk.special.eot;
    const withSpace = sub.word.startsWith(' ');
    const punctuation = pyIn(pyStrip(sub.word), ASCII_PUNCTUATION);
    const last = out[out.length - 1];
    if (special || withSpace || punctuation || last === undefined) out.push({ word: sub.word, tokens: [...sub.tokens] });
    else {
      last.word += sub.word;
      last.tokens.push(...sub.tokens);
    }
  }
  return out;
}

/** openai/whisper tokenizer.py split_to_word_tokens: by characters for zh/ja/th/lo/my/yue, else by spaces. */
export function splitToWordTokens(tk: WhisperTokenizer, tokens: readonly number[], language: string): WordTokens[] {
  return NO_SPACE_LANGUAGES.has(language) ? splitTokensOnUnicode(tk, tokens) : splitTokensOnSpaces(tk, tokens);
}

/**
 * openai/whisper timing.py merge_punctuations: opening punctuation (after a space) joins the word after it, closing
 * punctuation joins the word before it. Merged-away entries keep their place with an empty word and no tokens.
 */
export function mergePunctuations(words: WordTokens[], prepended: string, appended: string): void {
  let i = words.length - 2;
  let j = words.length - 1;
  while (i >= 0) {
    const previous = words[i] as WordTokens;
    const following = words[j] as WordTokens;
    if (previous.word.startsWith(' ') && pyIn(pyStrip(previous.word), prepended)) {
      following.word = previous.word + following.word;
      following.tokens = [...previous.tokens, ...following.tokens];
      previous.word = '';
      previous.tokens = [];
    } else {
      j = i;
    }
    i--;
  }
  i = 0;
  j = 1;
  while (j < words.length) {
    const previous = words[i] as WordTokens;
    const following = words[j] as WordTokens;
    if (!previous.word.endsWith(' ') && pyIn(following.word, appended)) {
      previous.word = previous.word + following.word;
      previous.tokens = [...previous.tokens, ...following.tokens];
      following.word = '';
      following.tokens = [];
    } else {
      i = j;
    }
    j++;
  }
}
