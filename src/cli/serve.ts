import { Command, InvalidArgumentError } from 'commander';
import { WhisperError, resolveLoadOptions, resolveTranscribeOptions, type TranscribeOptions } from '../index.js';
import { SERVER_DEFAULTS, startServer, threadsPerWorker } from '../server/index.js';
import { EXIT, describeError } from './exit-codes.js';
import { createPullReporter } from './models.js';
import { addOptionFlags, givenOptions } from './options.js';
import type { CliIo } from './transcribe.js';

function integer(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}, not "${value}"`);
    return n;
  };
}

function positive(): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a number > 0, not "${value}"`);
    return n;
  };
}

/**
 * `whisper-ts serve`: the OpenAI-compatible HTTP server. The model's load flags (--model, --threads, --dtype …) and
 * every transcription flag come from the shared options table; transcription flags become the server's defaults,
 * which a request's fields override.
 */
export function serveCommand(io: CliIo): Command {
  const cmd = new Command('serve')
    .description('serve the OpenAI audio API (/v1/audio/transcriptions, /translations), metrics and a web page')
    .option('--host <host>', 'address to listen on', SERVER_DEFAULTS.host)
    .option('--port <port>', 'port to listen on (0: any free port)', integer(0), SERVER_DEFAULTS.port)
    .option('--concurrency <n>', 'inference worker threads, each with its own copy of the model', integer(1), SERVER_DEFAULTS.concurrency)
    .option(
      '--jobs-per-worker <n>',
      'jobs each worker runs at once; above 1 their greedy windows share decoder batches (--batch-concurrent-calls, on unless given)',
      integer(1),
      SERVER_DEFAULTS.jobsPerWorker,
    )
    .option('--max-queue <n>', 'jobs that may wait for a worker before 429', integer(0), SERVER_DEFAULTS.maxQueue)
    .option('--max-streams <n>', 'live streams (WebSocket /v1/realtime) at once; 0: none', integer(0), SERVER_DEFAULTS.maxStreams)
    .option('--live-idle-timeout <s>', 'close a live stream whose client sends nothing for this many seconds', positive(), SERVER_DEFAULTS.liveIdleTimeoutS)
    .option('--max-upload-mb <mb>', 'largest upload, MiB (413 above)', positive(), SERVER_DEFAULTS.maxUploadMb)
    .option('--max-duration-s <s>', 'longest audio, seconds (413 above)', positive(), SERVER_DEFAULTS.maxDurationS)
    .option('--api-key <key>', 'require Authorization: Bearer <key> on /v1/ (default: $WHISPER_TS_API_KEY)')
    .option('--log', 'log each request (JSON lines on stdout)')
    .exitOverride()
    .showHelpAfterError();
  addOptionFlags(cmd, 'all');
  cmd.action(async (opts: Record<string, unknown>) => {
    io.setExitCode(await runServe(opts, io));
  });
  return cmd;
}

async function runServe(opts: Record<string, unknown>, io: CliIo): Promise<number> {
  let load;
  let batchGiven: boolean;
  let defaults: Partial<TranscribeOptions>;
  try {
    const givenLoad = givenOptions(opts, 'load');
    batchGiven = 'batchConcurrentCalls' in givenLoad;
    load = resolveLoadOptions(givenLoad);
    const given = givenOptions(opts, 'call');
    // per request, the endpoint decides the task and timestamp_granularities[] the words
    for (const [key, flag, why] of [
      ['task', 'task', 'the endpoint (/transcriptions or /translations) decides the task'],
      ['wordTimestamps', 'word-timestamps', "a request's timestamp_granularities[]=word asks for words"],
    ] as const) {
      if (key in given) throw new WhisperError('E_OPTIONS', `--${flag} is not a server default: ${why}`);
    }
    resolveTranscribeOptions(given);
    defaults = given as Partial<TranscribeOptions>;
  } catch (err) {
    io.stderr.write(describeError(err).message + '\n');
    return EXIT.usage;
  }
  // --batch-concurrent-calls left out: the server decides by --jobs-per-worker
  const { model, batchConcurrentCalls, ...loadRest } = load;
  const concurrency = opts.concurrency as number;
  const jobsPerWorker = opts.jobsPerWorker as number;
  const threads = loadRest.threads || threadsPerWorker(concurrency);
  const apiKey = (opts.apiKey as string | undefined) ?? process.env.WHISPER_TS_API_KEY ?? null;
  const reporter = createPullReporter(io.stderr);
  let server;
  try {
    server = await startServer({
      host: opts.host as string,
      port: opts.port as number,
      model,
      load: { ...loadRest, threads, ...(batchGiven ? { batchConcurrentCalls } : {}) },
      concurrency,
      jobsPerWorker,
      maxQueue: opts.maxQueue as number,
      maxStreams: opts.maxStreams as number,
      liveIdleTimeoutS: opts.liveIdleTimeout as number,
      maxUploadMb: opts.maxUploadMb as number,
      maxDurationS: opts.maxDurationS as number,
      apiKey: apiKey === '' ? null : apiKey,
      defaults,
      logger: opts.log === true,
      onDownload: (e) => reporter.onProgress(e),
      signal: io.signal,
    });
    reporter.stop();
  } catch (err) {
    reporter.stop();
    const e = describeError(err);
    io.stderr.write(e.message + '\n');
    return e.code === EXIT.partial ? EXIT.model : e.code;
  }
  io.stdout.write(
    `whisper-ts serve: listening on ${server.url} (model ${server.served.id}, ${concurrency} worker(s) × ${threads} thread(s), ` +
      `${jobsPerWorker} job(s) per worker${(batchGiven ? batchConcurrentCalls : jobsPerWorker > 1) ? ' in shared decoder batches' : ''}` +
      `${apiKey ? ', API key required' : ''})\n`,
  );
  // SIGINT arrives through io.signal (main.ts); SIGTERM (service managers, containers) stops the server the same way
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    if (io.signal.aborted) return resolve();
    io.signal.addEventListener('abort', stop, { once: true });
    process.once('SIGTERM', stop);
  });
  io.stderr.write('whisper-ts serve: shutting down\n');
  await server.close();
  return EXIT.ok;
}
