import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertSampleBuilt, ROOT } from '../browser/sample-app.js';

const MAIN = join(ROOT, 'sample/dist/main.js');
const STARTUP_TIMEOUT_MS = 15_000;

/** assertSampleBuilt(), with the build commands for this suite (it does not build, unlike test:browser). */
export function assertSampleBuiltForRedisTests(): void {
  try {
    assertSampleBuilt();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `${message.replace(/ Run `npm run test:browser`.*$/s, '')} The cluster test runs the built sample: ` +
        '`npm run build && npm run build:sample` first, then `npm run test:redis`.',
    );
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` consecutive free ports on 127.0.0.1, below Linux's ephemeral range (where the emulator and redis-server bind). */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    let free = true;
    for (let port = base; free && port < base + count; port++) free = await portIsFree(port);
    if (free) return base;
  }
  throw new Error(`No ${count} consecutive free ports found on 127.0.0.1.`);
}

/** The environment of a sample child: the test's own, minus any DUO_* / SAMPLE_* / REDIS_URL, plus `env`. */
function childEnv(env: Record<string, string>): Record<string, string | undefined> {
  const result: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(result)) {
    if (name.startsWith('DUO_') || name.startsWith('SAMPLE_') || name === 'REDIS_URL') delete result[name];
  }
  return { ...result, NO_COLOR: '1', HOST: '127.0.0.1', ...env };
}

export interface SampleProcess {
  pid: number;
  /** The emulator's origin, from the banner. */
  emulatorUrl: string;
  output(): string;
  /** SIGTERM (by pid), then waits for the exit; SIGKILL after 10 s. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `node sample/dist/main.js` in an empty temporary directory (no developer's
 * .env is read), ready once its banner is printed.
 */
export async function startSample(env: Record<string, string>): Promise<SampleProcess> {
  const cwd = mkdtempSync(join(tmpdir(), 'nestjs-duo-cluster-'));
  const child: ChildProcess = spawn(process.execPath, [MAIN], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const cleanup = (): void => rmSync(cwd, { recursive: true, force: true });
  // Never leave the sample behind when the test process ends.
  const reap = (): void => void child.kill('SIGKILL');
  process.once('exit', reap);
  void exited.then(() => process.removeListener('exit', reap));

  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The sample did not start within ${STARTUP_TIMEOUT_MS} ms:\n${output}`)), STARTUP_TIMEOUT_MS);
    const check = (): void => {
      if (!output.includes('Stop with Ctrl+C.')) return;
      clearTimeout(timer);
      const emulator = /LOCAL EMULATOR in prompt mode at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      if (emulator) resolve(emulator);
      else reject(new Error(`The banner names no emulator:\n${output}`));
    };
    child.stdout!.on('data', check);
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`The sample exited (code ${code}) before it was ready:\n${output}`));
    });
  });
  let emulatorUrl: string;
  try {
    emulatorUrl = await ready;
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    cleanup();
    throw error;
  }

  return {
    pid: child.pid!,
    emulatorUrl,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, 'SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited.finally(() => clearTimeout(timer));
      }
      cleanup();
      return exited;
    },
  };
}

/** Runs the sample where it is expected not to start: its exit code and output (SIGKILL after `timeoutMs`). */
export async function runSampleExpectingExit(env: Record<string, string>, timeoutMs = 10_000): Promise<{ code: number | null; output: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'nestjs-duo-cluster-'));
  try {
    const child = spawn(process.execPath, [MAIN], { cwd, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.once('close', (exitCode) => resolve(exitCode)));
    clearTimeout(timer);
    return { code, output };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}
