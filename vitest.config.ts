import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

const src = (path: string) => new URL(`./src/${path}`, import.meta.url).pathname;

export default defineConfig({
  resolve: {
    // The package's own names, as an app imports them (the README's e2e example), to the sources.
    alias: [
      { find: /^nestjs-duo$/, replacement: src('index.ts') },
      { find: /^nestjs-duo\/protocol$/, replacement: src('protocol/index.ts') },
      { find: /^nestjs-duo\/testing$/, replacement: src('testing/index.ts') },
      { find: /^nestjs-duo\/terminus$/, replacement: src('terminus/index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Vitest's default is one worker fewer than the cores: one worker on a 2-core machine, where
    // most test time is spent waiting on sockets and timers. Two halve the run (about 60 s, not 105 s).
    maxWorkers: Math.max(2, availableParallelism() - 1),
    exclude: ['test/browser/**', 'test/redis/**', 'node_modules/**', 'dist/**'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
