import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANUALS, ROOT, typescriptBlocks } from './markdown-blocks.js';

/**
 * The README's e2e example (the ```ts block under `<!-- run: e2e -->`) is a test file: it is
 * written out as test/readme/app/test/app.e2e-spec.ts, next to the small app it tests
 * (test/readme/app/src: forRootAsync with @nestjs/config, as the README shows), and imported
 * here, so its own `it()`s run as part of this file. `nestjs-duo` resolves to src/ (vitest.config.ts).
 */
const blocks = MANUALS.flatMap(typescriptBlocks).filter((block) => block.run);
if (blocks.length !== 1) throw new Error(`expected exactly one <!-- run: e2e --> block in the README, found ${blocks.length}`);
const dir = join(ROOT, 'test/readme/app/test');
mkdirSync(dir, { recursive: true });
const spec = join(dir, 'app.e2e-spec.ts');
writeFileSync(spec, `// Written from ${blocks[0]!.file}:${blocks[0]!.line} by test/readme/readme-e2e.test.ts.\n${blocks[0]!.code}\n`);
await import(spec);
