/**
 * `whisper-ts bench [models...]`: the guide's hardware table on this machine. For each model (named, or every Whisper
 * model in the HF cache) it transcribes a standard clip set in a process of its own (so peak RSS is that model's) and
 * prints model, dtype, device, seconds of compute per minute of audio, real-time factor, peak RSS, encoder ms per
 * window and decoder ms per token; `--json` prints the rows as JSON.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import {
  ACTIVATIONS,
  OPTION_SPECS,
  WhisperError,
  decodeAudio,
  listCachedModels,
  loadModel,
  type Activations,
  type Device,
  type Dtype,
} from '../index.js';
import { EXIT, describeError } from './exit-codes.js';
import type { CliIo } from './transcribe.js';

export interface BenchRow {
  model: string;
  dtype: string;
  /** How 8-bit weights computed (load option `activations`, `auto` decided); `float32` for float files. */
  activations: Activations;
  device: string;
  threads: number;
  batchSize: number;
  clips: number;
  audioSeconds: number;
  /** Wall-clock seconds of transcription (decoded audio in memory; model load not counted). */
  seconds: number;
  /** CPU seconds of the process during transcription (all threads). */
  cpuSeconds: number;
  /** Seconds of compute (wall clock) per minute of audio. */
  secondsPerAudioMinute: number;
  realTimeFactor: number;
  peakRssMb: number;
  loadSeconds: number;
  encoderMsPerWindow: number;
  decoderMsPerToken: number;
}

const AUDIO_EXTENSIONS = new Set(['.wav', '.flac', '.mp3', '.ogg', '.opus', '.m4a', '.mp4', '.webm', '.aac', '.mkv']);

/**
 * The standard clip set: $WHISPER_TS_BENCH_CLIPS (files or folders, separated by the path delimiter), else, in a
 * checkout beside the shared evaluation audio, jfk.wav (11 s) and longform_en (4.85 min of read speech).
 */
export function standardClips(): string[] {
  const env = process.env.WHISPER_TS_BENCH_CLIPS;
  if (env) return env.split(process.platform === 'win32' ? ';' : ':').filter(Boolean);
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const shared = process.env.WHISPER_TS_SHARED ?? resolve(root, '../shared');
  const clips = [join(shared, 'eval', 'jfk', 'jfk.wav'), join(shared, 'eval', 'longform_en', 'librispeech_test_other_3ch_concat.flac')];
  return clips.filter((c) => existsSync(c));
}

function expandClips(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (existsSync(p) && statSync(p).isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        if (AUDIO_EXTENSIONS.has(extname(name).toLowerCase())) out.push(join(p, name));
      }
    } else out.push(p);
  }
  return out;
}

function positiveInt(flag: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new WhisperError('E_OPTIONS', `${flag} expects an integer ≥ ${min}, got "${value}"`);
    return n;
  };
}

interface BenchOptions {
  clips?: string[];
  threads: number;
  device: string;
  dtype?: string;
  activations?: string;
  batchSize: number;
  language?: string;
  json?: boolean;
  one?: boolean;
}

/** Runs one model in this process and returns its row (the child side of `bench`). */
async function benchOne(model: string, clips: string[], o: BenchOptions): Promise<BenchRow> {
  const audio: Float32Array[] = [];
  for (const clip of clips) audio.push(await decodeAudio(clip));
  const t0 = performance.now();
  const whisper = await loadModel(model, {
    threads: o.threads,
    device: o.device as Device,
    ...(o.dtype ? { dtype: o.dtype as Dtype } : {}),
    ...(o.activations ? { activations: o.activations as Activations } : {}),
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    const first = audio[0] as Float32Array;
    const profile = await whisper.profile(first);
    const options = { batchSize: o.batchSize, ...(o.language ? { language: o.language } : {}) };
    await whisper.transcribeAll(first.subarray(0, Math.min(first.length, 16000 * 5)), options); // warm-up
    const cpu0 = process.cpuUsage();
    const t1 = performance.now();
    for (const samples of audio) await whisper.transcribeAll(samples, options);
    const seconds = (performance.now() - t1) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const audioSeconds = audio.reduce((n, a) => n + a.length / 16000, 0);
    const { encoder, decoder } = whisper.dtypes;
    return {
      model,
      dtype: encoder === decoder ? encoder : `${encoder}/${decoder}`,
      activations: whisper.activations,
      device: o.device,
      threads: o.threads,
      batchSize: o.batchSize,
      clips: clips.length,
      audioSeconds,
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      secondsPerAudioMinute: seconds / (audioSeconds / 60),
      realTimeFactor: audioSeconds / seconds,
      peakRssMb: process.resourceUsage().maxRSS / 1024,
      loadSeconds,
      encoderMsPerWindow: profile.encoderMsPerWindow,
      decoderMsPerToken: profile.decoderMsPerToken,
    };
  } finally {
    await whisper.dispose();
  }
}

/** A model whose child run failed: its own message and exit code (3 for a model that cannot load …). */
class ChildFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Runs `bench --one <model>` in a child process of this CLI and parses its JSON row. */
function benchChild(model: string, args: string[], signal: AbortSignal): Promise<BenchRow> {
  return new Promise((resolvePromise, reject) => {
    const entry = process.argv[1] ?? fileURLToPath(new URL('../../bin/whisper-ts.js', import.meta.url));
    const child = spawn(process.execPath, [entry, 'bench', model, '--one', '--json', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      signal,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        // the child's own last line already names the error and its code
        reject(new ChildFailure(`${model}: ${err.trim().split('\n').pop() || `exit code ${String(code)}`}`, code ?? EXIT.partial));
        return;
      }
      try {
        resolvePromise((JSON.parse(out) as BenchRow[])[0] as BenchRow);
      } catch (cause) {
        reject(new ChildFailure(`${model}: unreadable result (${String(cause)})`, EXIT.partial));
      }
    });
  });
}

function table(rows: BenchRow[]): string {
  const head = ['model', 'dtype', 'activations', 'device', 'threads', 'batch', 'audio s', 's / audio min', 'real time ×', 'peak RSS MB', 'encoder ms/window', 'decoder ms/token'];
  const body = rows.map((r) => [
    r.model,
    r.dtype,
    r.activations,
    r.device,
    String(r.threads),
    String(r.batchSize),
    r.audioSeconds.toFixed(1),
    r.secondsPerAudioMinute.toFixed(2),
    r.realTimeFactor.toFixed(1),
    r.peakRssMb.toFixed(0),
    r.encoderMsPerWindow.toFixed(0),
    r.decoderMsPerToken.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join(' | ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...body.map(line)].join('\n') + '\n';
}

export function benchCommand(io: CliIo): Command {
  return new Command('bench')
    .description('transcribe a standard clip set with each model and print the hardware table (speed, memory)')
    .argument('[models...]', 'model folders, size names or Hub repo ids (default: every Whisper model in the HF cache)')
    .option('--clips <paths...>', 'audio files or folders to transcribe (default: $WHISPER_TS_BENCH_CLIPS, else jfk + longform_en of the shared eval set)')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (0: automatic)', positiveInt('--threads'), 0)
    .option('--device <device>', 'execution provider (cpu, cuda)', 'cpu')
    .option('--dtype <dtype>', 'weights variant (default: best present)')
    .addOption(new Option('--activations <a>', OPTION_SPECS.activations.description).choices(ACTIVATIONS))
    .option('--batch-size <n>', 'transcribe with the batched pipeline (> 1)', positiveInt('--batch-size', 1), 1)
    .option('--language <code>', 'spoken language of the clips (default: detect)')
    .option('--json', 'print the rows as JSON')
    .addOption(new Option('--one', 'run the (single) model in this process').hideHelp())
    .exitOverride()
    .action(async (models: string[], opts: BenchOptions) => {
      io.setExitCode(await runBench(models, opts, io));
    });
}

async function runBench(models: string[], o: BenchOptions, io: CliIo): Promise<number> {
  const clips = expandClips(o.clips ?? standardClips());
  if (clips.length === 0) {
    io.stderr.write('error: no clips: give --clips <files or folders> (or set WHISPER_TS_BENCH_CLIPS)\n');
    return EXIT.usage;
  }
  try {
    if (o.one) {
      const row = await benchOne(models[0] ?? 'base', clips, o);
      io.stdout.write(JSON.stringify([row]) + '\n');
      return EXIT.ok;
    }
    let names = models;
    if (names.length === 0) {
      names = (await listCachedModels()).map((m) => m.repo).filter((repo) => /whisper/i.test(repo));
      if (names.length === 0) {
        io.stderr.write('error: no models given and no Whisper model in the HF cache (whisper-ts models pull base)\n');
        return EXIT.usage;
      }
    }
    const args = ['--clips', ...clips, '--threads', String(o.threads), '--device', o.device, '--batch-size', String(o.batchSize)];
    if (o.dtype) args.push('--dtype', o.dtype);
    if (o.activations) args.push('--activations', o.activations);
    if (o.language) args.push('--language', o.language);
    const rows: BenchRow[] = [];
    const failures: number[] = [];
    for (const name of names) {
      if (!o.json) io.stderr.write(`bench: ${name} on ${clips.length} clip(s)…\n`);
      try {
        rows.push(await benchChild(name, args, io.signal));
      } catch (err) {
        if (!(err instanceof ChildFailure)) throw err;
        failures.push(err.exitCode);
        io.stderr.write(err.message + '\n');
      }
    }
    if (o.json) io.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    else if (rows.length > 0) io.stdout.write(table(rows));
    if (failures.length === 0) return EXIT.ok;
    // every model failed alike (a missing model: 3): that code; otherwise some rows stand: partial
    const first = failures[0] as number;
    return rows.length === 0 && failures.every((c) => c === first) ? first : EXIT.partial;
  } catch (err) {
    const e = describeError(err);
    io.stderr.write(e.message + '\n');
    return e.code;
  }
}
