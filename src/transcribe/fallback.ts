import type { ResolvedTranscribeOptions } from '../options.js';
import type { DecodingResult } from '../decoding/decode.js';

/**
 * openai/whisper transcribe.py decode_with_fallback: decode at each temperature in turn until the result passes the
 * compression-ratio and log-probability checks (a window the no-speech gate marks silent needs no fallback). When every
 * temperature fails, keep the best result that passes the compression check, as faster-whisper transcribe.py
 * generate_with_fallback does, else the best overall by average log-probability.
 */
export async function decodeWithFallback(
  o: ResolvedTranscribeOptions,
  decodeAt: (temperature: number) => Promise<DecodingResult>,
): Promise<DecodingResult & { fallbacks: number }> {
  const tried: DecodingResult[] = [];
  for (const t of o.temperature) {
    const r = await decodeAt(t);
    tried.push(r);
    if (!needsFallback(o, r)) return { ...r, fallbacks: tried.length - 1 };
  }
  const passCompression = tried.filter(
    (r) => o.compressionRatioThreshold === null || r.compressionRatio <= o.compressionRatioThreshold,
  );
  const pool = passCompression.length ? passCompression : tried;
  const best = pool.reduce((a, b) => (b.avgLogprob > a.avgLogprob ? b : a));
  return { ...best, fallbacks: tried.length - 1 };
}

export function needsFallback(o: ResolvedTranscribeOptions, r: DecodingResult): boolean {
  let fallback = false;
  if (o.compressionRatioThreshold !== null && r.compressionRatio > o.compressionRatioThreshold) fallback = true;
  if (o.logprobThreshold !== null && r.avgLogprob < o.logprobThreshold) fallback = true;
  if (
    o.noSpeechThreshold !== null &&
    r.noSpeechProb > o.noSpeechThreshold &&
    o.logprobThreshold !== null &&
    r.avgLogprob < o.logprobThreshold
  ) {
    fallback = false; // silence
  }
  return fallback;
}
