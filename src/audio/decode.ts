import { open, readFile } from 'node:fs/promises';
import { WhisperError } from '../errors.js';
import { SAMPLE_RATE } from './constants.js';
import { decodeWithFfmpeg, type FfmpegOptions } from './ffmpeg.js';
import { resample } from './resample.js';
import { looksLikeWav, parseWav } from './wav.js';

export interface DecodeAudioOptions {
  /** Aborts the decode; a running ffmpeg is killed and the promise rejects with `E_ABORTED`. */
  signal?: AbortSignal | undefined;
  /** The ffmpeg executable (default: `$WHISPER_TS_FFMPEG`, else `ffmpeg` on PATH). Only needed for inputs that are not WAV. */
  ffmpegPath?: string | undefined;
  /**
   * Decode at most this many seconds from the start (ffmpeg stops there: `-t`; a WAV is cut). A service that limits
   * the duration decodes a little more than its limit, so that a small compressed upload holding hours of audio is
   * never expanded in memory.
   */
  maxSeconds?: number | undefined;
}

/**
 * Decodes an audio file (a path) or its bytes into mono 16 kHz float32 samples in [-1, 1).
 *
 * WAV (PCM 8/16/24/32-bit, float 32/64, RIFF/RIFX/RF64, WAVE_FORMAT_EXTENSIBLE) up to 2 GiB is parsed natively: the channels are
 * averaged and other rates resampled to 16 kHz with a windowed-sinc filter; a 16-bit 16 kHz mono WAV gives exactly
 * int16 / 32768, as the reference does. Everything else (flac, mp3, ogg/opus, m4a, the audio of a video, WAVs in
 * other encodings) is decoded by ffmpeg as openai/whisper audio.py `load_audio` does.
 *
 * Errors: `E_AUDIO_NOT_FOUND` (no such path), `E_AUDIO_DECODE` (empty, truncated, not audio, no samples, NaN/Inf
 * samples), `E_FFMPEG_MISSING` (ffmpeg needed but not found), `E_ABORTED`, `E_IO` (the file cannot be read).
 */
export async function decodeAudio(
  input: string | Uint8Array | ArrayBuffer,
  options: DecodeAudioOptions = {},
): Promise<Float32Array> {
  const { signal } = options;
  if (signal?.aborted) throw new WhisperError('E_ABORTED', 'decoding was aborted', { cause: signal.reason });
  const { maxSeconds } = options;
  if (maxSeconds !== undefined && !(maxSeconds > 0)) {
    throw new WhisperError('E_OPTIONS', `maxSeconds must be a positive number of seconds, not ${maxSeconds}`);
  }
  const ffmpegPath = options.ffmpegPath ?? (process.env.WHISPER_TS_FFMPEG || undefined);
  const ffmpeg = { signal, ffmpegPath, maxSeconds };

  if (typeof input === 'string') {
    const head = await readHead(input);
    // a pipe (/dev/stdin, bash's <(…), a FIFO) cannot be read twice nor at a position: its bytes, read once, in order
    if ('stream' in head) return decodeBytes(head.stream, input, ffmpeg);
    // a WAV over NATIVE_WAV_MAX_BYTES goes to ffmpeg, which streams it (Node cannot read it in one piece)
    if (looksLikeWav(head.head) && head.size <= NATIVE_WAV_MAX_BYTES) {
      const bytes = await readAll(input);
      if (signal?.aborted) {
        throw new WhisperError('E_ABORTED', `decoding ${input} was aborted`, { cause: signal.reason });
      }
      const wav = parseWav(bytes, input);
      if (wav !== undefined) return fromWav(wav, maxSeconds);
    }
    return decodeWithFfmpeg({ path: input }, input, ffmpeg);
  }

  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  return decodeBytes(bytes, `the input buffer (${bytes.length} bytes)`, ffmpeg);
}

/** Encoded bytes in memory: a WAV natively, anything else through ffmpeg. */
async function decodeBytes(bytes: Uint8Array, label: string, ffmpeg: FfmpegOptions): Promise<Float32Array> {
  if (bytes.length === 0) throw new WhisperError('E_AUDIO_DECODE', `cannot decode ${label}: it is empty`);
  if (looksLikeWav(bytes)) {
    const wav = parseWav(bytes, label);
    if (wav !== undefined) return fromWav(wav, ffmpeg.maxSeconds);
  }
  return decodeWithFfmpeg({ bytes }, label, ffmpeg);
}

/** A parsed WAV's samples, cut to `maxSeconds`, at the model's rate. */
function fromWav(wav: { samples: Float32Array; sampleRate: number }, maxSeconds: number | undefined): Float32Array {
  return toModelRate(cut(wav.samples, wav.sampleRate, maxSeconds), wav.sampleRate);
}

/** The first `maxSeconds` of samples at `rate` (all of them without a limit). */
function cut(samples: Float32Array, rate: number, maxSeconds: number | undefined): Float32Array {
  if (maxSeconds === undefined) return samples;
  const n = Math.ceil(maxSeconds * rate);
  return samples.length > n ? samples.subarray(0, n) : samples;
}

function toModelRate(samples: Float32Array, rate: number): Float32Array {
  return rate === SAMPLE_RATE ? samples : resample(samples, rate, SAMPLE_RATE);
}

/** WAV files up to this size are parsed natively; larger ones are decoded by ffmpeg (Node reads no file over 2 GiB whole). */
export const NATIVE_WAV_MAX_BYTES = 2 ** 31 - 1;

/**
 * The first 12 bytes of a file (enough to recognise a WAV), or all the bytes of a pipe or device (which can be read
 * only once, from its start, through the handle that opened it); rejects a missing, empty or unreadable file.
 */
async function readHead(path: string): Promise<{ head: Uint8Array; size: number } | { stream: Uint8Array }> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw fileError(path, err);
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new WhisperError('E_AUDIO_DECODE', `cannot decode ${path}: it is a directory`);
    if (!stat.isFile()) return { stream: await handle.readFile() };
    if (stat.size === 0 && stat.isFile()) {
      throw new WhisperError('E_AUDIO_DECODE', `cannot decode ${path}: the file is empty`);
    }
    const head = new Uint8Array(12);
    const { bytesRead } = await handle.read(head, 0, 12, 0);
    if (bytesRead === 0) throw new WhisperError('E_AUDIO_DECODE', `cannot decode ${path}: the file is empty`);
    return { head: head.subarray(0, bytesRead), size: stat.size };
  } catch (err) {
    throw err instanceof WhisperError ? err : fileError(path, err);
  } finally {
    await handle.close();
  }
}

async function readAll(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw fileError(path, err);
  }
}

function fileError(path: string, err: unknown): WhisperError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new WhisperError('E_AUDIO_NOT_FOUND', `audio file not found: ${path}`, { cause: err });
  }
  if (code === 'EISDIR') {
    return new WhisperError('E_AUDIO_DECODE', `cannot decode ${path}: it is a directory`, { cause: err });
  }
  const why = err instanceof Error ? err.message : String(err);
  return new WhisperError('E_IO', `cannot read ${path}: ${why}`, { cause: err });
}
