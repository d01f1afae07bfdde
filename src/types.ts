/** Typed results of a transcription. Times are seconds in the original audio. */

export interface Word {
  /** The word as decoded, with its leading space where the model put one. */
  word: string;
  start: number;
  end: number;
  /** Mean probability of the word's tokens. */
  probability: number;
}

export interface Segment {
  id: number;
  /** Frame offset (10 ms units) of the 30-s window this segment was decoded from. */
  seek: number;
  start: number;
  end: number;
  text: string;
  /** The segment's tokens as the decoder chose them, its timestamp tokens included (as openai/whisper reports them). */
  tokens: number[];
  avgLogprob: number;
  noSpeechProb: number;
  compressionRatio: number;
  temperature: number;
  /** Present when word timestamps were requested. */
  words?: Word[];
}

export interface TranscriptionInfo {
  /** ISO-639-1 code (or Whisper's code) of the language used for decoding. */
  language: string;
  /** Probability of that language from detection; 1 when the language was given. */
  languageProbability: number;
  /** All language probabilities from detection, when detection ran. */
  allLanguageProbs?: Record<string, number>;
  /** Duration of the input audio in seconds. */
  duration: number;
  /** Seconds of speech the voice-activity detector kept, when it ran (faster-whisper's duration_after_vad). */
  durationAfterVad?: number;
  task: 'transcribe' | 'translate';
}

export interface TranscriptionResult {
  info: TranscriptionInfo;
  segments: Segment[];
  text: string;
}

/**
 * An event of a live transcription (stream/). Times are seconds of the stream, counted from its first sample.
 * `audioEnd`: how much of the stream had been heard when the event was decided.
 */
export type StreamEvent = StreamPartialEvent | StreamFinalEvent | StreamLanguageEvent;

/** Text that may still change: the words after the last final. Each partial replaces the one before. */
export interface StreamPartialEvent {
  type: 'partial';
  /** Empty when everything heard so far is final. */
  text: string;
  start: number;
  end: number;
  words: Word[];
  audioEnd: number;
}

/**
 * Committed text: never changed or sent again. Finals come in order with increasing `id` (0, 1, 2, …) and
 * non-decreasing times; their texts joined are the transcript.
 */
export interface StreamFinalEvent {
  type: 'final';
  id: number;
  /** With the leading space Whisper writes before a word. */
  text: string;
  start: number;
  end: number;
  words: Word[];
  /**
   * Why it was committed: consecutive hypotheses agreed, the speaker paused, the buffer had to be cut, the stream
   * ended (`end()`), or it was aborted (the last hypothesis as it stood).
   */
  reason: 'agreement' | 'pause' | 'trim' | 'end' | 'abort';
  audioEnd: number;
}

/** The language the stream is decoded in, sent once (detected, or as given). */
export interface StreamLanguageEvent {
  type: 'language';
  language: string;
  /** 1 when the language was given or the model is English-only. */
  probability: number;
  audioEnd: number;
}
