/** A client of the live WebSocket /v1/realtime for tests: connect, send PCM16 frames (at real speed or at once). */
import WebSocket from 'ws';
import { SAMPLE_RATE } from '../../src/audio/index.js';
import type { StreamEvent } from '../../src/types.js';

export type Message = (StreamEvent | { type: 'ready' | 'done' | 'error'; code?: string; stats?: { received: number } }) & {
  at: number;
};

export interface Session {
  ws: WebSocket;
  messages: Message[];
  closed: Promise<{ code: number; reason: string }>;
  opened: Promise<void>;
}

/** A WebSocket to /v1/realtime; each message gets `at`, the performance.now() of its arrival in seconds. */
export function connect(url: string, headers: Record<string, string> = {}): Session {
  const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/realtime', { headers });
  const messages: Message[] = [];
  ws.on('message', (d: Buffer) => messages.push({ ...(JSON.parse(d.toString()) as Message), at: performance.now() / 1000 }));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })),
  );
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, messages, closed, opened };
}

export function pcm16(samples: Float32Array): Buffer {
  const out = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) out.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32768))), i * 2);
  return out;
}

/** Sends audio in 100-ms frames: at real speed from `started` (each frame once its end time has passed), or at once. */
export async function sendAudio(s: Session, audio: Float32Array, realtime: boolean, started = performance.now()): Promise<void> {
  const step = SAMPLE_RATE / 10;
  for (let i = 0; i < audio.length; i += step) {
    if (realtime) {
      const wait = started + ((i + step) / SAMPLE_RATE) * 1000 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    s.ws.send(pcm16(audio.subarray(i, i + step)));
  }
}

