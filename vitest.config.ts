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
    exclude: ['test/browser/**', 'test/redis/**', 'node_modules/**', 'dist/**'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
