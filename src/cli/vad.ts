/**
 * `whisper-ts vad <file>`: the speech spans Silero VAD finds in a file, one `start<TAB>end` line (seconds) per span,
 * or JSON with `--json`. Errors are thrown as `WhisperError`s for the main CLI to map to exit codes.
 */
import { Command } from 'commander';
import { decodeAudio } from '../audio/index.js';
import { WhisperError } from '../errors.js';
import { VAD_DEFAULTS, VAD_SAMPLE_RATE, loadVad, spansToSeconds, type VadOptions } from '../vad/index.js';
import { inputPath } from './options.js';

export interface VadIO {
  stdout: NodeJS.WritableStream;
}

/** One flag per VAD option; typed against `VadOptions`, so a new option without a flag fails the type check. */
const FLAGS: { readonly [K in keyof VadOptions]: { flag: string; help: string } } = {
  threshold: { flag: '--threshold <p>', help: `speech probability threshold (default ${VAD_DEFAULTS.threshold})` },
  negThreshold: {
    flag: '--neg-threshold <p>',
    help: 'probability below which speech ends (default: threshold - 0.15, at least 0.01)',
  },
  minSpeechDurationMs: {
    flag: '--min-speech-duration-ms <ms>',
    help: `drop spans shorter than this (default ${VAD_DEFAULTS.minSpeechDurationMs})`,
  },
  maxSpeechDurationS: {
    flag: '--max-speech-duration-s <s>',
    help: 'split spans longer than this (default: no limit)',
  },
  minSilenceDurationMs: {
    flag: '--min-silence-duration-ms <ms>',
    help: `silence that ends a span (default ${VAD_DEFAULTS.minSilenceDurationMs})`,
  },
  speechPadMs: { flag: '--speech-pad-ms <ms>', help: `padding on each side of a span (default ${VAD_DEFAULTS.speechPadMs})` },
};

function parseNumber(flag: string) {
  return (value: string): number => {
    const text = value.trim().toLowerCase();
    const number = text === 'inf' || text === 'infinity' ? Infinity : text === '' ? Number.NaN : Number(text);
    if (Number.isNaN(number)) throw new WhisperError('E_OPTIONS', `${flag} expects a number, got "${value}"`);
    return number;
  };
}

function parseThreads(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) {
    throw new WhisperError('E_OPTIONS', `--threads expects a non-negative integer, got "${value}"`);
  }
  return number;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export function vadCommand(io: Partial<VadIO> = {}): Command {
  const command = new Command('vad')
    .description('print the speech spans Silero VAD (v5) finds in an audio file, in seconds')
    .argument('<file>', 'audio file (WAV natively, anything else through ffmpeg); - reads standard input');
  for (const { flag, help } of Object.values(FLAGS)) {
    command.option(flag, help, parseNumber(flag.split(' ')[0] as string));
  }
  command
    .option('--threads <n>', 'ONNX Runtime threads for the VAD (default 1)', parseThreads)
    .option('--json', 'print JSON: { file, duration, speech, spans: [{ start, end }] }')
    .action(async (file: string, flags: Record<string, unknown>) => {
      const stdout = io.stdout ?? process.stdout;
      const options: Partial<Record<keyof VadOptions, number>> = {};
      for (const key of Object.keys(FLAGS) as (keyof VadOptions)[]) {
        const value = flags[key];
        if (typeof value === 'number') options[key] = value;
      }
      const samples = await decodeAudio(inputPath(file));
      const threads = typeof flags['threads'] === 'number' ? flags['threads'] : undefined;
      const vad = await loadVad(threads === undefined ? {} : { threads });
      let spans;
      try {
        spans = spansToSeconds(await vad.speechTimestamps(samples, options as Partial<VadOptions>));
      } finally {
        await vad.dispose();
      }
      if (flags['json'] === true) {
        const speech = spans.reduce((sum, s) => sum + s.end - s.start, 0);
        const result = {
          file,
          duration: round3(samples.length / VAD_SAMPLE_RATE),
          speech: round3(speech),
          spans: spans.map((s) => ({ start: round3(s.start), end: round3(s.end) })),
        };
        stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        stdout.write(spans.map((s) => `${s.start.toFixed(3)}\t${s.end.toFixed(3)}\n`).join(''));
      }
    });
  return command;
}
