/**
 * `whisper-ts models pull|list|rm|info`: the hub client on the command line. Actions write results to stdout and
 * progress to stderr (a bar on a terminal, plain lines otherwise); errors are thrown as `WhisperError`s for the main
 * CLI to map to exit codes.
 */
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import {
  DTYPES,
  listCachedModels,
  modelInfo,
  pullModel,
  removeCachedModel,
  resolveCacheConfig,
  resolveModelId,
  type CachedModel,
  type Dtype,
  type HubOptions,
  type ModelInfo,
  type PullProgressEvent,
} from '../hub/index.js';

export interface ModelsIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborts a pull or an info request (the main CLI's SIGINT). */
  signal?: AbortSignal;
}

const defaultIO = (): ModelsIO => ({ stdout: process.stdout, stderr: process.stderr });

/** Bytes as the Hub shows them (powers of 1000). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit] ?? 'TB'}`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  if (s < 60) return `${Math.ceil(s)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Transfer rate over the last few seconds. */
class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  add(bytes: number): number {
    const t = Date.now();
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - (this.samples[0]?.t ?? t) > 5000) this.samples.shift();
    const first = this.samples[0];
    if (first === undefined || t - first.t < 200) return 0;
    return ((bytes - first.bytes) * 1000) / (t - first.t);
  }
}

export interface PullReporter {
  onProgress: (event: PullProgressEvent) => void;
  /** Stops the bar (call it on errors too, before printing the message). */
  stop: () => void;
}

/**
 * Progress of a pull on `stream` (stderr): a bar with bytes, speed and ETA on a terminal, a line per file and per
 * 10 % otherwise, nothing with `quiet`. The engine's CLI uses it too, for the pull on first use of a model.
 */
export function createPullReporter(stream: ModelsIO['stderr'], options: { quiet?: boolean } = {}): PullReporter {
  if (options.quiet === true) return { onProgress: () => undefined, stop: () => undefined };
  const tty = stream.isTTY === true;
  const write = (line: string): void => {
    stream.write(`${line}\n`);
  };
  let bar: cliProgress.SingleBar | undefined;
  let total = 0;
  let lastDecile = -1;
  const rate = new RateMeter();
  const stop = (): void => {
    bar?.stop();
    bar = undefined;
  };
  const onProgress = (event: PullProgressEvent): void => {
    switch (event.type) {
      case 'resolved': {
        total = event.downloadBytes;
        const toGet = event.files.filter((f) => !f.cached).length;
        const variant = event.parts ? `${event.parts.encoder} encoder, ${event.parts.decoder} decoder` : event.dtype;
        if (total === 0 && toGet === 0) {
          write(`${event.repo} (${variant}) is already in the cache`);
          return;
        }
        write(
          `Downloading ${event.repo} (${variant}, revision ${event.revision} = ${event.commit.slice(0, 7)}): ` +
            `${toGet} file${toGet === 1 ? '' : 's'}, ${formatBytes(total)} into ${event.cacheDir}`,
        );
        if (tty) {
          bar = new cliProgress.SingleBar(
            {
              stream,
              format: '  {bar} {percentage}% | {done} / {size} | {speed} | ETA {eta_text}',
              hideCursor: true,
              barsize: 28,
              fps: 8,
              clearOnComplete: false,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(Math.max(total, 1), 0, { done: formatBytes(0), size: formatBytes(total), speed: '…', eta_text: '?' });
        }
        return;
      }
      case 'progress': {
        const speed = rate.add(event.bytes);
        const eta = speed > 0 ? (event.totalBytes - event.bytes) / speed : Number.NaN;
        if (bar !== undefined) {
          bar.update(event.bytes, {
            done: formatBytes(event.bytes),
            speed: speed > 0 ? `${formatBytes(speed)}/s` : '…',
            eta_text: formatSeconds(eta),
          });
          return;
        }
        const decile = total > 0 ? Math.floor((event.bytes / total) * 10) : 10;
        if (!tty && decile > lastDecile && decile < 10) {
          lastDecile = decile;
          if (decile > 0) {
            write(
              `  ${decile * 10}% ${formatBytes(event.bytes)} / ${formatBytes(total)}` +
                (speed > 0 ? `, ${formatBytes(speed)}/s, ETA ${formatSeconds(eta)}` : ''),
            );
          }
        }
        return;
      }
      case 'file-done':
        if (!tty && event.downloaded) write(`  got ${event.path} (${formatBytes(event.size)})`);
        return;
      case 'retry': {
        const what = event.path ?? 'the model info';
        const line = `  retry ${event.attempt}/${event.retries} for ${what} in ${(event.delayMs / 1000).toFixed(1)}s: ${event.reason}`;
        if (bar !== undefined) bar.update({ speed: `retry ${event.attempt}/${event.retries}` });
        else write(line);
        return;
      }
      case 'cache-hit':
        write(
          event.reason === 'offline'
            ? `Using ${event.repo} from the cache (offline mode)`
            : `Using ${event.repo} from the cache: the Hub could not be reached (${event.detail ?? 'network error'})`,
        );
        return;
      case 'done':
        stop();
        if (event.downloadedBytes > 0) write(`Done: ${formatBytes(event.downloadedBytes)} downloaded`);
        return;
      case 'waiting':
        if (bar !== undefined) bar.update({ speed: 'waiting for another download' });
        else write(`  waiting: another process is downloading ${event.path} into the same cache`);
        return;
      case 'file-start':
        return;
    }
  };
  return { onProgress, stop };
}

interface CommonFlags {
  endpoint?: string;
  cacheDir?: string;
}

function hubOptions(flags: CommonFlags & { revision?: string; dtype?: string }): HubOptions {
  const options: HubOptions = {};
  if (flags.endpoint !== undefined) options.endpoint = flags.endpoint;
  if (flags.cacheDir !== undefined) options.cacheDir = flags.cacheDir;
  if (flags.revision !== undefined) options.revision = flags.revision;
  if (flags.dtype !== undefined) options.dtype = flags.dtype as Dtype;
  return options;
}

export async function runPull(
  model: string,
  flags: CommonFlags & { revision?: string; dtype?: string; quiet?: boolean },
  io: ModelsIO = defaultIO(),
): Promise<string> {
  const reporter = createPullReporter(io.stderr, { quiet: flags.quiet === true });
  try {
    const options: HubOptions = { ...hubOptions(flags), onProgress: reporter.onProgress };
    if (io.signal !== undefined) options.signal = io.signal;
    const path = await pullModel(model, options);
    io.stdout.write(`${path}\n`);
    return path;
  } finally {
    reporter.stop();
  }
}

function revisionLabel(model: CachedModel): string {
  const labels = model.revisions.map((r) => (r.refs.length > 0 ? r.refs.join(',') : r.commit.slice(0, 7)));
  return labels.length > 0 ? labels.join(' ') : '-';
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

export async function runList(flags: CommonFlags & { json?: boolean }, io: ModelsIO = defaultIO()): Promise<CachedModel[]> {
  const options = hubOptions(flags);
  const models = await listCachedModels(options);
  if (flags.json === true) {
    io.stdout.write(`${JSON.stringify(models, null, 2)}\n`);
    return models;
  }
  const { cacheDir } = resolveCacheConfig(options);
  if (models.length === 0) {
    io.stderr.write(`No models in the cache at ${cacheDir}\n`);
    return models;
  }
  const rows = [['REPO', 'REVISION', 'DTYPES', 'SIZE']];
  for (const m of models) {
    const partial = m.incompleteBytes > 0 ? ` (${formatBytes(m.incompleteBytes)} partial)` : '';
    rows.push([m.repo, revisionLabel(m), m.dtypes.length > 0 ? m.dtypes.join(',') : '-', `${formatBytes(m.sizeOnDisk)}${partial}`]);
  }
  io.stdout.write(table(rows));
  io.stderr.write(`Cache: ${cacheDir}\n`);
  return models;
}

export async function runRemove(model: string, flags: CommonFlags, io: ModelsIO = defaultIO()): Promise<void> {
  const removed = await removeCachedModel(resolveModelId(model), hubOptions(flags));
  io.stdout.write(
    removed.linkTarget !== undefined
      ? `Removed the link ${removed.path} to ${removed.linkTarget} (${removed.repo}); the folder it names is left as it is\n`
      : `Removed ${removed.repo} (${formatBytes(removed.freedBytes)}) from ${removed.path}\n`,
  );
}

export async function runInfo(
  model: string,
  flags: CommonFlags & { revision?: string; json?: boolean },
  io: ModelsIO = defaultIO(),
): Promise<ModelInfo> {
  const options = hubOptions(flags);
  if (io.signal !== undefined) options.signal = io.signal;
  const info = await modelInfo(model, options);
  if (flags.json === true) {
    io.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
    return info;
  }
  const size = (n: number | undefined): string => (n === undefined ? '?' : formatBytes(n));
  let out = `${info.repo} @ ${info.revision} (${info.commit})${info.gated ? ' [gated]' : ''}${info.private ? ' [private]' : ''}\n\n`;
  if (info.dtypes.length === 0) out += 'No Whisper ONNX weights (onnx/encoder_model*.onnx + onnx/decoder_model_merged*.onnx).\n';
  else {
    const rows = [['DTYPE', 'DOWNLOAD', 'ONNX FILES']];
    for (const d of info.dtypes) rows.push([d.dtype, size(d.size), d.files.filter((f) => f.startsWith('onnx/')).join(', ')]);
    out += table(rows);
  }
  out += '\n';
  const rows = [['FILE', 'SIZE']];
  for (const f of info.files) rows.push([f.path, size(f.size)]);
  out += table(rows);
  io.stdout.write(out);
  return info;
}

/** The `models` command with its subcommands, for `program.addCommand(modelsCommand())`. */
export function modelsCommand(io?: ModelsIO): Command {
  const getIO = (): ModelsIO => io ?? defaultIO();
  const models = new Command('models').description('download, list and remove Whisper models (Hugging Face Hub cache)');
  const endpoint = (): Option => new Option('--endpoint <url>', 'Hub or mirror URL (default: $HF_ENDPOINT or https://huggingface.co)');
  const cacheDir = (): Option => new Option('--cache-dir <dir>', 'cache folder (default: $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)');

  models
    .command('pull')
    .description('download a model (tiny, base, small, medium, large-v3, large-v3-turbo, distil-large-v3, *.en, *_timestamped, or org/name)')
    .argument('<model>', 'short name or Hub repo id')
    .addOption(new Option('--dtype <dtype>', 'weight variant').choices(DTYPES).default('q8'))
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .addOption(endpoint())
    .addOption(cacheDir())
    .option('-q, --quiet', 'no progress output')
    .action(async (model: string, flags: CommonFlags & { revision?: string; dtype?: string; quiet?: boolean }) => {
      await runPull(model, flags, getIO());
    });

  models
    .command('list')
    .alias('ls')
    .description('list the models in the cache: repo, revision, dtypes, size on disk')
    .addOption(cacheDir())
    .option('--json', 'print JSON')
    .action(async (flags: CommonFlags & { json?: boolean }) => {
      await runList(flags, getIO());
    });

  models
    .command('rm')
    .alias('remove')
    .description('delete a model from the cache')
    .argument('<model>', 'short name or Hub repo id')
    .addOption(cacheDir())
    .action(async (model: string, flags: CommonFlags) => {
      await runRemove(model, flags, getIO());
    });

  models
    .command('info')
    .description('files, sizes and dtypes of a model on the Hub')
    .argument('<model>', 'short name or Hub repo id')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .addOption(endpoint())
    .option('--json', 'print JSON')
    .action(async (model: string, flags: CommonFlags & { revision?: string; json?: boolean }) => {
      await runInfo(model, flags, getIO());
    });

  return models;
}
