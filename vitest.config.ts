import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'tools/*/test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2-core machines: broker-backed files compete with the brokers for CPU.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
