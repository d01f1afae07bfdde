import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // ONNX Runtime sessions are CPU-heavy; the box has 2 cores, so test files run one at a time.
    fileParallelism: false,
    pool: 'forks',
  },
});
