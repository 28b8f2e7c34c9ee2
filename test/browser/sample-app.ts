import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(ROOT, 'sample/dist/main.js');
const STARTUP_TIMEOUT_MS = 30_000;

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The test runs the built sample, as `npm start` does: refuse a missing or stale build instead of testing old code. */
export function assertSampleBuilt(): void {
  const hint = 'Run `npm run test:browser`, which builds the library and the sample first (npm run build && npm run build:sample).';
  if (!existsSync(join(ROOT, 'dist/index.js')) || !existsSync(join(ROOT, 'dist/testing/index.js'))) {
    throw new Error(`The library is not built (dist/ is missing). ${hint}`);
  }
  if (!existsSync(MAIN)) throw new Error(`The sample is not built (sample/dist/main.js is missing). ${hint}`);
  if (newestMtime(join(ROOT, 'sample/src')) > statSync(MAIN).mtimeMs) {
    throw new Error(`sample/dist is older than sample/src. ${hint}`);
  }
  if (newestMtime(join(ROOT, 'src')) > statSync(join(ROOT, 'dist/index.js')).mtimeMs) {
    throw new Error(`dist/ is older than src/. ${hint}`);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface SampleApp {
  /** http://localhost:PORT: the redirect URI's origin, where the session cookie lives. */
  baseUrl: string;
  /** The emulator's origin (its prompt page). */
  emulatorUrl: string;
  /** Everything the app printed so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `node sample/dist/main.js` as a child process on 127.0.0.1 and a free
 * port, with the emulator (no DUO_* variable), in an empty working directory so
 * that a developer's .env (perhaps with real Duo credentials) is not read.
 */
export async function startSampleApp(env: Record<string, string> = {}): Promise<SampleApp> {
  const port = await freePort();
  const cwd = mkdtempSync(join(tmpdir(), 'nestjs-duo-sample-'));
  const childEnv: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(childEnv)) {
    if (name.startsWith('DUO_') || name.startsWith('SAMPLE_')) delete childEnv[name];
  }
  Object.assign(childEnv, {
    NO_COLOR: '1',
    HOST: '127.0.0.1',
    PORT: String(port),
    SESSION_SECRET: randomBytes(32).toString('base64url'),
    ...env,
  });
  const child: ChildProcess = spawn(process.execPath, [MAIN], { cwd, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const baseUrl = `http://localhost:${port}`;
  const emulatorUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`The sample did not start within ${STARTUP_TIMEOUT_MS} ms:\n${output}`)), STARTUP_TIMEOUT_MS);
    const check = (): void => {
      const emulator = /LOCAL EMULATOR in prompt mode at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
      if (emulator && output.includes(`running at ${baseUrl}/`)) finish(undefined, emulator);
    };
    const onExit = (code: number | null): void => finish(new Error(`The sample exited (code ${code}) before it was ready:\n${output}`));
    function finish(error: Error | undefined, value?: string): void {
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(value!);
    }
    child.stdout!.on('data', check);
    child.once('exit', onExit);
  }).catch(async (error: unknown) => {
    child.kill('SIGKILL');
    await exited;
    rmSync(cwd, { recursive: true, force: true });
    throw error;
  });

  return {
    baseUrl,
    emulatorUrl,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}
