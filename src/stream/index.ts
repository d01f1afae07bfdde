/**
 * Live transcription (streaming): `createStream(whisper, options, { signal, onEvent })` → a `LiveTranscriber` that
 * takes 16 kHz Float32 chunks and emits `partial` and `final` events (StreamEvent in types.ts).
 */
export { createStream, LiveTranscriber, type StreamContext, type StreamStats } from './transcriber.js';
export {
  STREAM_DEFAULTS,
  STREAM_OPTION_SPECS,
  VAD_STREAM_DEFAULTS,
  resolveStreamOptions,
  type ResolvedStreamOptions,
  type StreamOptions,
  type StreamSettings,
} from './options.js';
export { LocalAgreement, comparable, type TimedWord } from './agreement.js';
