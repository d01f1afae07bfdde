import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAudio } from '../src/audio/index.js';
import { vadCommand } from '../src/cli/vad.js';
import { loadVad, spansToSeconds, type VadModel } from '../src/vad/index.js';

const JFK = '/work/shared/eval/jfk/jfk.flac';

async function runVad(args: string[]): Promise<string> {
  let out = '';
  const stdout = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out += chunk.toString();
      callback();
    },
  });
  await vadCommand({ stdout }).exitOverride().parseAsync(args, { from: 'user' });
  return out;
}

let vad: VadModel;
let samples: Float32Array;

beforeAll(async () => {
  vad = await loadVad();
  samples = await decodeAudio(JFK);
});

afterAll(async () => {
  await vad.dispose();
});

describe('whisper-ts vad', () => {
  it('prints the spans as JSON', async () => {
    const printed = JSON.parse(await runVad([JFK, '--json'])) as {
      file: string;
      duration: number;
      speech: number;
      spans: { start: number; end: number }[];
    };
    const expected = spansToSeconds(await vad.speechTimestamps(samples));
    expect(printed.file).toBe(JFK);
    expect(printed.duration).toBeCloseTo(samples.length / 16000, 3);
    expect(printed.spans.length).toBe(expected.length);
    printed.spans.forEach((span, i) => {
      expect(span.start).toBeCloseTo(expected[i]!.start, 3);
      expect(span.end).toBeCloseTo(expected[i]!.end, 3);
    });
    expect(printed.speech).toBeGreaterThan(5);
    expect(printed.speech).toBeLessThanOrEqual(printed.duration);
  });

  it('prints one start<TAB>end line per span and passes the options on', async () => {
    const text = await runVad([JFK, '--min-silence-duration-ms', '100', '--speech-pad-ms', '30', '--threshold', '0.6']);
    const expected = spansToSeconds(
      await vad.speechTimestamps(samples, { minSilenceDurationMs: 100, speechPadMs: 30, threshold: 0.6 }),
    );
    const lines = text.trimEnd().split('\n');
    expect(expected.length).toBeGreaterThan(1); // the short silence splits JFK's sentence
    expect(lines).toEqual(expected.map((s) => `${s.start.toFixed(3)}\t${s.end.toFixed(3)}`));
  });

  it('rejects bad values with E_OPTIONS naming the option', async () => {
    await expect(runVad([JFK, '--threshold', 'abc'])).rejects.toMatchObject({
      code: 'E_OPTIONS',
      message: expect.stringContaining('--threshold') as unknown,
    });
    await expect(runVad([JFK, '--speech-pad-ms', '-5'])).rejects.toMatchObject({
      code: 'E_OPTIONS',
      message: expect.stringContaining('speechPadMs') as unknown,
    });
    await expect(runVad([JFK, '--threads', '1.5'])).rejects.toMatchObject({ code: 'E_OPTIONS' });
  });

  it('reports a missing file with the audio error code', async () => {
    await expect(runVad(['/nonexistent/audio.wav'])).rejects.toMatchObject({ code: 'E_AUDIO_NOT_FOUND' });
  });
});
