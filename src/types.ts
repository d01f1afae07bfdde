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
  /** Text tokens of the segment (timestamp tokens removed). */
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
