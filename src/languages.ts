/**
 * Whisper's language codes and English names, in the order of the model's language tokens (openai/whisper
 * tokenizer.py LANGUAGES). A model's own `lang_to_id` decides which of these it supports.
 */
export const LANGUAGE_NAMES: Readonly<Record<string, string>> = {
  en: 'english', zh: 'chinese', de: 'german', es: 'spanish', ru: 'russian', ko: 'korean', fr: 'french',
  ja: 'japanese', pt: 'portuguese', tr: 'turkish', pl: 'polish', ca: 'catalan', nl: 'dutch', ar: 'arabic',
  sv: 'swedish', it: 'italian', id: 'indonesian', hi: 'hindi', fi: 'finnish', vi: 'vietnamese', he: 'hebrew',
  uk: 'ukrainian', el: 'greek', ms: 'malay', cs: 'czech', ro: 'romanian', da: 'danish', hu: 'hungarian',
  ta: 'tamil', no: 'norwegian', th: 'thai', ur: 'urdu', hr: 'croatian', bg: 'bulgarian', lt: 'lithuanian',
  la: 'latin', mi: 'maori', ml: 'malayalam', cy: 'welsh', sk: 'slovak', te: 'telugu', fa: 'persian',
  lv: 'latvian', bn: 'bengali', sr: 'serbian', az: 'azerbaijani', sl: 'slovenian', kn: 'kannada', et: 'estonian',
  mk: 'macedonian', br: 'breton', eu: 'basque', is: 'icelandic', hy: 'armenian', ne: 'nepali', mn: 'mongolian',
  bs: 'bosnian', kk: 'kazakh', sq: 'albanian', sw: 'swahili', gl: 'galician', mr: 'marathi', pa: 'punjabi',
  si: 'sinhala', km: 'khmer', sn: 'shona', yo: 'yoruba', so: 'somali', af: 'afrikaans', oc: 'occitan',
  ka: 'georgian', be: 'belarusian', tg: 'tajik', sd: 'sindhi', gu: 'gujarati', am: 'amharic', yi: 'yiddish',
  lo: 'lao', uz: 'uzbek', fo: 'faroese', ht: 'haitian creole', ps: 'pashto', tk: 'turkmen', nn: 'nynorsk',
  mt: 'maltese', sa: 'sanskrit', lb: 'luxembourgish', my: 'myanmar', bo: 'tibetan', tl: 'tagalog',
  mg: 'malagasy', as: 'assamese', tt: 'tatar', haw: 'hawaiian', ln: 'lingala', ha: 'hausa', ba: 'bashkir',
  jw: 'javanese', su: 'sundanese', yue: 'cantonese',
};

/** Accepts a code (`zh`) or an English name (`Chinese`, `mandarin`) and returns the code, or undefined. */
export function toLanguageCode(value: string): string | undefined {
  const v = value.trim().toLowerCase();
  if (Object.hasOwn(LANGUAGE_NAMES, v)) return v;
  const aliases: Record<string, string> = { mandarin: 'zh', iw: 'he', burmese: 'my', castilian: 'es', flemish: 'nl',
    haitian: 'ht', letzeburgesch: 'lb', moldavian: 'ro', moldovan: 'ro', panjabi: 'pa', pushto: 'ps',
    sinhalese: 'si', valencian: 'ca' };
  if (aliases[v]) return aliases[v];
  for (const [code, name] of Object.entries(LANGUAGE_NAMES)) if (name === v) return code;
  return undefined;
}
