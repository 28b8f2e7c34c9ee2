// Run by `npm pack` / `npm publish` (prepack) after the build: every entry point of
// package.json's "exports" must load from dist/ (ESM import and CommonJS require), and
// every declaration file its "types" names must exist. A dist/ that another build was
// rewriting while this one ran (files missing, ERR_MODULE_NOT_FOUND for the user) stops
// the pack here instead of reaching a tarball.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { exports: entries } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const require = createRequire(join(root, 'package.json'));
const problems = [];
for (const [name, target] of Object.entries(entries)) {
  if (typeof target === 'string') continue; // ./package.json
  const file = join(root, target.default);
  if (!existsSync(join(root, target.types))) problems.push(`${name}: ${target.types} is missing`);
  try {
    await import(pathToFileURL(file).href);
    require(file);
  } catch (error) {
    problems.push(`${name}: ${target.default} does not load: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
}
if (problems.length > 0) {
  console.error(`dist/ is incomplete; run \`npm run build\` again (alone) before packing:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`dist/: ${Object.keys(entries).length - 1} entry points load (import and require)`);
