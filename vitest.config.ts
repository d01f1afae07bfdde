import { defineConfig } from 'vitest/config';

// ONNX Runtime sessions are CPU-heavy and the box has 2 cores, so the model tests run one file at a time. The live
// test plays longform_en at real speed (about 5 minutes of wall time, the decoder mostly waiting for audio); the files
// that need little CPU (no Whisper session, or one short one) run beside it, then the rest one by one.
const LIVE = ['test/stream.longform.test.ts'];
const LIGHT = [
  'test/audio.decode.test.ts',
  'test/audio.mel.test.ts',
  'test/hub.test.ts',
  'test/hub-cli.test.ts',
  'test/hub-interop.test.ts',
  'test/vad.test.ts',
  'test/vad.cli.test.ts',
  'test/words.rules.test.ts',
  'test/server.page.test.ts',
  'test/bench.cli.test.ts',
  'test/decoding.options.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'live', include: LIVE, fileParallelism: false, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'light', include: LIGHT, fileParallelism: false, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: 'models',
          include: ['test/**/*.test.ts'],
          exclude: [...LIVE, ...LIGHT],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
