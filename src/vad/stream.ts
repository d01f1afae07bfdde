/**
 * Silero VAD over audio that arrives in pieces: `VadStream` scores each 512-sample window once, as soon as it is
 * complete, carrying the LSTM state and the 64-sample context from piece to piece (the probabilities equal those of
 * `VadModel.speechProbabilities` on the whole audio); `SpeechGate` turns them into speech starts and ends online,
 * with the thresholds of faster-whisper's get_speech_timestamps (faster_whisper/vad.py).
 */
import { throwIfAborted } from '../errors.js';
import { VAD_SAMPLE_RATE, VAD_WINDOW_SAMPLES, type ResolvedVadOptions } from './options.js';
import { CONTEXT_SAMPLES, type VadModel, type VadState } from './silero.js';

const INPUT_SAMPLES = CONTEXT_SAMPLES + VAD_WINDOW_SAMPLES;

export class VadStream {
  readonly #model: VadModel;
  #state: VadState | null = null;
  /** The 64 samples before the next window (zeros at the start, as faster-whisper pads). */
  readonly #context = new Float32Array(CONTEXT_SAMPLES);
  /** Samples of the next, incomplete window. */
  readonly #pending = new Float32Array(VAD_WINDOW_SAMPLES);
  #pendingLength = 0;
  #windows = 0;
  #busy = false;

  constructor(model: VadModel) {
    this.#model = model;
  }

  /** Windows scored so far; window `i` covers samples [512 i, 512 (i + 1)) of the stream. */
  get windows(): number {
    return this.#windows;
  }

  /**
   * Appends samples (16 kHz mono) and returns the speech probability of every window they complete, in order.
   * Calls must not overlap (await each one).
   */
  async push(samples: Float32Array, signal?: AbortSignal): Promise<Float32Array> {
    const count = Math.floor((this.#pendingLength + samples.length) / VAD_WINDOW_SAMPLES);
    if (count === 0) {
      this.#pending.set(samples, this.#pendingLength);
      this.#pendingLength += samples.length;
      return new Float32Array(0);
    }
    const input = new Float32Array(count * INPUT_SAMPLES);
    let used = 0; // samples of `samples` consumed
    for (let w = 0; w < count; w++) {
      const row = w * INPUT_SAMPLES;
      input.set(this.#context, row);
      const take = VAD_WINDOW_SAMPLES - this.#pendingLength;
      input.set(this.#pending.subarray(0, this.#pendingLength), row + CONTEXT_SAMPLES);
      input.set(samples.subarray(used, used + take), row + CONTEXT_SAMPLES + this.#pendingLength);
      used += take;
      this.#pendingLength = 0;
      this.#context.set(input.subarray(row + INPUT_SAMPLES - CONTEXT_SAMPLES, row + INPUT_SAMPLES));
    }
    const rest = samples.subarray(used);
    this.#pending.set(rest, 0);
    this.#pendingLength = rest.length;
    return this.#score(input, count, signal);
  }

  /**
   * Scores the incomplete last window padded with zeros (as faster-whisper pads the end of the audio) and returns
   * its probability (none when no sample is pending). The stream can go on afterwards from a window boundary.
   */
  async flush(signal?: AbortSignal): Promise<Float32Array> {
    if (this.#pendingLength === 0) return new Float32Array(0);
    const pad = new Float32Array(VAD_WINDOW_SAMPLES - this.#pendingLength);
    return this.push(pad, signal);
  }

  async #score(input: Float32Array, count: number, signal?: AbortSignal): Promise<Float32Array> {
    if (this.#busy) throw new Error('VadStream: push() calls must not overlap');
    this.#busy = true;
    try {
      throwIfAborted(signal);
      const { probabilities, state } = await this.#model.scoreWindows(input, count, this.#state, signal);
      this.#state = state;
      this.#windows += count;
      return probabilities;
    } finally {
      this.#busy = false;
    }
  }
}

/** A change of the speech state, at a sample position of the stream. */
export interface SpeechChange {
  type: 'start' | 'end';
  /** Sample where speech started, or where the silence that ended it began. */
  sample: number;
}

/**
 * The decision loop of faster-whisper's get_speech_timestamps (faster_whisper/vad.py), run online: speech starts at
 * the first window at or above `threshold`; it ends where a run of windows below `negThreshold` began, once that run
 * has lasted `minSilenceDurationMs`. Padding, `minSpeechDurationMs` and `maxSpeechDurationS` need the future and are
 * left to the caller.
 */
export class SpeechGate {
  readonly #threshold: number;
  readonly #negThreshold: number;
  readonly #minSilenceSamples: number;
  #triggered = false;
  /** Where the current silence began; -1: none. */
  #silenceStart = -1;
  #window = 0;

  constructor(options: Pick<ResolvedVadOptions, 'threshold' | 'negThreshold' | 'minSilenceDurationMs'>) {
    this.#threshold = options.threshold;
    this.#negThreshold = options.negThreshold;
    this.#minSilenceSamples = (VAD_SAMPLE_RATE * options.minSilenceDurationMs) / 1000;
  }

  /** Whether speech is going on (started and not yet ended). */
  get speaking(): boolean {
    return this.#triggered;
  }

  /** Feeds the probabilities of the next windows; returns the changes they cause, in order. */
  update(probabilities: ArrayLike<number>): SpeechChange[] {
    const changes: SpeechChange[] = [];
    for (let i = 0; i < probabilities.length; i++) {
      const prob = probabilities[i] ?? 0;
      const position = this.#window++ * VAD_WINDOW_SAMPLES;
      if (prob >= this.#threshold) {
        this.#silenceStart = -1;
        if (!this.#triggered) {
          this.#triggered = true;
          changes.push({ type: 'start', sample: position });
        }
        continue;
      }
      if (this.#triggered && prob < this.#negThreshold) {
        if (this.#silenceStart < 0) this.#silenceStart = position;
        if (position - this.#silenceStart >= this.#minSilenceSamples) {
          changes.push({ type: 'end', sample: this.#silenceStart });
          this.#triggered = false;
          this.#silenceStart = -1;
        }
      }
    }
    return changes;
  }
}
