import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  OUTPUT_FORMATS,
  formatResult,
  formatTimestamp,
  loadModel,
  resolveLoadOptions,
  resolveTranscribeOptions,
  type OutputFormat,
  type SubtitleOptions,
  type ManySummary,
  WhisperError,
} from '../index.js';
import { EXIT, describeError } from './exit-codes.js';
import { addOptionFlags, givenOptions, inputPath } from './options.js';
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
    .argument('<files...>', 'audio or video files (WAV natively; anything else through ffmpeg); - reads standard input')
    .addOption(
      new Option('-f, --output-format <format>', 'output file format(s) (default: txt with --output-dir; without either flag the text goes to stdout)')
        .choices([...OUTPUT_FORMATS, 'all'])
    )
    .option('-o, --output-dir <dir>', 'folder for output files (default: . when --output-format is given)')
    .option('--verbose', 'print each segment with its times as it is decoded (default on a terminal)')
    .option('-q, --quiet', 'no progress, no segments and no summary on the terminal (the text still goes to stdout without --output-dir)')
    .option('--skip-existing', 'leave inputs whose output files all exist alone (resume a batch run)')
    // srt/vtt writer options (openai/whisper cli): they need --word-timestamps
    .option('--highlight-words [bool]', 'srt/vtt: one cue per word, the word underlined (needs --word-timestamps)')
    .option('--max-line-width <n>', 'srt/vtt: characters per line before a line break (needs --word-timestamps)')
    .option('--max-line-count <n>', 'srt/vtt: lines per cue, with --max-line-width (needs --word-timestamps)')
    .option('--max-words-per-line <n>', 'srt/vtt: words per cue, without --max-line-width (needs --word-timestamps)')
    .exitOverride()
    .showHelpAfterError();
  addOptionFlags(cmd, 'all');
  cmd.action(async (files: string[], opts: Record<string, unknown>) => {
    io.setExitCode(await runTranscribe(files.map(inputPath), opts, io));
  });
  return cmd;
}

async function runTranscribe(files: string[], opts: Record<string, unknown>, io: CliIo): Promise<number> {
  const quiet = opts.quiet === true;
  if (quiet && opts.verbose === true) {
    io.stderr.write('error: --quiet and --verbose contradict each other; give one\n');
    return EXIT.usage;
  }
  const verbose = !quiet && (opts.verbose === true || io.stdout.isTTY === true);
  // standard input can be read once: a second `-` would race the first for the same bytes
  if (files.filter((file) => file === '/dev/stdin' || file === '-').length > 1) {
    io.stderr.write('error: standard input (-) is given more than once; it can be read only once\n');
    return EXIT.usage;
  }
  let formats: OutputFormat[] = [];
  const f = opts.outputFormat as string | undefined;
  const outDir = (opts.outputDir as string | undefined) ?? (f !== undefined ? '.' : undefined);
  if (outDir !== undefined) formats = f === undefined ? ['txt'] : f === 'all' ? [...OUTPUT_FORMATS] : [f as OutputFormat];

  let load;
  let call;
  let subtitles: SubtitleOptions;
  try {
    load = resolveLoadOptions(givenOptions(opts, 'load'));
    const given = givenOptions(opts, 'call');
    call = resolveTranscribeOptions(given);
    subtitles = subtitleOptions(opts, call.wordTimestamps);
    // the VAD runs with --vad-filter or a batch size over 1; its flags alone would change nothing
    if (given.vadOptions !== undefined && !call.vadFilter && call.batchSize === 1) {
      throw new WhisperError('E_OPTIONS', 'the --vad-* flags need --vad-filter (or --batch-size > 1, which runs the VAD)');
    }
  } catch (err) {
    io.stderr.write(describeError(err).message + '\n');
    return EXIT.usage;
  }
  // --skip-existing: an input whose every output file exists is left alone (nothing is decoded, nor the model loaded
  // when nothing is left)
  const skipExisting = opts.skipExisting === true;
  if (skipExisting && outDir === undefined) {
    io.stderr.write('error: --skip-existing needs --output-dir or --output-format (it looks for the output files)\n');
    return EXIT.usage;
  }
  if (outDir !== undefined) {
    // checked before the model loads: a folder, or a path where one can be made
    let isDir: boolean | undefined;
    try {
      isDir = statSync(outDir).isDirectory();
    } catch {
      isDir = undefined; // does not exist yet: made below (mkdir reports a parent that is a file)
    }
    if (isDir === false) {
      io.stderr.write(`error: --output-dir ${outDir} is a file, not a folder\n`);
      return EXIT.usage;
    }
    // two inputs with the same name (a/x.wav and b/x.wav, or x.wav and x.mp3) would write the same output files
    const byOutput = new Map<string, string>();
    for (const file of files) {
      const stem = resolve(outDir, basename(file, extname(file)));
      const other = byOutput.get(stem);
      if (other !== undefined && resolve(other) !== resolve(file)) {
        io.stderr.write(
          `error: ${other} and ${file} would both write ${join(outDir, basename(file, extname(file)))}.* in ${outDir}; ` +
            'transcribe them in separate runs with different --output-dir\n',
        );
        return EXIT.usage;
      }
      byOutput.set(stem, file);
    }
  }
  const skipped: string[] = [];
  const todo: string[] = [];
  for (const file of files) {
    const outputs = formats.map((format) => join(outDir ?? '.', `${basename(file, extname(file))}.${format}`));
    if (skipExisting && outputs.every((path) => existsSync(path))) skipped.push(file);
    else todo.push(file);
  }
  if (todo.length === 0) {
    if (!quiet) io.stderr.write(`all ${files.length} file(s) already transcribed (--skip-existing): nothing to do\n`);
    return EXIT.ok;
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
  if (outDir !== undefined) {
    try {
      await mkdir(outDir, { recursive: true });
    } catch (err) {
      await whisper.dispose();
      io.stderr.write(`error: cannot make --output-dir ${outDir}: ${err instanceof Error ? err.message : String(err)}\n`);
      return EXIT.usage;
    }
  }
  const outputsOf = (file: string): string[] =>
    outDir === undefined ? [] : formats.map((format) => join(outDir, `${basename(file, extname(file))}.${format}`));
  const many = todo.length > 1;
  const failures: string[] = [];
  const reasons: string[] = [];
  let optionsError = false;
  // one overall bar (in files) for many inputs; a bar in seconds of audio for one
  const overall = many ? createProgress(todo.length, 'files', io.stderr, quiet || verbose) : undefined;
  let single: ReturnType<typeof createProgress> | undefined;
  let headerFor = -1;
  let summary: ManySummary | undefined;
  try {
    summary = await whisper.transcribeMany(todo, call, {
      signal: io.signal,
      onProgress: (p) => {
        const label = basename(todo[p.index] ?? '');
        if (overall) overall.update(p.filesDone + (p.total > 0 ? Math.min(1, p.done / p.total) : 0), label);
        else (single ??= createProgress(p.total, 's', io.stderr, quiet || verbose)).update(p.done, label);
      },
      onSegment: (index, s, info) => {
        if (!verbose) return;
        if (headerFor !== index) {
          headerFor = index;
          // on stdout, where the segment lines go: with several files they must say whose they are
          if (many) io.stdout.write(`==> ${todo[index] ?? ''} <==\n`);
          if (info.languageProbability < 1) {
            io.stderr.write(`detected language: ${info.language} (p = ${info.languageProbability.toFixed(2)})\n`);
          }
        }
        io.stdout.write(`[${formatTimestamp(s.start, '.')} --> ${formatTimestamp(s.end, '.')}] ${s.text.trim()}\n`);
      },
      onFile: async ({ index, input: file, result, error }) => {
        if (error || !result) {
          const e = describeError(error);
          failures.push(file);
          reasons.push(`${file}: ${e.message}`);
          io.stderr.write(`${file}: ${e.message}\n`);
          return;
        }
        if (!verbose && outDir === undefined) io.stdout.write((many ? `${file}: ` : '') + result.text.trim() + '\n');
        const paths = outputsOf(file);
        let at = 0;
        try {
          for (; at < paths.length; at++) {
            await writeAtomic(paths[at] as string, formatResult(result, formats[at] as OutputFormat, subtitles));
          }
        } catch (err) {
          // an output that cannot be written fails its input, not the inputs after it; the message names the file
          // that failed and the ones left unwritten after it, not those already written
          const rest = paths.slice(at + 1);
          const why =
            `cannot write ${paths[at] ?? ''}: ${err instanceof Error ? err.message : String(err)}` +
            (rest.length > 0 ? ` (not written either: ${rest.join(', ')})` : '');
          failures.push(file);
          reasons.push(`${file}: ${why}`);
          io.stderr.write(`${file}: ${why}\n`);
        }
        if (index === todo.length - 1) single?.stop();
      },
    });
  } catch (err) {
    const e = describeError(err);
    if (e.code === EXIT.usage) {
      // options the model cannot serve (e.g. word timestamps without a _timestamped export) fail every file alike
      io.stderr.write(e.message + '\n');
      optionsError = true;
    } else {
      overall?.stop();
      single?.stop();
      io.stderr.write(e.message + '\n');
      return e.code === EXIT.partial ? EXIT.partial : EXIT.aborted;
    }
  } finally {
    overall?.stop();
    single?.stop();
    await whisper.dispose();
  }
  if (optionsError) return EXIT.usage;
  if (summary && (many || skipped.length > 0) && !quiet) {
    const hours = summary.audioSeconds / 3600;
    io.stderr.write(
      // failures: the engine's, and outputs that could not be written
      `done: ${files.length} file(s): ${todo.length - failures.length} transcribed, ${failures.length} failed` +
        (skipped.length > 0 ? `, ${skipped.length} skipped (outputs exist)` : '') +
        `; ${hours.toFixed(3)} h of audio in ${summary.seconds.toFixed(1)} s ` +
        `(${summary.realTimeFactor.toFixed(1)}× real time)\n`,
    );
    for (const reason of reasons) io.stderr.write(`  failed: ${reason}\n`);
  }
  if (failures.length) {
    io.stderr.write(`${failures.length} of ${files.length} file(s) failed: ${failures.join(', ')}\n`);
    return EXIT.partial;
  }
  return EXIT.ok;
}

/** Writes a file whole or not at all (a temporary file renamed into place), so --skip-existing never sees half. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, text, 'utf8');
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
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
