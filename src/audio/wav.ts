import { WhisperError } from '../errors.js';

/**
 * Native WAV parsing: RIFF (little-endian), RIFX (big-endian) and RF64 containers; PCM 8 (unsigned), 16, 24 and
 * 32-bit, IEEE float 32 and 64-bit, plain or WAVE_FORMAT_EXTENSIBLE. Other encodings inside a WAV (ADPCM, A-law,
 * µ-law, …) are reported as unsupported so that the caller hands the file to ffmpeg.
 */

/** A WAV's samples downmixed to mono (mean of the channels), at the file's own rate. */
export interface WavAudio {
  samples: Float32Array;
  sampleRate: number;
  channels: number;
}

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

function fourcc(b: Uint8Array, off: number): string {
  return String.fromCharCode(b[off] ?? 0, b[off + 1] ?? 0, b[off + 2] ?? 0, b[off + 3] ?? 0);
}

/** True when the bytes start like a RIFF/RIFX/RF64 WAVE file (or are too short to tell but start with the magic). */
export function looksLikeWav(head: Uint8Array): boolean {
  const magic = fourcc(head, 0);
  if (magic !== 'RIFF' && magic !== 'RIFX' && magic !== 'RF64') return false;
  return head.length < 12 || fourcc(head, 8) === 'WAVE';
}

function decodeError(label: string, what: string): WhisperError {
  return new WhisperError('E_AUDIO_DECODE', `cannot decode ${label}: ${what}`);
}

interface Format {
  tag: number;
  channels: number;
  sampleRate: number;
  blockAlign: number;
  bitsPerSample: number;
}

/**
 * Parses a WAV held in memory. Returns `undefined` when the file is a well-formed WAV whose encoding we do not
 * decode natively (the caller then uses ffmpeg); throws `E_AUDIO_DECODE` naming `label` when it is malformed:
 * header cut short, no fmt or data chunk, a data chunk shorter than it declares, zero samples, NaN/Inf samples.
 */
export function parseWav(bytes: Uint8Array, label: string): WavAudio | undefined {
  const len = bytes.length;
  if (len < 12) throw decodeError(label, `truncated WAV header (${len} bytes, a RIFF header needs 12)`);
  const magic = fourcc(bytes, 0);
  const le = magic !== 'RIFX';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  let format: Format | undefined;
  let dataOffset = -1;
  let dataSize = 0;
  let ds64DataSize: number | undefined;
  let off = 12;
  while (off + 8 <= len && (format === undefined || dataOffset < 0)) {
    const id = fourcc(bytes, off);
    let size = view.getUint32(off + 4, le);
    const body = off + 8;
    if (id === 'ds64' && magic === 'RF64' && size >= 16 && body + 16 <= len) {
      // RF64 (EBU Tech 3306): the real 64-bit data size lives here; the data chunk's 32-bit size is 0xFFFFFFFF.
      ds64DataSize = Number(view.getBigUint64(body + 8, true));
    }
    if (id === 'data') {
      if (size === 0xffffffff && ds64DataSize !== undefined) size = ds64DataSize;
      const present = len - body;
      // a data size of 0 with bytes after it is what a recorder killed before it could write the size leaves;
      // ffmpeg (openai/whisper's decoder) reads such a file to its end, and so does this
      if (size === 0 && present > 0) size = present;
      if (size > present) {
        // 0xFFFFFFFF is what writers that stream to a pipe leave when they cannot seek back: "until end of file".
        if (size === 0xffffffff) size = present;
        else {
          throw decodeError(
            label,
            `truncated WAV: the data chunk declares ${size} bytes but only ${present} are present ` +
              `(${size - present} bytes missing)`,
          );
        }
      }
      dataOffset = body;
      dataSize = size;
    } else if (id === 'fmt ') {
      if (size < 16) throw decodeError(label, `invalid WAV: fmt chunk of ${size} bytes (needs at least 16)`);
      if (body + size > len) {
        throw decodeError(label, `truncated WAV header: the fmt chunk declares ${size} bytes, ${len - body} present`);
      }
      let tag = view.getUint16(body, le);
      if (tag === WAVE_FORMAT_EXTENSIBLE && size >= 40) {
        // WAVEFORMATEXTENSIBLE: the first two bytes of the SubFormat GUID are the actual format tag.
        tag = view.getUint16(body + 24, le);
      }
      format = {
        tag,
        channels: view.getUint16(body + 2, le),
        sampleRate: view.getUint32(body + 4, le),
        blockAlign: view.getUint16(body + 12, le),
        bitsPerSample: view.getUint16(body + 14, le),
      };
    }
    // Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
    off = body + size + (size & 1);
  }

  if (format === undefined) throw decodeError(label, `truncated or invalid WAV: no fmt chunk in ${len} bytes`);
  if (dataOffset < 0) throw decodeError(label, `truncated or invalid WAV: no data chunk in ${len} bytes`);
  const { tag, channels, sampleRate, blockAlign } = format;
  if (channels === 0 || sampleRate === 0 || blockAlign === 0 || blockAlign % channels !== 0) {
    throw decodeError(
      label,
      `invalid WAV fmt chunk (channels ${channels}, sample rate ${sampleRate}, block align ${blockAlign})`,
    );
  }
  const width = blockAlign / channels; // container bytes per sample; valid bits are left-justified in it
  const pcm = tag === WAVE_FORMAT_PCM && width >= 1 && width <= 4;
  const float = tag === WAVE_FORMAT_IEEE_FLOAT && (width === 4 || width === 8);
  if (!pcm && !float) return undefined;

  const nFrames = Math.floor(dataSize / blockAlign); // a partial last frame is ignored, as ffmpeg does
  if (nFrames === 0) throw decodeError(label, 'the WAV contains no audio samples');
  const samples = new Float32Array(nFrames);
  const read = sampleReader(view, le, pcm ? 'pcm' : 'float', width);
  // Integer PCM is scaled by 2^-(bits-1), so 16-bit samples become exactly int16 / 32768 (what ffmpeg's s16 output
  // divided by 32768 gives, as openai/whisper audio.py load_audio does).
  const scale = (pcm ? 1 / 2 ** (8 * width - 1) : 1) / channels;
  let p = dataOffset;
  for (let i = 0; i < nFrames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++, p += width) sum += read(p);
    samples[i] = sum * scale;
  }
  if (float) {
    for (let i = 0; i < nFrames; i++) {
      if (!Number.isFinite(samples[i] as number)) {
        throw decodeError(
          label,
          `the WAV has a non-finite sample (${samples[i]}) at frame ${i} (${(i / sampleRate).toFixed(3)} s)`,
        );
      }
    }
  }
  return { samples, sampleRate, channels };
}

function sampleReader(view: DataView, le: boolean, kind: 'pcm' | 'float', width: number): (p: number) => number {
  if (kind === 'float') return width === 4 ? (p) => view.getFloat32(p, le) : (p) => view.getFloat64(p, le);
  switch (width) {
    case 1:
      return (p) => view.getUint8(p) - 128; // 8-bit WAV PCM is unsigned
    case 2:
      return (p) => view.getInt16(p, le);
    case 3:
      return le
        ? (p) => view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getInt8(p + 2) << 16)
        : (p) => view.getUint8(p + 2) | (view.getUint8(p + 1) << 8) | (view.getInt8(p) << 16);
    default:
      return (p) => view.getInt32(p, le);
  }
}
