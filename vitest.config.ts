import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // From the root every package's tests; from a package folder (its own `test` script, which
    // finds this config by walking up) the root is that folder, so `src/` and `test/` match its own.
    include: [
      'packages/*/src/**/*.test.ts',
      'packages/*/test/**/*.test.ts',
      'tools/*/test/**/*.test.ts',
      'examples/test/**/*.test.ts',
      'docs/test/**/*.test.ts',
      'src/**/*.test.ts',
      'test/**/*.test.ts',
    ],
    // Before any test file's imports: the Kafka tests run on the kafkajs Batch the adapter installs in an
    // application (elsewhere it only loads three small kafkajs files).
    setupFiles: [fileURLToPath(new URL('./packages/adapter-kafka/test/before-kafkajs.setup.ts', import.meta.url))],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2-core machines: broker-backed files compete with the brokers for CPU.
    maxWorkers: 2,
    minWorkers: 1,
    // Relative to this file, not to the folder vitest runs in (a package's own `test` script).
    reporters: ['default', fileURLToPath(new URL('./scripts/summary-reporter.ts', import.meta.url))],
  },
});
