import type { DecodeWindowOptions } from '../decoding/decode.js';
import type { ResolvedTranscribeOptions } from '../options.js';

/** The decoding options a window takes from the options table as they are (the loop adds prompt, prefix, language …). */
export type TableDecodingOptions = Pick<
  DecodeWindowOptions,
  | 'task'
  | 'withoutTimestamps'
  | 'bestOf'
  | 'beamSize'
  | 'patience'
  | 'lengthPenalty'
  | 'repetitionPenalty'
  | 'noRepeatNgramSize'
  | 'suppressTokens'
  | 'suppressBlank'
  | 'maxInitialTimestamp'
  | 'maxNewTokens'
>;

/**
 * The part of a window's decoding options that comes straight from the transcription options (openai/whisper
 * transcribe.py passes its decode_options to every window unchanged); shared by the seek loop, the batched pipeline and
 * the live transcriber.
 */
export function tableDecodingOptions(o: ResolvedTranscribeOptions): TableDecodingOptions {
  return {
    task: o.task,
    withoutTimestamps: o.withoutTimestamps,
    bestOf: o.bestOf,
    beamSize: o.beamSize,
    patience: o.patience,
    lengthPenalty: o.lengthPenalty,
    repetitionPenalty: o.repetitionPenalty,
    noRepeatNgramSize: o.noRepeatNgramSize,
    suppressTokens: o.suppressTokens,
    suppressBlank: o.suppressBlank,
    maxInitialTimestamp: o.maxInitialTimestamp,
    maxNewTokens: o.maxNewTokens,
  };
}
