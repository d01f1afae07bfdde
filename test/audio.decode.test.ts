import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAudio } from '../src/audio/index.js';
import { WhisperError } from '../src/errors.js';

const JFK = new URL('../../shared/eval/jfk/jfk.wav', import.meta.url).pathname;
const JFK_SAMPLES = 176000;
const LSB = 1 / 32768; // one step of 16-bit audio, the resolution of the reference's ffmpeg decode

let dir: string;

/** Runs ffmpeg on jfk.wav (or `input`) to make a fixture in the temp dir; returns its path. */
function make(name: string, args: string[], input: string[] = ['-i', JFK]): string {
  const out = join(dir, name);
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...input, ...args, out]);
  return out;
}

/**
 * The reference decode, run here independently of src/: openai/whisper audio.py load_audio's exact command,
 * int16 / 32768. `keepChannels` drops `-ac 1`, leaving the channels interleaved as they are in the file.
 */
function ffmpegDecode(path: string, keepChannels = false): Float32Array {
  const out = execFileSync(
    'ffmpeg',
    ['-nostdin', '-threads', '0', '-i', path, '-f', 's16le', ...(keepChannels ? [] : ['-ac', '1']),
      '-acodec', 'pcm_s16le', '-ar', '16000', '-'],
    { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 },
  );
  const samples = new Float32Array(out.length >> 1);
  for (let i = 0; i < samples.length; i++) samples[i] = out.readInt16LE(2 * i) / 32768;
  return samples;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

function rms(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s / x.length);
}

/** The format tag of a WAV whose first chunk is fmt (what ffmpeg writes without -rf64). */
function wavFormatTag(path: string): number {
  return readFileSync(path).readUint16LE(20);
}

/** Rejects with a WhisperError of `code` whose message contains every string in `mentions`. */
async function expectError(promise: Promise<unknown>, code: string, ...mentions: string[]): Promise<WhisperError> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WhisperError);
  const we = err as WhisperError;
  expect(we.code).toBe(code);
  for (const m of mentions) expect(we.message).toContain(m);
  return we;
}

/** A RIFF WAV around `data` with the given fmt fields and extra chunks before fmt and data. */
function buildWav(opts: {
  tag?: number;
  channels?: number;
  rate?: number;
  bits?: number;
  data: Uint8Array;
  dataSize?: number;
  before?: { id: string; body: Uint8Array }[];
}): Buffer {
  const { tag = 1, channels = 1, rate = 16000, bits = 16, data, before = [] } = opts;
  const chunk = (id: string, body: Uint8Array, size = body.length): Buffer => {
    const head = Buffer.alloc(8);
    head.write(id, 0, 'latin1');
    head.writeUint32LE(size, 4);
    return Buffer.concat([head, body, Buffer.alloc(body.length % 2)]); // word alignment
  };
  const fmt = Buffer.alloc(16);
  fmt.writeUint16LE(tag, 0);
  fmt.writeUint16LE(channels, 2);
  fmt.writeUint32LE(rate, 4);
  fmt.writeUint32LE((rate * channels * bits) / 8, 8);
  fmt.writeUint16LE((channels * bits) / 8, 12);
  fmt.writeUint16LE(bits, 14);
  const body = Buffer.concat([
    Buffer.from('WAVE', 'latin1'),
    ...before.map((c) => chunk(c.id, c.body)),
    chunk('fmt ', fmt),
    chunk('data', data, opts.dataSize ?? data.length),
  ]);
  const head = Buffer.alloc(8);
  head.write('RIFF', 0, 'latin1');
  head.writeUint32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

function float32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

let jfk: Float32Array;

/** The offset and declared size of the data chunk of jfk.wav (ffmpeg put a LIST chunk before it). */
function jfkDataChunk(): { bytes: Buffer; offset: number; size: number } {
  const bytes = readFileSync(JFK);
  const at = bytes.indexOf('data', 12, 'latin1');
  return { bytes, offset: at + 8, size: bytes.readUint32LE(at + 4) };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'whisper-ts-audio-test-'));
  jfk = ffmpegDecode(JFK);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('native WAV decoding', () => {
  it('gives exactly the reference samples (int16 / 32768) for 16-bit 16 kHz mono', async () => {
    expect(wavFormatTag(JFK)).toBe(1);
    const samples = await decodeAudio(JFK);
    expect(samples).toHaveLength(JFK_SAMPLES);
    expect(maxAbsDiff(samples, jfk)).toBe(0);
  });

  // Each variant is compared with ffmpeg's decode of the same file, which quantises to 16 bits:
  //  - 8-bit PCM maps exactly onto 16 bits ((x - 128) << 8): exact.
  //  - 24/32-bit PCM: ffmpeg truncates to 16 bits, so our full-precision samples differ by less than one step.
  //  - float and the stereo mean: ffmpeg rounds to the nearest 16-bit step: at most half a step.
  //  - resampled 16-bit input: ffmpeg's libswresample runs its windowed-sinc filter in 16-bit fixed point for s16
  //    input (quantised taps and accumulator), ours in float64 with the same filter design; measured on jfk
  //    4.5 steps (44.1 kHz) and 3.2 steps (8 kHz), so 6 steps (1.8e-4, far below anything the log-mel sees).
  //  - resampled 24-bit input: the float path on both sides; measured 0.8 steps, allow 1.5.
  const volume = ['-af', 'volume=0.9']; // off the 16-bit grid, so the extra precision is really exercised
  it.each([
    ['u8.wav', ['-c:a', 'pcm_u8'], 1, 0],
    ['s24.wav', [...volume, '-c:a', 'pcm_s24le'], 0xfffe, 1],
    ['s32.wav', [...volume, '-c:a', 'pcm_s32le'], 0xfffe, 1],
    ['f32.wav', [...volume, '-c:a', 'pcm_f32le'], 0xfffe, 0.5],
    ['f64.wav', [...volume, '-c:a', 'pcm_f64le'], 0xfffe, 0.5],
    [
      'stereo.wav',
      ['-filter_complex', '[0:a]asplit[a][b];[b]adelay=37,volume=0.5[c];[a][c]join=inputs=2:channel_layout=stereo',
        '-c:a', 'pcm_s16le'],
      1,
      0.5,
    ],
    ['r44100.wav', ['-ar', '44100', '-c:a', 'pcm_s16le'], 1, 6],
    ['r8000.wav', ['-ar', '8000', '-c:a', 'pcm_s16le'], 1, 6],
    ['r22050.wav', ['-ar', '22050', '-c:a', 'pcm_s16le'], 1, 6],
    ['r48000-stereo-s24.wav', [...volume, '-ar', '48000', '-ac', '2', '-c:a', 'pcm_s24le'], 0xfffe, 1.5],
  ] as const)('%s (format tag %i) matches ffmpeg within %f 16-bit steps', async (name, args, tag, steps) => {
    const path = make(name, [...args]);
    expect(wavFormatTag(path)).toBe(tag);
    const samples = await decodeAudio(path);
    expect(samples).toHaveLength(JFK_SAMPLES);
    const diff = maxAbsDiff(samples, ffmpegDecode(path));
    // 1e-9 absorbs float32 rounding of our own samples
    expect(diff).toBeLessThanOrEqual(steps * LSB + 1e-9);
  });

  it('downmixes more than two channels to their mean (WAVE_FORMAT_EXTENSIBLE, 3.0 layout)', async () => {
    const path = make('ch3.wav', [
      '-filter_complex',
      '[0:a]asplit=3[a][b][d];[b]adelay=37,volume=0.5[c];[d]volume=-0.7[e];[a][c][e]join=inputs=3:channel_layout=3.0',
      '-c:a', 'pcm_s16le',
    ]);
    expect(wavFormatTag(path)).toBe(0xfffe);
    const interleaved = ffmpegDecode(path, true);
    const mean = new Float32Array(interleaved.length / 3);
    for (let i = 0; i < mean.length; i++) {
      const [a, b, c] = interleaved.subarray(3 * i, 3 * i + 3) as unknown as [number, number, number];
      mean[i] = (a + b + c) / 3;
    }
    expect(maxAbsDiff(await decodeAudio(path), mean)).toBeLessThan(1e-7);
  });

  it('reads RF64 and streamed WAVs (data size 0xFFFFFFFF) to the end of the file', async () => {
    const rf64 = make('rf64.wav', ['-rf64', 'always']);
    expect(readFileSync(rf64).toString('latin1', 0, 4)).toBe('RF64');
    expect(maxAbsDiff(await decodeAudio(rf64), jfk)).toBe(0);
    // what ffmpeg writes to a pipe: RIFF and data sizes left as 0xFFFFFFFF
    const streamed = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', JFK, '-f', 'wav', '-'], {
      maxBuffer: 1 << 30,
    });
    expect(streamed.readUint32LE(4)).toBe(0xffffffff);
    expect(maxAbsDiff(await decodeAudio(streamed), jfk)).toBe(0);
    // a recorder killed before it wrote the sizes: data size 0, the samples after it (ffmpeg reads them too)
    const killed = Buffer.from(readFileSync(JFK));
    const data = killed.indexOf('data', 12, 'latin1');
    killed.writeUInt32LE(0, data + 4);
    killed.writeUInt32LE(0, 4);
    expect(maxAbsDiff(await decodeAudio(killed), jfk)).toBe(0);
  });

  it('reads big-endian RIFX', async () => {
    const { bytes, offset } = jfkDataChunk();
    const riff = buildWav({ data: bytes.subarray(offset) });
    const be = Buffer.from(riff);
    be.write('RIFX', 0, 'latin1');
    const swap32 = (o: number): void => void be.writeUint32BE(riff.readUint32LE(o), o);
    const swap16 = (o: number): void => void be.writeUint16BE(riff.readUint16LE(o), o);
    swap32(4);
    swap32(16); // fmt size
    swap16(20); // tag
    swap16(22); // channels
    swap32(24); // rate
    swap32(28); // byte rate
    swap16(32); // block align
    swap16(34); // bits
    swap32(40); // data size
    for (let o = 44; o < be.length; o += 2) swap16(o);
    expect(maxAbsDiff(await decodeAudio(be), jfk)).toBe(0);
  });

  it('skips chunks before fmt and data, including odd-sized ones with a pad byte', async () => {
    const wav = buildWav({
      data: jfkDataChunk().bytes.subarray(jfkDataChunk().offset),
      before: [
        { id: 'JUNK', body: new Uint8Array(3) },
        { id: 'LIST', body: new Uint8Array(27).fill(7) },
      ],
    });
    expect(maxAbsDiff(await decodeAudio(wav), jfk)).toBe(0);
  });

  it('accepts a Buffer, a Uint8Array view into a larger buffer, and an ArrayBuffer', async () => {
    const bytes = readFileSync(JFK);
    expect(maxAbsDiff(await decodeAudio(bytes), jfk)).toBe(0);
    const padded = new Uint8Array(bytes.length + 3);
    padded.set(bytes, 3); // odd byte offset: samples are not 2-byte aligned
    expect(maxAbsDiff(await decodeAudio(padded.subarray(3)), jfk)).toBe(0);
    const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    expect(maxAbsDiff(await decodeAudio(copy), jfk)).toBe(0);
  });

  it('needs no ffmpeg', async () => {
    expect(maxAbsDiff(await decodeAudio(JFK, { ffmpegPath: join(dir, 'no-such-ffmpeg') }), jfk)).toBe(0);
  });
});

describe('decoding through ffmpeg', () => {
  it('decodes flac losslessly', async () => {
    const path = make('jfk.flac', ['-c:a', 'flac']);
    expect(maxAbsDiff(await decodeAudio(path), jfk)).toBe(0);
    expect(maxAbsDiff(await decodeAudio(readFileSync(path)), jfk)).toBe(0);
  });

  it('reads a pipe (a FIFO, as /dev/stdin or bash <(…) give) once, from its start: WAV natively, flac through ffmpeg', async () => {
    for (const [name, source] of [['jfk-pipe.wav', JFK], ['jfk-pipe.flac', make('jfk-pipe-src.flac', ['-c:a', 'flac'])]] as const) {
      const fifo = join(dir, `${name}.fifo`);
      execFileSync('mkfifo', [fifo]);
      const writer = spawn('sh', ['-c', `cat "${source}" > "${fifo}"`]);
      const written = new Promise((r) => writer.once('close', r));
      const samples = await decodeAudio(fifo);
      await written;
      expect(maxAbsDiff(samples, jfk), name).toBe(0);
    }
  });

  it('decodes no more than maxSeconds: ffmpeg stops there and a WAV is cut (the same samples as the whole decode)', async () => {
    const flac = make('jfk-max.flac', ['-c:a', 'flac']);
    const fromFlac = await decodeAudio(readFileSync(flac), { maxSeconds: 3 });
    expect(fromFlac.length).toBe(3 * 16000);
    expect(maxAbsDiff(fromFlac, jfk.subarray(0, 3 * 16000))).toBe(0);
    const fromWav = await decodeAudio(JFK, { maxSeconds: 2.5 });
    expect(fromWav.length).toBe(2.5 * 16000);
    expect(maxAbsDiff(fromWav, jfk.subarray(0, 2.5 * 16000))).toBe(0);
    expect((await decodeAudio(JFK, { maxSeconds: 60 })).length).toBe(JFK_SAMPLES);
    await expectError(decodeAudio(JFK, { maxSeconds: 0 }), 'E_OPTIONS', 'maxSeconds');
  });

  it('a WAV over 2 GiB (Node reads no file that large in one piece) is decoded by ffmpeg, which streams it', async () => {
    // jfk's samples, then silence to past 2 GiB: a sparse file, so nothing is written to disk for the silence
    const pcm = Buffer.from(Int16Array.from(jfk, (x) => Math.round(x * 32768)).buffer);
    const size = 2 ** 31 + 4096;
    const header = Buffer.alloc(44);
    header.write('RIFF', 0);
    header.writeUInt32LE(size - 8, 4);
    header.write('WAVEfmt ', 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20); // PCM
    header.writeUInt16LE(1, 22); // mono
    header.writeUInt32LE(16000, 24);
    header.writeUInt32LE(32000, 28);
    header.writeUInt16LE(2, 32);
    header.writeUInt16LE(16, 34);
    header.write('data', 36);
    header.writeUInt32LE(size - 44, 40);
    const big = join(dir, 'big.wav');
    writeFileSync(big, Buffer.concat([header, pcm]));
    truncateSync(big, size);
    const samples = await decodeAudio(big, { maxSeconds: 12 });
    expect(samples.length).toBe(12 * 16000);
    expect(maxAbsDiff(samples.subarray(0, JFK_SAMPLES), jfk)).toBe(0);
    expect(Math.max(...samples.subarray(JFK_SAMPLES).map(Math.abs))).toBe(0);
    rmSync(big);
  });

  it('pipes bytes to ffmpeg when no temporary file can be written', async () => {
    const path = make('jfk-pipe.flac', ['-c:a', 'flac']);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = join(dir, 'no-such-dir');
    try {
      expect(maxAbsDiff(await decodeAudio(readFileSync(path)), jfk)).toBe(0);
      // the price of the pipe, and the proof that it is used: an m4a cannot be read from one
      const m4a = make('jfk-pipe.m4a', ['-c:a', 'aac']);
      await expectError(decodeAudio(readFileSync(m4a)), 'E_AUDIO_DECODE', 'buffer');
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  // Lossy formats: the samples must be exactly what the reference's ffmpeg command gives, and still be jfk.wav.
  it.each([
    ['jfk.mp3', ['-c:a', 'libmp3lame', '-b:a', '64k']],
    ['jfk.ogg', ['-c:a', 'libvorbis']],
    ['jfk.opus', ['-c:a', 'libopus', '-b:a', '32k']],
    ['jfk.m4a', ['-c:a', 'aac', '-b:a', '64k']],
    ['jfk-video.webm', ['-c:v', 'libvpx', '-b:v', '50k', '-c:a', 'libopus', '-shortest']],
    ['jfk-video.mp4', ['-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-shortest']],
    ['jfk-alaw.wav', ['-c:a', 'pcm_alaw']], // a WAV encoding we leave to ffmpeg
  ] as const)('decodes %s from a path and from a Buffer', async (name, args) => {
    const video = name.includes('video') ? ['-f', 'lavfi', '-i', 'color=c=blue:s=64x64:r=10'] : [];
    const path = make(name, [...args], [...video, '-i', JFK]);
    const expected = ffmpegDecode(path);
    const samples = await decodeAudio(path);
    expect(maxAbsDiff(samples, expected)).toBe(0);
    expect(Math.abs(samples.length - JFK_SAMPLES)).toBeLessThan(JFK_SAMPLES * 0.02);
    expect(rms(samples) / rms(jfk)).toBeGreaterThan(0.8);
    expect(rms(samples) / rms(jfk)).toBeLessThan(1.25);
    // Bytes go through a temp file, not a pipe: piped, mp4/m4a fail (index at the end) and mp3 loses its
    // gapless trimming.
    expect(maxAbsDiff(await decodeAudio(readFileSync(path)), expected)).toBe(0);
  });
});

describe('errors', () => {
  it('E_AUDIO_NOT_FOUND for a missing path', async () => {
    const path = join(dir, 'missing.wav');
    await expectError(decodeAudio(path), 'E_AUDIO_NOT_FOUND', path);
    await expectError(decodeAudio(join(dir, 'missing.mp3')), 'E_AUDIO_NOT_FOUND', 'missing.mp3');
  });

  it('E_AUDIO_DECODE for a directory', async () => {
    const path = join(dir, 'a-folder.wav');
    mkdirSync(path, { recursive: true });
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'directory');
  });

  it('E_AUDIO_DECODE for an empty file or buffer', async () => {
    const path = join(dir, 'empty.wav');
    writeFileSync(path, '');
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'empty');
    await expectError(decodeAudio(new Uint8Array(0)), 'E_AUDIO_DECODE', 'buffer', 'empty');
  });

  it('E_AUDIO_DECODE for a WAV whose header is cut', async () => {
    const bytes = readFileSync(JFK);
    for (const n of [4, 10, 30]) {
      const path = join(dir, `header-cut-${n}.wav`);
      writeFileSync(path, bytes.subarray(0, n));
      await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'truncated');
    }
  });

  it('E_AUDIO_DECODE for a WAV without a data chunk', async () => {
    const path = join(dir, 'no-data.wav');
    writeFileSync(path, readFileSync(JFK).subarray(0, 36)); // RIFF header + fmt, nothing after
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'no data chunk');
  });

  it('E_AUDIO_DECODE naming the missing bytes for a data chunk shorter than declared', async () => {
    const { bytes, offset, size: declared } = jfkDataChunk();
    const path = join(dir, 'truncated.wav');
    writeFileSync(path, bytes.subarray(0, offset + 100_000));
    const err = await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'truncated');
    expect(err.message).toContain(`${declared - 100_000} bytes missing`);
  });

  it('E_AUDIO_DECODE for a text file named .wav, summarising ffmpeg', async () => {
    const path = join(dir, 'notes.wav');
    writeFileSync(path, 'these are meeting notes, not audio\n'.repeat(20));
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'Invalid data found when processing input');
  });

  it('E_AUDIO_DECODE for non-audio given to ffmpeg, by path and by buffer', async () => {
    const path = join(dir, 'random.mp3');
    const junk = Buffer.alloc(4096);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919) % 251;
    writeFileSync(path, junk);
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'ffmpeg');
    await expectError(decodeAudio(junk), 'E_AUDIO_DECODE', 'buffer', 'ffmpeg');
  });

  it('E_AUDIO_DECODE for a file without an audio stream', async () => {
    const video = ['-f', 'lavfi', '-i', 'color=c=red:s=32x32:r=5'];
    const path = make('video-only.webm', ['-t', '1', '-c:v', 'libvpx'], video);
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path);
  });

  it('E_AUDIO_DECODE for zero samples', async () => {
    const path = join(dir, 'zero-samples.wav');
    writeFileSync(path, buildWav({ data: new Uint8Array(0) }));
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'no audio samples');
    const flac = make('zero-samples.flac', ['-c:a', 'flac'], ['-i', path]);
    await expectError(decodeAudio(flac), 'E_AUDIO_DECODE', flac, 'no audio samples');
  });

  it.each([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
  ])('E_AUDIO_DECODE for a float WAV with a %s sample', async (name, value) => {
    const path = join(dir, `float-${name}.wav`);
    writeFileSync(path, buildWav({ tag: 3, bits: 32, data: float32Bytes([0, 0.5, -0.25, value, 0.1]) }));
    await expectError(decodeAudio(path), 'E_AUDIO_DECODE', path, 'non-finite', 'frame 3');
  });

  it('E_FFMPEG_MISSING when a non-WAV input needs ffmpeg and it is not found', async () => {
    const flac = make('for-missing-ffmpeg.flac', ['-c:a', 'flac']);
    await expectError(decodeAudio(flac, { ffmpegPath: join(dir, 'no-such-ffmpeg') }), 'E_FFMPEG_MISSING', flac);
    const savedPath = process.env.PATH;
    const emptyBin = join(dir, 'empty-bin');
    mkdirSync(emptyBin, { recursive: true });
    process.env.PATH = emptyBin;
    try {
      await expectError(decodeAudio(flac), 'E_FFMPEG_MISSING', flac, 'ffmpeg');
      await expectError(decodeAudio(readFileSync(flac)), 'E_FFMPEG_MISSING', 'buffer', 'WHISPER_TS_FFMPEG');
      // the environment variable names the executable where PATH has none
      process.env.WHISPER_TS_FFMPEG = execFileSync('sh', ['-c', 'command -v ffmpeg'], { env: { PATH: savedPath } }).toString().trim();
      expect(maxAbsDiff(await decodeAudio(flac), jfk)).toBe(0);
    } finally {
      process.env.PATH = savedPath;
      delete process.env.WHISPER_TS_FFMPEG;
    }
  });
});

describe('AbortSignal', () => {
  /** Pids of the live child processes of this process whose command line mentions `needle`. */
  function childrenMentioning(needle: string): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid !== process.pid) continue;
        if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(needle)) pids.push(Number(entry));
      } catch {
        // the process ended while we looked
      }
    }
    return pids;
  }

  it('rejects at once with E_ABORTED when the signal has already fired', async () => {
    await expectError(decodeAudio(JFK, { signal: AbortSignal.abort() }), 'E_ABORTED');
  });

  it.skipIf(!existsSync('/proc/self/stat'))('kills a running ffmpeg and rejects with E_ABORTED', async () => {
    // One hour of A-law silence at 8 kHz: a WAV encoding we hand to ffmpeg, which then needs seconds to decode
    // and resample it, long enough to see its process and abort it.
    const path = join(dir, 'long-alaw.wav');
    writeFileSync(path, buildWav({ tag: 6, rate: 8000, bits: 8, data: new Uint8Array(8000 * 3600).fill(0xd5) }));
    const controller = new AbortController();
    const decoding = decodeAudio(path, { signal: controller.signal });
    let settled = false;
    decoding.then(
      () => (settled = true),
      () => (settled = true),
    );
    let pids: number[] = [];
    while (pids.length === 0 && !settled) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      pids = childrenMentioning('long-alaw.wav');
    }
    expect(pids.length).toBeGreaterThan(0);
    controller.abort();
    await expectError(decoding, 'E_ABORTED', path);
    for (const pid of pids) expect(existsSync(`/proc/${pid}`)).toBe(false);
  });
});
