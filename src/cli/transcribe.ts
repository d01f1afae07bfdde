import { mkdir, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { Command, Option } from 'commander';
import {
  OUTPUT_FORMATS,
  formatResult,
  formatTimestamp,
  loadModel,
  resolveLoadOptions,
  resolveTranscribeOptions,
  type OutputFormat,
  type Segment,
  type SubtitleOptions,
  WhisperError,
  type TranscriptionResult,
} from '../index.js';
import { EXIT, describeError } from './exit-codes.js';
import { addOptionFlags, givenOptions } from './options.js';
import { createProgress } from './progress.js';
import { createPullReporter } from './models.js';

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  signal: AbortSignal;
  setExitCode(code: number): void;
}

export function transcribeCommand(io: CliIo): Command {
  const cmd = new Command('transcribe')
    .description('transcribe (or translate) audio and video files')
    .argument('<files...>', 'audio or video files (WAV natively; anything else through ffmpeg)')
    .addOption(
      new Option('-f, --output-format <format>', 'output file format(s)')
        .choices([...OUTPUT_FORMATS, 'all'])
    )
    .option('-o, --output-dir <dir>', 'folder for output files (default: . when --output-format is given)')
    .option('--verbose', 'print each segment with its times as it is decoded (default on a terminal)')
    .option('-q, --quiet', 'no progress and no segments on the terminal')
    // srt/vtt writer options (openai/whisper cli): they need --word-timestamps
    .option('--highlight-words [bool]', 'srt/vtt: one cue per word, the word underlined (needs --word-timestamps)')
    .option('--max-line-width <n>', 'srt/vtt: characters per line before a line break (needs --word-timestamps)')
    .option('--max-line-count <n>', 'srt/vtt: lines per cue, with --max-line-width (needs --word-timestamps)')
    .option('--max-words-per-line <n>', 'srt/vtt: words per cue, without --max-line-width (needs --word-timestamps)')
    .exitOverride()
    .showHelpAfterError();
  addOptionFlags(cmd, 'all');
  cmd.action(async (files: string[], opts: Record<string, unknown>) => {
    io.setExitCode(await runTranscribe(files, opts, io));
  });
  return cmd;
}

async function runTranscribe(files: string[], opts: Record<string, unknown>, io: CliIo): Promise<number> {
  const quiet = opts.quiet === true;
  const verbose = !quiet && (opts.verbose === true || io.stdout.isTTY === true);
  let formats: OutputFormat[] = [];
  const f = opts.outputFormat as string | undefined;
  const outDir = (opts.outputDir as string | undefined) ?? (f !== undefined ? '.' : undefined);
  if (outDir !== undefined) formats = f === undefined ? ['txt'] : f === 'all' ? [...OUTPUT_FORMATS] : [f as OutputFormat];

  let load;
  let call;
  let subtitles: SubtitleOptions;
  try {
    load = resolveLoadOptions(givenOptions(opts, 'load'));
    call = resolveTranscribeOptions(givenOptions(opts, 'call'));
    subtitles = subtitleOptions(opts, call.wordTimestamps);
  } catch (err) {
    io.stderr.write(describeError(err).message + '\n');
    return EXIT.usage;
  }
  let whisper;
  const reporter = createPullReporter(io.stderr, { quiet });
  try {
    const { model, ...rest } = load;
    let announced = false;
    whisper = await loadModel(model, {
      ...rest,
      signal: io.signal,
      onDownload: (event) => {
        // first use of a model name: say that it is being pulled, then show the download
        if (!announced && event.type === 'file-start' && !quiet) {
          announced = true;
          io.stderr.write(`model ${model}: downloading from the Hub into the cache (first use)\n`);
        }
        reporter.onProgress(event);
      },
    });
    reporter.stop();
  } catch (err) {
    reporter.stop();
    const e = describeError(err);
    io.stderr.write(e.message + '\n');
    return e.code === EXIT.partial ? EXIT.model : e.code;
  }
  if (outDir !== undefined) await mkdir(outDir, { recursive: true });
  const failures: string[] = [];
  let optionsError = false;
  try {
    for (const file of files) {
      if (io.signal.aborted) break;
      try {
        if (files.length > 1 && !quiet) io.stderr.write(`${file}\n`);
        let bar: ReturnType<typeof createProgress> | undefined;
        const { info, segments } = await whisper.transcribe(file, call, {
          signal: io.signal,
          onProgress: (p) => {
            bar ??= createProgress(p.total, 's', io.stderr, quiet || verbose);
            bar.update(p.done, basename(file));
          },
        });
        if (verbose && info.languageProbability < 1) {
          io.stderr.write(`detected language: ${info.language} (p = ${info.languageProbability.toFixed(2)})\n`);
        }
        const all: Segment[] = [];
        for await (const s of segments) {
          all.push(s);
          if (verbose) {
            io.stdout.write(`[${formatTimestamp(s.start, '.')} --> ${formatTimestamp(s.end, '.')}] ${s.text.trim()}\n`);
          }
        }
        bar?.stop();
        const result: TranscriptionResult = { info, segments: all, text: all.map((s) => s.text).join('') };
        if (!verbose && !quiet && outDir === undefined) io.stdout.write(result.text.trim() + '\n');
        if (outDir !== undefined) {
          const stem = basename(file, extname(file));
          for (const format of formats) {
            await writeFile(join(outDir, `${stem}.${format}`), formatResult(result, format, subtitles), 'utf8');
          }
        }
      } catch (err) {
        const e = describeError(err);
        if (e.code === EXIT.aborted) throw err;
        if (e.code === EXIT.usage) {
          // options the model cannot serve (e.g. word timestamps without a _timestamped export) fail every file alike
          io.stderr.write(e.message + '\n');
          optionsError = true;
          break;
        }
        failures.push(file);
        io.stderr.write(`${file}: ${e.message}\n`);
      }
    }
  } catch (err) {
    io.stderr.write(describeError(err).message + '\n');
    return EXIT.aborted;
  } finally {
    await whisper.dispose();
  }
  if (optionsError) return EXIT.usage;
  if (failures.length) {
    io.stderr.write(`${failures.length} of ${files.length} file(s) failed: ${failures.join(', ')}\n`);
    return EXIT.partial;
  }
  return EXIT.ok;
}

/** The srt/vtt writer flags, checked as openai/whisper's cli does (each needs word timestamps). */
function subtitleOptions(opts: Record<string, unknown>, wordTimestamps: boolean): SubtitleOptions {
  const out: SubtitleOptions = {};
  const given: string[] = [];
  const h = opts.highlightWords;
  if (h !== undefined && h !== false && h !== 'false' && h !== 'False' && h !== '0') {
    if (h !== true && h !== 'true' && h !== 'True' && h !== '1') {
      throw new WhisperError('E_OPTIONS', `--highlight-words: expected true or false, got ${JSON.stringify(h)}`);
    }
    out.highlightWords = true;
    given.push('--highlight-words');
  }
  for (const [key, flag] of [
    ['maxLineWidth', '--max-line-width'],
    ['maxLineCount', '--max-line-count'],
    ['maxWordsPerLine', '--max-words-per-line'],
  ] as const) {
    const v = opts[key];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new WhisperError('E_OPTIONS', `${flag}: expected a positive integer, got ${String(v)}`);
    out[key] = n;
    given.push(flag);
  }
  if (given.length > 0 && !wordTimestamps) {
    throw new WhisperError('E_OPTIONS', `${given.join(', ')} need(s) --word-timestamps`);
  }
  return out;
}
