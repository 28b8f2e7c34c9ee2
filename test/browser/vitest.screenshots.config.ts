import { fileURLToPath } from 'node:url';
import { defineConfig, mergeConfig } from 'vitest/config';
import browser from './vitest.config.js';

// `npm run screenshots`: the browser test, saving its screenshots into docs/screenshots
// (the README's images) instead of a temporary directory.
export default mergeConfig(
  browser,
  defineConfig({
    test: {
      env: { SCREENSHOTS_DIR: fileURLToPath(new URL('../../docs/screenshots', import.meta.url)) },
    },
  }),
);
