export {
  SAMPLE_RATE,
  N_FFT,
  HOP_LENGTH,
  CHUNK_LENGTH,
  N_SAMPLES,
  N_FRAMES,
  N_SAMPLES_PER_TOKEN,
  FRAMES_PER_SECOND,
  TOKENS_PER_SECOND,
} from './constants.js';
export { decodeAudio, type DecodeAudioOptions } from './decode.js';
export { logMelSpectrogram, melWindow, melFilterbank, type MelSpectrogram } from './mel.js';
export { resample } from './resample.js';
export { parseWav, type WavAudio } from './wav.js';
