/**
 * Audio hyper-parameters of Whisper, as openai/whisper audio.py defines them (module constants at the top of the
 * file). Every model size uses the same values; only the number of mel bins (80 or 128) varies, and that comes from
 * the model's preprocessor config.
 */

/** Sample rate the models were trained on (Hz). */
export const SAMPLE_RATE = 16000;
/** STFT window length in samples (25 ms). */
export const N_FFT = 400;
/** STFT hop in samples (10 ms). */
export const HOP_LENGTH = 160;
/** Length of one model window in seconds. */
export const CHUNK_LENGTH = 30;
/** Samples in one 30-s window: CHUNK_LENGTH * SAMPLE_RATE. */
export const N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE; // 480000
/** Mel frames in one 30-s window: N_SAMPLES / HOP_LENGTH. */
export const N_FRAMES = N_SAMPLES / HOP_LENGTH; // 3000
/** The encoder's initial convolutions have stride 2: one output position (and one timestamp step) per 2 frames. */
export const N_SAMPLES_PER_TOKEN = HOP_LENGTH * 2; // 320
/** Mel frames per second: SAMPLE_RATE / HOP_LENGTH (10 ms per frame). */
export const FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH; // 100
/** Timestamp-token resolution: SAMPLE_RATE / N_SAMPLES_PER_TOKEN (20 ms per token). */
export const TOKENS_PER_SECOND = SAMPLE_RATE / N_SAMPLES_PER_TOKEN; // 50
