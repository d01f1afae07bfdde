/**
 * The live-transcription worker thread: loads the model and the Silero VAD once and runs many streams at once (each
 * its own LiveTranscriber with its own buffer, hypotheses and VAD state; they take turns on this thread's event loop
 * while ONNX Runtime computes). Audio arrives as transferred Float32Arrays; events go back as they happen.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createStream, isWhisperError, loadModel, loadVad, type LiveTranscriber } from '../index.js';
import type { LiveFromWorker, LiveToWorker } from './live-protocol.js';
import type { SerializedError, WorkerConfig } from './protocol.js';

if (!parentPort) throw new Error('src/server/live-worker.ts runs as a worker thread');
const port = parentPort;
const config = workerData as WorkerConfig;

function post(message: LiveFromWorker): void {
  port.postMessage(message);
}

function serialize(err: unknown): SerializedError {
  if (isWhisperError(err)) return { code: err.code, message: err.message };
  return { code: 'E_INFERENCE', message: err instanceof Error ? err.message : String(err) };
}

interface Running {
  /** The stream, once created; messages that come before wait for it. */
  ready: Promise<LiveTranscriber | undefined>;
  controller: AbortController;
  failed: boolean;
}

async function main(): Promise<void> {
  let whisper;
  let vad;
  try {
    [whisper, vad] = await Promise.all([loadModel(config.modelDir, config.load), loadVad()]);
  } catch (err) {
    post({ type: 'fatal', error: serialize(err) });
    return;
  }
  const streams = new Map<number, Running>();
  const fail = (id: number, r: Running, err: unknown): void => {
    if (r.failed) return;
    r.failed = true;
    streams.delete(id);
    r.controller.abort();
    post({ type: 'error', id, error: serialize(err) });
  };

  port.on('message', (m: LiveToWorker) => {
    if (m.type === 'open') {
      const controller = new AbortController();
      const running: Running = { controller, failed: false, ready: Promise.resolve(undefined) };
      running.ready = createStream(whisper, m.options, {
        signal: controller.signal,
        vad,
        onEvent: (event) => post({ type: 'event', id: m.id, event }),
        onError: (err) => fail(m.id, running, err),
      }).then(
        (stream) => {
          post({ type: 'opened', id: m.id });
          return stream;
        },
        (err: unknown) => {
          fail(m.id, running, err);
          return undefined;
        },
      );
      streams.set(m.id, running);
      return;
    }
    const running = streams.get(m.id);
    if (running === undefined) return;
    void running.ready.then(async (stream) => {
      if (stream === undefined || running.failed) return;
      try {
        if (m.type === 'audio') {
          if (!stream.closed) stream.push(m.samples);
        } else if (m.type === 'end' || m.type === 'abort') {
          if (m.type === 'abort') running.controller.abort(new Error('the client went away'));
          await stream.end();
          streams.delete(m.id);
          post({ type: 'closed', id: m.id, stats: stream.stats });
        }
      } catch (err) {
        fail(m.id, running, err);
      }
    });
  });
  post({ type: 'ready' });
}

void main();
