// Proves nestjs-duo in a NestJS 11 CommonJS app, as a consumer installs it.
// Expects `npm run build` done. Packs the library, copies test/compat/nest11 to
// a temporary directory (no node_modules in the repo), installs NestJS 11, Jest
// 30 and the tarball there from the registry, and checks:
//   - TypeScript: the Nest 11 template's tsconfig (module nodenext) type-checks
//     src/ and test/ against the installed package; module commonjs and node20 do
//     too; node16 fails with TS1479, and so does nodenext on TypeScript 5.7 (the
//     README says so: these checks keep it true);
//   - on each Node given (--node=<binary>, repeatable; default: this node):
//       the plain CommonJS flow of run.cjs (require(esm)),
//       the tsc-compiled app loading with require(),
//       the Jest e2e test (test/app.e2e-spec.ts, supertest) with ts-jest and with
//       @swc/jest, using the one line of configuration README documents
//       (transformIgnorePatterns), and without it: fails (and passes on
//       Node >= 24.9 with --experimental-vm-modules).
// Ends with "nest11 compat: N passed, N failed". KEEP_NEST11_DIR=1 keeps the directory.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = join(root, 'test/compat/nest11');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
/** The TypeScript release before require(esm) support: `module: nodenext` gives TS1479 there. */
const OLD_TYPESCRIPT = '5.7.3';
const NO_TS_CHECK = /^\/\/ @ts-nocheck -- for the repository's typecheck only.*\n/;

const nodes = process.argv
  .slice(2)
  .filter((arg) => arg.startsWith('--node='))
  .map((arg) => resolve(arg.slice('--node='.length)));
if (nodes.length === 0) nodes.push(process.execPath);

// Settings an outer `npm run` passes down would point npm at the repo, not the fixture.
const baseEnv = Object.fromEntries(
  Object.entries(process.env).filter(
    ([key]) => !/^(npm_(config_local_prefix|config_global|config_prefix|package_|lifecycle_|node_execpath|execpath)|NODE_OPTIONS$)/i.test(key),
  ),
);

/** The environment in which `node` is `binary` (Jest's workers, npm scripts). */
function envFor(binary, extra = {}) {
  const pathKey = Object.keys(baseEnv).find((key) => key.toUpperCase() === 'PATH') ?? 'PATH';
  return { ...baseEnv, [pathKey]: [dirname(binary), baseEnv[pathKey]].filter(Boolean).join(delimiter), ...extra };
}

function run(command, args, cwd, { env = baseEnv, quiet = false } = {}) {
  return new Promise((resolvePromise) => {
    console.log(`$ ${[command, ...args].join(' ')}   (in ${cwd})`);
    const child = spawn(command, args, { cwd, env, stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let output = '';
    if (quiet) {
      child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    }
    child.on('error', (error) => resolvePromise({ code: 1, output: `${output}${error.message}` }));
    child.on('close', (code, signal) => resolvePromise({ code: code ?? (signal ? 1 : 0), output }));
  });
}

const results = [];
function record(ok, name, detail = '') {
  results.push({ ok, name });
  console.log(`${ok ? 'ok' : 'not ok'} ${results.length} - ${name}${detail ? `\n${detail.replace(/^/gm, '    ')}` : ''}`);
}

/** A check that must pass: its output is shown. */
async function expectPass(name, command, args, cwd, options) {
  const started = Date.now();
  const { code } = await run(command, args, cwd, options);
  record(code === 0, `${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** A check that must fail with `pattern` in its output (what the README tells users to expect). */
async function expectFailure(name, pattern, command, args, cwd, options) {
  const { code, output } = await run(command, args, cwd, { ...options, quiet: true });
  const ok = code !== 0 && pattern.test(output);
  record(ok, name, ok ? '' : code === 0 ? 'it passed: the README note that says it fails is out of date' : output.slice(-3000));
}

/**
 * `npm install` in `cwd`, once more with --prefer-online when it fails: npm's
 * cached registry metadata can be older than a package that asks for a fresh
 * release of another (ETARGET "No matching version found"), which a refetch fixes.
 */
async function npmInstall(args, cwd) {
  const base = ['install', '--no-audit', '--no-fund', '--no-package-lock', '--ignore-scripts', '--loglevel=error', ...args];
  if ((await run(npm, base, cwd)).code === 0) return true;
  console.log('npm install failed; once more with --prefer-online (fresh registry metadata)');
  return (await run(npm, [...base, '--prefer-online'], cwd)).code === 0;
}

function versionOf(binary) {
  return run(binary, ['-p', 'process.version'], root, { quiet: true }).then(({ output }) => output.trim());
}

/** `>= 24.9`: where Jest 30 can require() ES modules itself (vm.SourceTextModule#hasAsyncGraph, behind --experimental-vm-modules). */
function hasJestRequireEsm(version) {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number);
  return major > 24 || (major === 24 && minor >= 9);
}

function writeJson(file, value) {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function typeScriptChecks(appDir, work) {
  const tsc = join(appDir, 'node_modules/typescript/bin/tsc');
  const variant = (name, compilerOptions) => {
    const file = `tsconfig.check-${name}.json`;
    writeJson(join(appDir, file), { extends: './tsconfig.json', compilerOptions: { incremental: false, ...compilerOptions } });
    return file;
  };
  const { output: version } = await run(process.execPath, [tsc, '--version'], appDir, { quiet: true });
  const ts = version.trim().replace(/^Version /, 'TypeScript ');

  // The template's own tsconfig (nodenext), emitting into dist/ for the runtime check below.
  await expectPass(`${ts}, the Nest 11 template's tsconfig (module nodenext): src/ and test/ type-check and compile`, process.execPath, [tsc, '-p', variant('nodenext', {})], appDir);
  await expectPass(
    `${ts}, module commonjs: type-checks`,
    process.execPath,
    [tsc, '--noEmit', '-p', variant('commonjs', { module: 'commonjs', moduleResolution: null, resolvePackageJsonExports: null })],
    appDir,
  );
  await expectPass(`${ts}, module node20: type-checks`, process.execPath, [tsc, '--noEmit', '-p', variant('node20', { module: 'node20', moduleResolution: 'node16' })], appDir);
  await expectFailure(
    `${ts}, module node16: TS1479 (a CommonJS file cannot import an ES module there)`,
    /error TS1479/,
    process.execPath,
    [tsc, '--noEmit', '-p', variant('node16', { module: 'node16', moduleResolution: 'node16' })],
    appDir,
  );

  const oldDir = join(work, `typescript-${OLD_TYPESCRIPT}`);
  mkdirSync(oldDir);
  writeJson(join(oldDir, 'package.json'), { private: true });
  if (!(await npmInstall([`typescript@${OLD_TYPESCRIPT}`], oldDir))) {
    record(false, `TypeScript ${OLD_TYPESCRIPT} could not be installed`);
    return;
  }
  await expectFailure(
    `TypeScript ${OLD_TYPESCRIPT}, module nodenext: TS1479 (nodenext allows require(esm) from TypeScript 5.8 on)`,
    /error TS1479/,
    process.execPath,
    [join(oldDir, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.check-nodenext.json'],
    appDir,
  );
}

async function perNodeChecks(appDir, work, binary) {
  const version = await versionOf(binary);
  if (!/^v\d+\./.test(version)) {
    record(false, `${binary} does not run`);
    return;
  }
  console.log(`\n--- Node ${version} (${binary})`);
  const env = envFor(binary);
  const jest = join(appDir, 'node_modules/jest/bin/jest.js');
  const cache = ['--cacheDirectory', join(work, 'jest-cache')];

  await expectPass(`Node ${version}: the CommonJS app (run.cjs) requires nestjs-duo and walks the flow`, binary, ['run.cjs'], appDir, { env });
  await expectPass(
    `Node ${version}: the tsc-compiled app module loads with require()`,
    binary,
    ['-e', "const { AppModule } = require('./dist/src/app.module.js'); if (typeof AppModule.register !== 'function') process.exit(1);"],
    appDir,
    { env },
  );
  await expectPass(`Node ${version}: Jest e2e (ts-jest) with transformIgnorePatterns`, binary, [jest, '--config', './test/jest-e2e.json', ...cache], appDir, { env });
  await expectPass(`Node ${version}: Jest e2e (@swc/jest) with transformIgnorePatterns`, binary, [jest, '--config', './test/jest-e2e.swc.json', ...cache], appDir, { env });
  await expectFailure(
    `Node ${version}: Jest e2e with the template's config alone: "Must use import to load ES Module"`,
    /Must use import to load ES Module/,
    binary,
    [jest, '--config', './test/jest-e2e.template.json', ...cache],
    appDir,
    { env },
  );
  if (hasJestRequireEsm(version)) {
    await expectPass(
      `Node ${version}: Jest e2e with the template's config alone and NODE_OPTIONS=--experimental-vm-modules`,
      binary,
      [jest, '--config', './test/jest-e2e.template.json', ...cache],
      appDir,
      { env: { ...env, NODE_OPTIONS: '--experimental-vm-modules' } },
    );
  }
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
    const started = Date.now();
    if ((await run(npm, ['pack', '--ignore-scripts', '--pack-destination', packDir], root)).code !== 0) throw new Error('npm pack failed');
    const tarballs = readdirSync(packDir).filter((name) => name.endsWith('.tgz'));
    if (tarballs.length !== 1) throw new Error(`npm pack made ${tarballs.length} tarballs`);

    cpSync(fixture, appDir, { recursive: true, filter: (src) => !/[\\/](node_modules|package-lock\.json|dist)$/.test(src) });
    // package.json asks for file:./nestjs-duo.tgz: an installed copy, not a link to the repo.
    renameSync(join(packDir, tarballs[0]), join(appDir, 'nestjs-duo.tgz'));
    // The spec is type-checked here, against NestJS 11 and @types/jest: drop the repository's @ts-nocheck.
    const spec = join(appDir, 'test/app.e2e-spec.ts');
    writeFileSync(spec, readFileSync(spec, 'utf8').replace(NO_TS_CHECK, ''));
    // The template's Jest e2e config, without the line README asks for.
    const { transformIgnorePatterns: _line, ...template } = JSON.parse(readFileSync(join(appDir, 'test/jest-e2e.json'), 'utf8'));
    writeJson(join(appDir, 'test/jest-e2e.template.json'), template);

    if (!(await npmInstall([], appDir))) throw new Error('npm install failed');
    console.log(`packed and installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    await typeScriptChecks(appDir, work);
    for (const binary of nodes) await perNodeChecks(appDir, work, binary);
  } finally {
    if (keep) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (error) {
  record(false, `nest11 compat: ${error instanceof Error ? error.message : error}`);
}
const failed = results.filter((result) => !result.ok);
for (const result of failed) console.log(`FAILED: ${result.name}`);
console.log(`nest11 compat: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
