import { Tokenizer } from '@huggingface/tokenizers';
import { WhisperError } from '../errors.js';

export { LANGUAGE_NAMES, toLanguageCode } from '../languages.js';

/** The special token ids a Whisper model uses, read from its own files (they differ between sizes and .en). */
export interface SpecialTokens {
  eot: number;
  sot: number;
  sotPrev: number;
  sotLm: number | undefined;
  noSpeech: number | undefined;
  noTimestamps: number;
  timestampBegin: number;
  transcribe: number | undefined;
  translate: number | undefined;
}

export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
  /** generation_config.json's lang_to_id ("<|en|>" → id); absent for English-only models. */
  langToId: Record<string, number> | undefined;
  taskToId: Record<string, number> | undefined;
  noTimestampsTokenId: number;
  eosTokenId: number;
  decoderStartTokenId: number;
  prevSotTokenId: number | undefined;
}

/**
 * Whisper's tokenizer: byte-level BPE from the model's tokenizer.json (through @huggingface/tokenizers), the
 * special tokens, the language table and timestamp tokens.
 */
export class WhisperTokenizer {
  readonly special: SpecialTokens;
  /** language code → token id, in the model's order; empty for English-only models. */
  readonly languageToToken: ReadonlyMap<string, number>;
  readonly tokenToLanguage: ReadonlyMap<number, string>;
  readonly vocabSize: number;
  private readonly tok: Tokenizer;
  private readonly byteDecoder: Map<string, number>;

  private constructor(tok: Tokenizer, files: TokenizerFiles) {
    this.tok = tok;
    const id = (t: string): number | undefined => tok.token_to_id(t);
    const noTimestamps = files.noTimestampsTokenId;
    this.special = Object.freeze({
      eot: files.eosTokenId,
      sot: files.decoderStartTokenId,
      sotPrev: files.prevSotTokenId ?? id('<|startofprev|>') ?? noTimestamps - 2,
      sotLm: id('<|startoflm|>'),
      noSpeech: id('<|nospeech|>') ?? id('<|nocaptions|>'),
      noTimestamps,
      timestampBegin: noTimestamps + 1,
      transcribe: files.taskToId?.transcribe ?? undefined,
      translate: files.taskToId?.translate ?? undefined,
    });
    const l2t = new Map<string, number>();
    const t2l = new Map<number, string>();
    for (const [token, tid] of Object.entries(files.langToId ?? {})) {
      const code = token.replace(/^<\|/, '').replace(/\|>$/, '');
      l2t.set(code, tid);
      t2l.set(tid, code);
    }
    this.languageToToken = l2t;
    this.tokenToLanguage = t2l;
    this.vocabSize = tok.get_vocab(true).size;
    this.byteDecoder = byteLevelDecoder();
  }

  static fromFiles(files: TokenizerFiles): WhisperTokenizer {
    const tok = new Tokenizer(files.tokenizerJson as object, files.tokenizerConfig as object);
    return new WhisperTokenizer(tok, files);
  }

  get isMultilingual(): boolean {
    return this.languageToToken.size > 0;
  }

  /** Encodes plain text (a prompt, a prefix, hotwords) without special tokens. */
  encode(text: string): number[] {
    return this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Decodes text tokens; timestamp and special tokens are dropped. */
  decode(tokens: readonly number[]): string {
    const text = tokens.filter((t) => t < this.special.eot);
    if (text.length === 0) return ''; // the tokenizers library refuses an empty array (a window of timestamps only)
    return this.tok.decode(text, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /** Decodes with timestamp tokens shown as `<|1.08|>` (openai/whisper tokenizer.py decode_with_timestamps). */
  decodeWithTimestamps(tokens: readonly number[]): string {
    const parts: string[] = [];
    let run: number[] = [];
    const flush = (): void => {
      if (run.length) parts.push(this.decode(run));
      run = [];
    };
    for (const t of tokens) {
      if (t >= this.special.timestampBegin) {
        flush();
        parts.push(`<|${((t - this.special.timestampBegin) * 0.02).toFixed(2)}|>`);
      } else run.push(t);
    }
    flush();
    return parts.join('');
  }

  /** The raw bytes a text token stands for (byte-level BPE), for splitting text at UTF-8 boundaries. */
  tokenBytes(token: number): Uint8Array {
    const piece = this.tok.id_to_token(token) ?? '';
    const out: number[] = [];
    for (const ch of piece) {
      const b = this.byteDecoder.get(ch);
      if (b !== undefined) out.push(b);
    }
    return Uint8Array.from(out);
  }

  idToToken(token: number): string | undefined {
    return this.tok.id_to_token(token);
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /** The language token of a code, or an E_OPTIONS error listing what the model knows. */
  languageToken(code: string): number {
    const t = this.languageToToken.get(code);
    if (t === undefined) {
      throw new WhisperError(
        'E_OPTIONS',
        this.isMultilingual
          ? `language "${code}" is not supported by this model`
          : `this model is English-only; language "${code}" cannot be used`,
      );
    }
    return t;
  }

  /**
   * openai/whisper tokenizer.py `non_speech_tokens`-style list is provided by the model's generation_config
   * (`suppress_tokens`); this returns the special tokens openai/whisper decoding.py `_get_suppress_tokens` adds.
   */
  specialSuppressTokens(): number[] {
    const s = this.special;
    return [s.transcribe, s.translate, s.sot, s.sotPrev, s.sotLm, s.noSpeech].filter(
      (t): t is number => t !== undefined,
    );
  }
}

/** GPT-2's byte ↔ unicode table (the inverse of the byte-level pre-tokenizer's mapping). */
function byteLevelDecoder(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = bytes.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + n);
      n++;
    }
  }
  const map = new Map<string, number>();
  bytes.forEach((b, i) => map.set(String.fromCharCode(chars[i] ?? b), b));
  return map;
}
