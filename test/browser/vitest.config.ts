import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The browser test of the sample app: `npm run test:browser` (it builds the library and the sample first).
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/browser/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
