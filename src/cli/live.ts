/**
 * `whisper-ts live`: live transcription of the microphone (captured with ffmpeg from ALSA, or arecord), or of a file
 * played through the same path (`--input`, at real speed with `--realtime`, else as fast as the decoder goes). On a
 * terminal the partial text is rewritten in place after the committed text and each utterance ends its line; piped,
 * every final is a line `[start --> end] text`; `--json` writes every event as a JSON line (with `wall`, seconds
 * since the audio started).
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Command, Option } from 'commander';
import {
  SAMPLE_RATE,
  STREAM_DEFAULTS,
  STREAM_OPTION_SPECS,
  WhisperError,
  createStream,
  decodeAudio,
  formatTimestamp,
  loadModel,
  resolveLoadOptions,
  resolveStreamOptions,
  type LiveTranscriber,
  type StreamEvent,
  type StreamSettings,
} from '../index.js';
import type { CliIo } from './transcribe.js';
import { EXIT, describeError } from './exit-codes.js';
import { addOptionFlags, givenOptions } from './options.js';
import { createPullReporter } from './models.js';

/** Audio pushed per chunk when a file is played (100 ms, a typical capture buffer). */
const CHUNK_SECONDS = 0.1;

/** A flag whose value lands under the stream settings' key (`--min-chunk` → minChunkSeconds). */
class KeyedOption extends Option {
  constructor(
    flags: string,
    description: string,
    private readonly key: string,
  ) {
    super(flags, description);
  }
  override attributeName(): string {
    return this.key;
  }
}

export function liveCommand(io: CliIo): Command {
  const cmd = new Command('live')
    .description('transcribe the microphone live (or play a file through the live path with --input)')
    .option('-i, --input <file>', 'play this audio file instead of the microphone')
    .option('--realtime', 'with --input: play the file at real speed (default: as fast as the decoder goes)')
    .addOption(
      new Option('--capture <tool>', 'microphone capture tool (default: ffmpeg if found, else arecord)').choices([
        'ffmpeg',
        'arecord',
      ]),
    )
    .option('--mic <device>', 'ALSA capture device', 'default')
    .option('--json', 'write every event (language, partial, final) as a JSON line')
    .option('-q, --quiet', 'no messages on stderr')
    .exitOverride()
    .showHelpAfterError();
  for (const key of Object.keys(STREAM_OPTION_SPECS) as (keyof StreamSettings)[]) {
    const spec = STREAM_OPTION_SPECS[key];
    cmd.addOption(new KeyedOption(`--${spec.flag} <value>`, `${spec.description} (default: ${STREAM_DEFAULTS[key]})`, key));
  }
  addOptionFlags(cmd, 'all');
  cmd.action(async (opts: Record<string, unknown>) => {
    io.setExitCode(await runLive(opts, io));
  });
  return cmd;
}

async function runLive(opts: Record<string, unknown>, io: CliIo): Promise<number> {
  const quiet = opts.quiet === true;
  const input = opts.input as string | undefined;
  if (opts.realtime === true && input === undefined) {
    io.stderr.write('error: --realtime plays a file: give it with --input\n');
    return EXIT.usage;
  }
  let load;
  let streamOptions: Record<string, unknown>;
  try {
    load = resolveLoadOptions(givenOptions(opts, 'load'));
    streamOptions = givenOptions(opts, 'call');
    for (const key of Object.keys(STREAM_OPTION_SPECS)) if (opts[key] !== undefined) streamOptions[key] = opts[key];
    resolveStreamOptions(streamOptions);
  } catch (err) {
    io.stderr.write(describeError(err).message + '\n');
    return EXIT.usage;
  }

  let whisper;
  const reporter = createPullReporter(io.stderr, { quiet });
  try {
    const { model, ...rest } = load;
    whisper = await loadModel(model, { ...rest, signal: io.signal, onDownload: (e) => reporter.onProgress(e) });
    reporter.stop();
  } catch (err) {
    reporter.stop();
    const e = describeError(err);
    io.stderr.write(e.message + '\n');
    return e.code === EXIT.partial ? EXIT.model : e.code;
  }

  const view = createView(io, opts.json === true);
  let capture: ChildProcess | undefined;
  try {
    const stream = await createStream(whisper, streamOptions, { signal: io.signal });
    const started = performance.now();
    stream.on((e) => view.event(e, (performance.now() - started) / 1000));
    if (input !== undefined) {
      const audio = await decodeAudio(input, { signal: io.signal });
      await playFile(stream, audio, opts.realtime === true, started, io.signal);
    } else {
      if (!quiet) io.stderr.write('listening (Ctrl-C to stop)\n');
      capture = startCapture(opts.capture as string | undefined, opts.mic as string);
      await pipeCapture(capture, stream, io.signal);
    }
    if (!stream.closed) await stream.end();
    else await stream.end().catch(() => undefined);
    view.close();
    if (!quiet) {
      const s = stream.stats;
      io.stderr.write(
        `${s.received.toFixed(1)} s of audio, ${s.finals} finals, ${s.steps} decoding steps ` +
          `(${s.steps > 0 ? (s.stepSeconds / s.steps).toFixed(2) : '0'} s each)\n`,
      );
    }
    // Ctrl-C is how a microphone session ends; a file cut short was interrupted
    return io.signal.aborted && input !== undefined ? EXIT.aborted : EXIT.ok;
  } catch (err) {
    view.close();
    const e = describeError(err);
    io.stderr.write(e.message + '\n');
    return e.code;
  } finally {
    if (capture && capture.exitCode === null) capture.kill('SIGTERM');
    await whisper.dispose();
  }
}

/** Pushes a file in 100-ms chunks: paced by the clock with `realtime`, else each chunk once the last one is done. */
async function playFile(
  stream: LiveTranscriber,
  audio: Float32Array,
  realtime: boolean,
  started: number,
  signal: AbortSignal,
): Promise<void> {
  const step = Math.round(CHUNK_SECONDS * SAMPLE_RATE);
  for (let i = 0; i < audio.length && !signal.aborted && !stream.closed; i += step) {
    if (realtime) {
      // the chunk [i, i + step) has been "recorded" once its end time has passed
      const due = started + ((i + step) / SAMPLE_RATE) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      stream.push(audio.subarray(i, i + step));
    } else {
      stream.push(audio.subarray(i, i + step));
      await stream.drain();
    }
  }
}

function startCapture(tool: string | undefined, device: string): ChildProcess {
  const ffmpeg = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-f', 'alsa', '-i', device, '-ac', '1', '-ar', '16000', '-f', 'f32le', '-'];
  const arecord = ['-q', '-D', device, '-f', 'FLOAT_LE', '-c', '1', '-r', '16000', '-t', 'raw'];
  const chosen = tool ?? (onPath('ffmpeg') || !onPath('arecord') ? 'ffmpeg' : 'arecord');
  const child = spawn(chosen, chosen === 'ffmpeg' ? ffmpeg : arecord, { stdio: ['ignore', 'pipe', 'pipe'] });
  return child;
}

/** Whether an executable of this name is on PATH. */
function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    if (dir === '') return false;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Feeds the capture's raw float32 samples to the stream until it stops or the signal fires. */
function pipeCapture(child: ChildProcess, stream: LiveTranscriber, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let rest = Buffer.alloc(0);
    let stderr = '';
    const stop = (): void => {
      child.kill('SIGTERM');
    };
    signal.addEventListener('abort', stop, { once: true });
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4096);
    });
    child.stdout?.on('data', (d: Buffer) => {
      const bytes = rest.length ? Buffer.concat([rest, d]) : d;
      const usable = bytes.length - (bytes.length % 4);
      rest = Buffer.from(bytes.subarray(usable));
      if (usable === 0 || stream.closed) return;
      const samples = new Float32Array(usable / 4);
      for (let i = 0; i < samples.length; i++) samples[i] = bytes.readFloatLE(i * 4);
      stream.push(samples);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', stop);
      const name = child.spawnfile;
      reject(
        err.code === 'ENOENT'
          ? new WhisperError(name === 'ffmpeg' ? 'E_FFMPEG_MISSING' : 'E_IO', `${name} is not installed (needed to capture the microphone; try --capture ${name === 'ffmpeg' ? 'arecord' : 'ffmpeg'})`)
          : new WhisperError('E_IO', `cannot start ${name}: ${err.message}`, { cause: err }),
      );
    });
    child.on('close', (code) => {
      signal.removeEventListener('abort', stop);
      if (signal.aborted || code === 0) resolve();
      else reject(new WhisperError('E_IO', `${child.spawnfile} stopped capturing (exit code ${code}): ${stderr.trim()}`));
    });
  });
}

interface View {
  event(e: StreamEvent, wall: number): void;
  close(): void;
}

function createView(io: CliIo, json: boolean): View {
  const out = io.stdout;
  if (json) {
    return {
      event: (e, wall) => out.write(JSON.stringify({ ...e, wall: Math.round(wall * 1000) / 1000 }) + '\n'),
      close: () => undefined,
    };
  }
  if (out.isTTY !== true) {
    return {
      event: (e) => {
        if (e.type === 'final') out.write(`[${formatTimestamp(e.start, '.')} --> ${formatTimestamp(e.end, '.')}]${e.text}\n`);
      },
      close: () => undefined,
    };
  }
  // a terminal: the current line is the committed text of the utterance plus the partial (dim), rewritten in place
  let committed = '';
  let partial = '';
  const draw = (): void => {
    const width = Math.max(20, (out.columns || 80) - 1);
    const shown = (committed + partial).trimStart();
    const tail = shown.length > width ? '…' + shown.slice(shown.length - width + 1) : shown;
    const cut = Math.max(0, tail.length - Math.min(partial.length, shown.length));
    out.write(`\r\x1b[K${tail.slice(0, cut)}\x1b[2m${tail.slice(cut)}\x1b[22m`);
  };
  return {
    event: (e) => {
      if (e.type === 'partial') partial = e.text;
      if (e.type === 'final') {
        committed += e.text;
        partial = '';
        if (e.reason !== 'agreement' || /[.?!]["')\]]*$/.test(e.text)) {
          out.write(`\r\x1b[K${committed.trim()}\n`);
          committed = '';
          return;
        }
      }
      draw();
    },
    close: () => {
      if (committed !== '' || partial !== '') out.write(`\r\x1b[K${(committed + partial).trim()}\n`);
    },
  };
}
