/**
 * The script of Chinese output. Whisper writes Mandarin in Simplified or Traditional characters, often mixing both
 * from one window to the next; `zhScript` converts segment and word text with OpenCC (opencc-js, the maintained
 * JavaScript port of Open Chinese Convert, with OpenCC's own dictionaries).
 */
import type { ZhScript } from '../options.js';
import type { Segment } from '../types.js';

export type ScriptConverter = (text: string) => string;

const loaded = new Map<ZhScript, Promise<ScriptConverter>>();

/**
 * A converter to the asked script, or null for 'as-is'. 'simplified' is OpenCC's t2s (the conversion the reference
 * scorer applies), 'traditional' its s2t (OpenCC's standard Traditional characters). The dictionaries (1 MB for
 * s2t) load on first use, once per process.
 */
export async function zhScriptConverter(script: ZhScript): Promise<ScriptConverter | null> {
  if (script === 'as-is') return null;
  let converter = loaded.get(script);
  if (converter === undefined) {
    converter =
      script === 'simplified'
        ? import('opencc-js/t2cn').then((m) => m.Converter({ from: 't', to: 'cn' }))
        : import('opencc-js/cn2t').then((m) => m.Converter({ from: 'cn', to: 't' }));
    loaded.set(script, converter);
    converter.catch(() => loaded.delete(script));
  }
  return converter;
}

/**
 * The segment with its text and its words' text converted. Words are cut from the converted segment text where the
 * conversion keeps the length (OpenCC's character tables do), so that a phrase spanning two words converts as a
 * phrase and the words still concatenate to the segment text; otherwise each word converts on its own.
 */
export function convertSegmentScript(segment: Segment, convert: ScriptConverter): Segment {
  const text = convert(segment.text);
  const out: Segment = { ...segment, text };
  if (segment.words) {
    const chars = Array.from(text);
    const joined = segment.words.map((w) => w.word).join('');
    if (joined === segment.text && chars.length === Array.from(segment.text).length) {
      let at = 0;
      out.words = segment.words.map((w) => {
        const n = Array.from(w.word).length;
        const word = chars.slice(at, at + n).join('');
        at += n;
        return { ...w, word };
      });
    } else {
      out.words = segment.words.map((w) => ({ ...w, word: convert(w.word) }));
    }
  }
  return out;
}
