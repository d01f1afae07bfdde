/**
 * An inference worker thread: loads the model once, then runs the jobs the pool sends off the server's event loop
 * (several at once when the pool allows: their windows meet in the model's decoder batches) — decode the upload,
 * check the duration limit, transcribe, post each segment as it is decoded. An `abort` message cancels that job
 * through its AbortSignal.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeAudio, isWhisperError, loadModel, type Whisper } from '../index.js';
import type { FromWorker, SerializedError, ToWorker, WorkerConfig } from './protocol.js';

const SAMPLE_RATE = 16_000;

if (!parentPort) throw new Error('src/server/worker.ts runs as a worker thread');
const port = parentPort;
const config = workerData as WorkerConfig;

function post(message: FromWorker): void {
  port.postMessage(message);
}

/** The server's duration limit (not an engine error: the engine has no such limit). */
class AudioTooLong extends Error {}

function serialize(err: unknown): SerializedError {
  if (isWhisperError(err)) return { code: err.code, message: err.message };
  if (err instanceof AudioTooLong) return { code: 'E_AUDIO_TOO_LONG', message: err.message };
  return { code: 'E_INFERENCE', message: err instanceof Error ? err.message : String(err) };
}

/** The jobs running now, by id. */
const running = new Map<number, AbortController>();

async function runJob(whisper: Whisper, id: number, bytes: Uint8Array, options: Record<string, unknown>): Promise<void> {
  const controller = new AbortController();
  running.set(id, controller);
  const { signal } = controller;
  try {
    // a second past the limit is decoded, no more: a small compressed upload may hold hours of audio
    const limit = config.maxDurationS;
    const samples = await decodeAudio(bytes, { signal, ...(limit !== null ? { maxSeconds: limit + 1 } : {}) });
    const seconds = samples.length / SAMPLE_RATE;
    if (limit !== null && seconds > limit) {
      throw new AudioTooLong(`the audio is longer than this server's limit of ${limit} s (--max-duration-s)`);
    }
    const { info, segments } = await whisper.transcribe(samples, options, { signal });
    post({ type: 'info', id, info });
    for await (const segment of segments) post({ type: 'segment', id, segment });
    post({ type: 'done', id });
  } catch (err) {
    post({ type: 'error', id, error: serialize(err) });
  } finally {
    running.delete(id);
  }
}

async function main(): Promise<void> {
  let whisper: Whisper;
  try {
    whisper = await loadModel(config.modelDir, config.load);
  } catch (err) {
    post({ type: 'fatal', error: serialize(err) });
    return;
  }
  port.on('message', (message: ToWorker) => {
    if (message.type === 'abort') {
      running.get(message.id)?.abort(new Error('the client went away'));
      return;
    }
    void runJob(whisper, message.id, message.audio, message.options);
  });
  post({
    type: 'ready',
    model: {
      multilingual: whisper.isMultilingual,
      wordTimestamps: whisper.supportsWordTimestamps,
      dtypes: whisper.dtypes,
    },
  });
}

void main();
