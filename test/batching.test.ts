// Decoder batches across rows of different prompt lengths (left padding through the rewritten decoder's
// position_ids / attention_bias inputs) and across concurrent calls (batchConcurrentCalls), on whisper-tiny.en.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { N_FRAMES, N_SAMPLES, logMelSpectrogram, melWindow } from '../src/audio/index.js';
import { decodeAudio, loadModel, type Whisper } from '../src/index.js';
import { decodeBatch } from '../src/decoding/batch.js';
import { decodeWindow, type DecodeWindowOptions } from '../src/decoding/decode.js';
import type { WhisperModel } from '../src/model/whisper-model.js';
import { ort } from '../src/runtime/session.js';
import { EVAL, JFK, TINY_EN, readReference } from './helpers/paths.js';
import { wer } from './helpers/stream.js';

const GREEDY: Omit<DecodeWindowOptions, 'language' | 'prompt'> = {
  task: 'transcribe',
  prefix: [],
  withoutTimestamps: false,
  temperature: 0,
  bestOf: 1,
  beamSize: 1,
  suppressTokens: [-1],
  suppressBlank: true,
  maxInitialTimestamp: 1,
  maxNewTokens: 224,
  seed: 0,
};

async function encodeFile(model: WhisperModel, file: string): Promise<ort.Tensor> {
  const mel = logMelSpectrogram(await decodeAudio(file), model.config.nMels, N_SAMPLES);
  return model.encode(melWindow(mel, 0, N_FRAMES), 1);
}

function argmaxRow(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[best] as number)) best = i;
  return best;
}

describe('decoder batches of different prompt lengths (whisper-tiny.en)', () => {
  let whisper: Whisper;
  let model: WhisperModel;
  beforeAll(async () => {
    whisper = await loadModel(TINY_EN, { threads: 2 });
    model = whisper.model;
  });
  afterAll(async () => whisper.dispose());

  it('a left-padded row decodes like the row alone: the same token wins at every step', async () => {
    expect(model.paddingInputs).toBe(true);
    const reference = readReference(TINY_EN).find((r) => r.file === 'jfk.wav')?.timestamps?.tokens;
    if (!reference) throw new Error('no jfk.wav timestamps reference');
    const hidden = await encodeFile(model, JFK);
    const sot = [model.tokenizer.special.sot];
    let unpadded: number[] = [];
    for (const pad of [0, 5, 40]) {
      const cache = model.newCache(hidden);
      if (pad > 0) cache.padding = [pad];
      // padding: arbitrary tokens, hidden from attention, positions not counted
      let out = await model.decode([...new Array<number>(pad).fill(1000), ...sot], cache);
      const chosen: number[] = [];
      for (const token of reference) {
        chosen.push(argmaxRow(out.logits));
        out = await model.decode([token], cache);
      }
      // teacher-forced on the reference, the raw argmax (before the timestamp rules) at every step is the same
      // with and without padding, and mostly the reference itself
      if (pad === 0) unpadded = chosen;
      else expect(chosen, `padding ${pad}`).toEqual(unpadded);
    }
    const agree = unpadded.filter((t, i) => t === reference[i]).length;
    expect(agree / reference.length).toBeGreaterThan(0.8);
  });

  it('decodeBatch with prompts of different lengths: each row transcribes its own audio', async () => {
    const tk = model.tokenizer;
    const files = [JFK, ...['1688-142285-0000', '1688-142285-0001', '1688-142285-0002'].map((f) => `${EVAL}/librispeech_test_other/${f}.flac`)];
    const prompts = [[], tk.encode(' A prompt of a few words.'), tk.encode(' Short.'), tk.encode(' A longer prompt: the quick brown fox jumps over the lazy dog, and runs on into the woods.')];
    const hiddens = await Promise.all(files.map((f) => encodeFile(model, f)));
    const solo = [];
    for (const [i, h] of hiddens.entries()) {
      solo.push(await decodeWindow(model, h, { ...GREEDY, language: null, prompt: prompts[i] as number[] }, ort));
    }
    const size = (hiddens[0]?.data as Float32Array).length;
    const stacked = new Float32Array(size * hiddens.length);
    hiddens.forEach((h, i) => stacked.set(h.data as Float32Array, i * size));
    const batched = await decodeBatch(
      model,
      new ort.Tensor('float32', stacked, [hiddens.length, ...(hiddens[0]?.dims.slice(1) ?? [])]),
      { ...GREEDY, languages: hiddens.map(() => null), prompt: [], prompts },
      ort,
    );
    // rows nudge one another's q8 activation scales, so words may differ a little, never the content
    for (const [i, r] of batched.entries()) {
      const alone = solo[i]?.text ?? '';
      expect(wer(alone, r.text), `row ${i}: "${r.text}" vs "${alone}"`).toBeLessThanOrEqual(0.15);
    }
    expect(batched[0]?.text).toMatch(/ask not what your country can do for you/i);
  });

  it('concurrent calls share decoder batches (batchConcurrentCalls) and each gets its own text', async () => {
    const long = await decodeAudio(`${EVAL}/longform_en/librispeech_test_other_3ch_concat.flac`);
    const clips = [0, 1, 2, 3].map((k) => long.subarray(k * 16000 * 40, (k + 1) * 16000 * 40));
    const text = async (w: Whisper, a: Float32Array): Promise<string> => {
      const { segments } = await w.transcribe(a, { language: 'en' });
      let t = '';
      for await (const s of segments) t += s.text;
      return t;
    };
    // float32 activations: a row computes the same in a batch as alone, so the texts are the same. mixed (the default on
    // VNNI CPUs): a cached step of one row and one of several take different int8 kernels, whose float sums differ in
    // the last bits, and a near-tie can go the other way (measured: 2 of 4 clips identical, the others 2 % and 12 %
    // apart); rows mixed up would be ~100 % apart.
    for (const [activations, bound] of [
      ['float32', 0],
      ['mixed', 0.25],
    ] as const) {
      const shared = await loadModel(TINY_EN, { threads: 2, batchConcurrentCalls: true, activations });
      const alone = await loadModel(TINY_EN, { threads: 2, activations });
      try {
        const together = await Promise.all(clips.map((c) => text(shared, c)));
        const stats = shared.batchStats;
        expect(stats.batches).toBeGreaterThan(0);
        expect(stats.largestBatch).toBeGreaterThanOrEqual(2);
        expect(stats.batchedWindows).toBeGreaterThanOrEqual(4);
        let identical = 0;
        for (const [i, t] of together.entries()) {
          const own = await text(alone, clips[i] as Float32Array);
          if (t === own) identical++;
          if (bound === 0) expect(t, `clip ${i}`).toBe(own);
          else expect(wer(own, t), `${activations} clip ${i}`).toBeLessThanOrEqual(bound);
        }
        expect(identical).toBeGreaterThanOrEqual(1);
        // without the option, calls never batch
        expect(alone.batchStats.batches).toBe(0);
      } finally {
        await Promise.all([shared.dispose(), alone.dispose()]);
      }
    }
  });

});
