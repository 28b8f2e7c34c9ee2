// Proves nestjs-duo in a NestJS 11 CommonJS app (require(esm)).
// Expects `npm run build` done. Packs the library, copies test/compat/nest11 to
// a temporary directory (no node_modules in the repo), installs NestJS 11 and
// the tarball there from the registry, and runs the flow in run.cjs.
// Ends with "nest11 compat: N passed, N failed". KEEP_NEST11_DIR=1 keeps the directory.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = join(root, 'test/compat/nest11');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// Settings an outer `npm run` passes down would point npm at the repo, not the fixture.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_(config_local_prefix|config_global|config_prefix|package_|lifecycle_)/i.test(key)),
);

function run(command, args, cwd) {
  return new Promise((resolvePromise) => {
    console.log(`$ ${[command, ...args].join(' ')}   (in ${cwd})`);
    const child = spawn(command, args, { cwd, env, stdio: 'inherit' });
    child.on('error', (error) => {
      console.error(error);
      resolvePromise(1);
    });
    child.on('close', (code, signal) => resolvePromise(code ?? (signal ? 1 : 0)));
  });
}

async function main() {
  for (const entry of ['dist/index.js', 'dist/testing/index.js']) {
    if (!existsSync(join(root, entry))) throw new Error(`${entry} is missing: run \`npm run build\` first.`);
  }
  const work = mkdtempSync(join(tmpdir(), 'nestjs-duo-nest11-'));
  const keep = Boolean(process.env.KEEP_NEST11_DIR);
  try {
    const packDir = join(work, 'pack');
    const appDir = join(work, 'app');
    mkdirSync(packDir);
    let started = Date.now();
    if ((await run(npm, ['pack', '--ignore-scripts', '--pack-destination', packDir], root)) !== 0) throw new Error('npm pack failed');
    const tarballs = readdirSync(packDir).filter((name) => name.endsWith('.tgz'));
    if (tarballs.length !== 1) throw new Error(`npm pack made ${tarballs.length} tarballs`);

    cpSync(fixture, appDir, { recursive: true, filter: (src) => !/[\\/](node_modules|package-lock\.json)$/.test(src) });
    // package.json asks for file:./nestjs-duo.tgz: an installed copy, not a link to the repo.
    renameSync(join(packDir, tarballs[0]), join(appDir, 'nestjs-duo.tgz'));

    if ((await run(npm, ['install', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts'], appDir)) !== 0) {
      throw new Error('npm install failed');
    }
    console.log(`packed and installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    started = Date.now();
    const code = await run(process.execPath, ['run.cjs'], appDir);
    console.log(`flow ran in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return code;
  } finally {
    if (keep) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

let failed;
try {
  failed = (await main()) !== 0;
} catch (error) {
  console.error(`nest11 compat: ${error instanceof Error ? error.message : error}`);
  failed = true;
}
console.log(`nest11 compat: ${failed ? 0 : 1} passed, ${failed ? 1 : 0} failed`);
process.exit(failed ? 1 : 0);
