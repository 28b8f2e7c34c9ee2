// `npm run test:all`: every test, on a fresh machine too.
//
//   1. prerequisites: redis-server and Chromium (/usr/bin/chromium). Missing ones are
//      installed with apt-get when that is possible (Debian/Ubuntu, as root); otherwise
//      one line says what to install and why, and the steps that need it fail.
//   2. build: the library and the sample, once (the steps below do not build again).
//   3. unit + e2e (vitest), Redis, NestJS 11 compatibility (CommonJS, Jest), browser.
//   4. with --nodes: unit + e2e on each of those Node versions too (binaries from the
//      npm registry's `node` package, cached in .cache/node: scripts/node-versions.mjs),
//      and the NestJS 11 / Jest checks on each of them.
//
// Every step runs even when an earlier one failed; a summary follows, and the exit
// code is 1 when any step failed.
//
//   node scripts/test-all.mjs [--nodes=20,22,24,26] [--skip=redis,nest11,browser,unit]
//
// Environment: TEST_ALL_NO_INSTALL=1 never runs apt-get; REDIS_SERVER_BIN and
// CHROMIUM_PATH point at other binaries (then nothing is installed for them).

import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureNode, envForNode, ROOT } from './node-versions.mjs';

const STEP_IDS = ['unit', 'redis', 'nest11', 'browser'];
const USAGE = 'usage: node scripts/test-all.mjs [--nodes=20,22,24,26] [--skip=unit,redis,nest11,browser]';

function parseArgs(argv) {
  const options = { nodes: [], skip: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? '';
    const list = () => value().split(',').map((item) => item.trim()).filter(Boolean);
    if (flag === '--nodes') options.nodes.push(...list());
    else if (flag === '--skip') list().forEach((id) => options.skip.add(id));
    else if (flag === '--help' || flag === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`unknown argument ${argv[i]}\n${USAGE}`);
      process.exit(2);
    }
  }
  for (const id of options.skip) {
    if (!STEP_IDS.includes(id)) {
      console.error(`--skip: unknown step "${id}" (steps: ${STEP_IDS.join(', ')})`);
      process.exit(2);
    }
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const wants = (id) => !options.skip.has(id);
const started = Date.now();
const summary = [];
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';
const vitest = join(ROOT, 'node_modules/vitest/vitest.mjs');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(command, args, { env = process.env } = {}) {
  return new Promise((resolvePromise) => {
    console.log(`$ ${[command, ...args].join(' ')}`);
    const child = spawn(command, args, { cwd: ROOT, env, stdio: 'inherit', shell: process.platform === 'win32' && command === npm });
    child.on('error', (error) => {
      console.error(error.message);
      resolvePromise(1);
    });
    child.on('close', (code, signal) => resolvePromise(code ?? (signal ? 1 : 0)));
  });
}

/** Runs one step, records it in the summary, never throws. `body` resolves to true/false or { ok, note }. */
async function step(name, body) {
  console.log(`\n━━━━ ${name}`);
  const at = Date.now();
  let ok = false;
  let note = '';
  try {
    const result = await body();
    ({ ok, note = '' } = typeof result === 'object' ? result : { ok: result });
  } catch (error) {
    note = error instanceof Error ? error.message : String(error);
    console.error(note);
  }
  summary.push({ name, ok, note, ms: Date.now() - at });
  console.log(`━━━━ ${name}: ${ok ? 'ok' : 'FAILED'} (${seconds(Date.now() - at)})${note ? ` - ${note}` : ''}`);
  return ok;
}

/** Fails the step without running it, with the reason in the summary. */
function notRun(name, note) {
  summary.push({ name, ok: false, note, ms: 0 });
  console.log(`\n━━━━ ${name}: FAILED, not run - ${note}`);
}

// ---------------------------------------------------------------- prerequisites

const haveRedis = () => spawnSync(REDIS_SERVER_BIN, ['--version'], { stdio: 'ignore' }).status === 0;
function haveChromium() {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const prerequisites = [
  {
    step: 'redis',
    name: 'redis-server',
    present: haveRedis,
    aptPackage: process.env.REDIS_SERVER_BIN ? undefined : 'redis-server',
    why: 'the Redis tests start a real redis-server (Redis 7.0 or later: the cluster tests use --cluster-port and ADDSLOTSRANGE)',
    how: 'apt-get install -y redis-server (Debian/Ubuntu), brew install redis (macOS), or set REDIS_SERVER_BIN to a redis-server binary',
  },
  {
    step: 'browser',
    name: `Chromium (${CHROMIUM_PATH})`,
    present: haveChromium,
    aptPackage: process.env.CHROMIUM_PATH ? undefined : 'chromium',
    why: "the browser test drives a real Chromium through playwright-core, which never downloads one",
    how: 'apt-get install -y chromium (Debian), or set CHROMIUM_PATH to a Chromium or Chrome binary',
  },
];
/** step id -> why it cannot run */
const unmet = new Map();

async function checkPrerequisites() {
  const needed = prerequisites.filter((item) => wants(item.step));
  let missing = needed.filter((item) => !item.present());
  if (missing.length === 0) return { ok: true, note: needed.length ? 'all present' : 'none needed' };

  const packages = missing.map((item) => item.aptPackage).filter(Boolean);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  const apt = process.platform === 'linux' && existsSync('/usr/bin/apt-get');
  let tried = false;
  if (packages.length && apt && root && !process.env.TEST_ALL_NO_INSTALL) {
    console.log(`Installing Debian packages: ${packages.join(' ')}`);
    const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if ((await run('/usr/bin/apt-get', ['update', '-qq'], { env: aptEnv })) === 0) {
      await run('/usr/bin/apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { env: aptEnv });
    }
    tried = true;
    missing = missing.filter((item) => !item.present());
  } else if (packages.length && apt) {
    console.log(
      `${root ? 'TEST_ALL_NO_INSTALL is set' : 'Not root'}: apt-get is not run. As root: apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`,
    );
  }
  for (const item of missing) {
    const still = tried && item.aptPackage ? ` (still, after apt-get install ${item.aptPackage})` : '';
    const line = `${item.name} is missing${still}: ${item.why}. Install it: ${item.how}.`;
    console.log(line);
    unmet.set(item.step, `${item.name} is missing (install it: ${item.how})`);
  }
  return missing.length ? { ok: false, note: `missing: ${missing.map((item) => item.name).join(', ')}` } : { ok: true, note: `installed ${packages.join(', ')}` };
}

// ---------------------------------------------------------------- the Node matrix

/** Specs already covered by this process's node (same major, or the exact version). */
const current = process.version.replace(/^v/, '');
const isCurrent = (spec) => (spec.includes('.') ? spec === current : spec === current.split('.')[0]);
const extraNodes = [...new Set(options.nodes)].filter((spec) => !isCurrent(spec));
// Network-bound: start now, while the build and the first tests use the CPU.
const installs = new Map(
  extraNodes.map((spec) => {
    const promise = ensureNode(spec);
    promise.catch(() => {});
    return [spec, promise];
  }),
);

/** Waits for the Node installs; returns spec -> { binary, version } for the ones that worked. */
async function installedNodes() {
  const ready = new Map();
  for (const [spec, promise] of installs) {
    try {
      const node = await promise;
      ready.set(spec, node);
    } catch {
      // reported by the matrix step of that spec
    }
  }
  return ready;
}

// ---------------------------------------------------------------- the run

console.log(`test:all on Node ${process.version} (${process.execPath})${extraNodes.length ? `; also Node ${extraNodes.join(', ')}` : ''}`);

await step('prerequisites (redis-server, Chromium)', checkPrerequisites);
const versions = [
  wants('redis') && haveRedis() ? spawnSync(REDIS_SERVER_BIN, ['--version'], { encoding: 'utf8' }).stdout.split(' ').slice(0, 3).join(' ') : undefined,
  wants('browser') && haveChromium() ? spawnSync(CHROMIUM_PATH, ['--version'], { encoding: 'utf8' }).stdout?.trim() : undefined,
].filter(Boolean);
if (versions.length) console.log(versions.join(', '));

const needsBuild = ['redis', 'nest11', 'browser'].some(wants);
let built = true;
if (needsBuild) {
  built = await step('build (library and sample, once)', async () => (await run(npm, ['run', 'build'])) === 0 && (await run(npm, ['run', 'build:sample'])) === 0);
}

const unitName = `unit + e2e on Node ${process.version}`;
if (wants('unit')) await step(unitName, async () => (await run(process.execPath, [vitest, 'run'])) === 0);

function testStep(id, name, body) {
  if (!wants(id)) return undefined;
  if (!built) return notRun(name, 'the build failed');
  if (unmet.has(id)) return notRun(name, unmet.get(id));
  return step(name, body);
}

await testStep('redis', 'Redis (real redis-server)', async () => (await run(process.execPath, [vitest, 'run', '--config', 'test/redis/vitest.config.ts'])) === 0);

await testStep('nest11', `NestJS 11 CommonJS app, Jest e2e, TypeScript settings${installs.size ? ' (every Node)' : ''}`, async () => {
  const ready = await installedNodes();
  const binaries = [process.execPath, ...[...ready.values()].map((node) => node.binary)];
  return (await run(process.execPath, ['test/compat/run-nest11.mjs', ...binaries.map((binary) => `--node=${binary}`)])) === 0;
});

await testStep('browser', 'browser (the sample in Chromium)', async () => (await run(process.execPath, [vitest, 'run', '--config', 'test/browser/vitest.config.ts'])) === 0);

for (const spec of new Set(options.nodes)) {
  if (isCurrent(spec)) {
    if (wants('unit')) console.log(`\nNode ${spec}: this node (${process.version}); see "${unitName}".`);
    continue;
  }
  const name = `unit + e2e on Node ${spec}`;
  if (!wants('unit')) continue;
  let node;
  try {
    node = await installs.get(spec);
  } catch (error) {
    notRun(name, `Node ${spec} could not be installed: ${error instanceof Error ? error.message.split('\n')[0] : error}`);
    if (error instanceof Error) console.log(error.message);
    continue;
  }
  await step(`unit + e2e on Node ${node.version}`, async () => (await run(node.binary, [vitest, 'run'], { env: envForNode(node.binary) })) === 0);
}

// ---------------------------------------------------------------- summary

const failed = summary.filter((item) => !item.ok);
const width = Math.max(...summary.map((item) => item.name.length));
console.log(`\ntest:all summary (${seconds(Date.now() - started)} in all)`);
for (const item of summary) {
  console.log(`  ${item.ok ? 'ok    ' : 'FAILED'}  ${item.name.padEnd(width)}  ${seconds(item.ms).padStart(7)}${item.note ? `  ${item.note}` : ''}`);
}
console.log(failed.length ? `${failed.length} of ${summary.length} steps failed.` : `All ${summary.length} steps passed.`);
process.exit(failed.length ? 1 : 0);
