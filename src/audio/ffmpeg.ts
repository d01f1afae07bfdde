import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { WhisperError } from '../errors.js';
import { SAMPLE_RATE } from './constants.js';

export interface FfmpegOptions {
  signal?: AbortSignal | undefined;
  ffmpegPath?: string | undefined;
  /** Decode at most this many seconds (`-t` on the output). */
  maxSeconds?: number | undefined;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/** Keep at most this much of ffmpeg's stderr (its tail) for error messages. */
const STDERR_LIMIT = 16 * 1024;

/**
 * Decodes any format ffmpeg reads into mono 16 kHz float32 samples, exactly as openai/whisper audio.py `load_audio`
 * does: `ffmpeg -nostdin -threads 0 -i <in> -f s16le -ac 1 -acodec pcm_s16le -ar 16000 -`, int16 / 32768. We add
 * only `-hide_banner -loglevel error`, which change what ffmpeg prints, not what it decodes, so that its stderr is
 * the error itself.
 *
 * A path is given to ffmpeg as is. Bytes are written to a private temporary file first and only piped to ffmpeg's
 * stdin when no temporary file can be written: ffmpeg cannot seek in a pipe, and that changes the result for common
 * files — mp4/m4a/mov with their index at the end fail to open, and mp3's gapless (LAME/Xing) trimming is skipped,
 * adding ~300 samples — while a temp file gives exactly the samples the same file gives by path.
 */
export async function decodeWithFfmpeg(
  input: { path: string } | { bytes: Uint8Array },
  label: string,
  options: FfmpegOptions = {},
): Promise<Float32Array> {
  if ('path' in input) return runFfmpeg(input.path, undefined, label, options);
  let dir: string | undefined;
  try {
    dir = await mkdtemp(join(tmpdir(), 'whisper-ts-audio-'));
    const path = join(dir, 'input');
    await writeFile(path, input.bytes);
    // ffmpeg's messages name the private temporary file as "the input", not by its path
    return await runFfmpeg(path, undefined, label, options, 'the input');
  } catch (err) {
    if (err instanceof WhisperError) throw err;
    // No usable temp dir (read-only or full file system): fall back to the pipe.
    return await runFfmpeg('pipe:0', input.bytes, label, options);
  } finally {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
}

function runFfmpeg(
  source: string,
  stdin: Uint8Array | undefined,
  label: string,
  { signal, ffmpegPath = 'ffmpeg', maxSeconds }: FfmpegOptions,
  shownAs = source,
): Promise<Float32Array> {
  if (signal?.aborted) {
    return Promise.reject(new WhisperError('E_ABORTED', `decoding ${label} was aborted`, { cause: signal.reason }));
  }
  // 'file:' keeps a path that starts with '-' from being read as an option, and one with ':' as a protocol.
  const inputArg = stdin === undefined ? `file:${source}` : source;
  const args = [
    '-hide_banner', '-loglevel', 'error',
    '-nostdin', '-threads', '0', '-i', inputArg,
    ...(maxSeconds !== undefined ? ['-t', String(maxSeconds)] : []),
    '-f', 's16le', '-ac', '1', '-acodec', 'pcm_s16le', '-ar', String(SAMPLE_RATE), '-',
  ];

  return new Promise<Float32Array>((resolve, reject) => {
    const child = spawn(ffmpegPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let settled = false;
    let aborted = false;

    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = (): void => {
      aborted = true;
      child.kill('SIGKILL');
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      stdoutBytes += chunk.length;
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      stderr = (stderr + text).slice(-STDERR_LIMIT);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      finish(() => {
        if (err.code === 'ENOENT' || err.code === 'EACCES') {
          reject(
            new WhisperError(
              'E_FFMPEG_MISSING',
              `decoding ${label} needs ffmpeg, which was not found ('${ffmpegPath}' is not an executable` +
                `${ffmpegPath.includes('/') || ffmpegPath.includes('\\') ? '' : ' on PATH'}); ` +
                'install ffmpeg, or point WHISPER_TS_FFMPEG (or the ffmpegPath option) at it',
              { cause: err },
            ),
          );
        } else {
          const why = `cannot run ffmpeg to decode ${label}: ${err.message}`;
          reject(new WhisperError('E_AUDIO_DECODE', why, { cause: err }));
        }
      });
    });
    child.on('close', (code, sig) => {
      finish(() => {
        if (aborted) {
          reject(new WhisperError('E_ABORTED', `decoding ${label} was aborted`, { cause: signal?.reason }));
          return;
        }
        if (code !== 0) {
          // a file without an audio track (a silent video, an image): ffmpeg has no stream to map into its output
          if (/does not contain any stream|matches no streams/.test(stderr)) {
            reject(new WhisperError('E_AUDIO_DECODE', `cannot decode ${label}: it has no audio stream`));
            return;
          }
          const why = summarise(stderr).split(inputArg).join(shownAs) || (sig ? `killed by ${sig}` : `exit code ${code}`);
          reject(new WhisperError('E_AUDIO_DECODE', `cannot decode ${label}: ffmpeg failed: ${why}`));
          return;
        }
        const pcm = Buffer.concat(chunks, stdoutBytes);
        const n = pcm.length >> 1;
        if (n === 0) {
          reject(new WhisperError('E_AUDIO_DECODE', `cannot decode ${label}: it contains no audio samples`));
          return;
        }
        const samples = new Float32Array(n);
        if (LITTLE_ENDIAN && pcm.byteOffset % 2 === 0) {
          const s16 = new Int16Array(pcm.buffer, pcm.byteOffset, n);
          for (let i = 0; i < n; i++) samples[i] = (s16[i] as number) / 32768;
        } else {
          for (let i = 0; i < n; i++) samples[i] = pcm.readInt16LE(2 * i) / 32768;
        }
        resolve(samples);
      });
    });

    // ffmpeg may stop reading early (bad data, abort): EPIPE on its stdin is expected then; the exit code tells.
    child.stdin.on('error', () => undefined);
    if (stdin === undefined) child.stdin.end();
    else child.stdin.end(stdin);
  });
}

/** The last few distinct lines of ffmpeg's stderr, joined on one line. */
function summarise(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !/^Last message repeated/.test(l));
  const unique = [...new Set(lines)].slice(-3);
  const text = unique.join(' | ');
  return text.length > 500 ? `${text.slice(0, 497)}...` : text;
}
