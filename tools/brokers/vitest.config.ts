import { defineConfig } from 'vitest/config';

// Used when the smoke tests run on their own:
//   npx vitest run --root tools/brokers   (brokers already up)
//   pnpm --filter @busline/brokers-smoke exec vitest run
export default defineConfig({
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
