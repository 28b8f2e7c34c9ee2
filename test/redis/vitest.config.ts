import { defineConfig } from 'vitest/config';

/** The tests that need Debian's redis-server: `npm run test:redis`. */
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/redis/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
