import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

const HOST = '127.0.0.1';

/**
 * A throwaway `redis-server` (Debian's package) on 127.0.0.1 and a free port,
 * nothing saved to disk. It can be stopped (killed), restarted on the same
 * port, and paused (SIGSTOP: a hung server that still accepts connections).
 */
export class RedisServer {
  #child?: ChildProcess;
  #output = '';
  #paused = false;

  private constructor(
    readonly port: number,
    private readonly binary: string,
  ) {}

  /** Starts a server; throws with the install command when `redis-server` is missing. */
  static async start(): Promise<RedisServer> {
    const binary = redisServerBinary();
    serverVersion(); // throws with the install command when the binary is missing
    // A free port can be taken between the probe and the bind: try a few.
    let lastError: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const server = new RedisServer(await freePort(), binary);
      try {
        await server.#spawn();
        return server;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError;
  }

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Kills the server at once (a crash): open connections drop, its data is lost. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    this.#paused = false;
    await exited;
  }

  /** Starts the server again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }

  /** Freezes the process: connections stay open, nothing answers. */
  pause(): void {
    this.#child?.kill('SIGSTOP');
    this.#paused = true;
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
    this.#paused = false;
  }

  async close(): Promise<void> {
    if (this.#paused) this.resume();
    await this.stop();
  }

  async #spawn(): Promise<void> {
    this.#output = '';
    const child = spawn(
      this.binary,
      ['--port', String(this.port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', tmpdir(), '--daemonize', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString()).slice(-4000);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    // Never leave a server behind when the test process ends.
    const reap = (): void => void child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('error', (error) => collect(Buffer.from(String(error))));
    child.once('exit', () => {
      process.removeListener('exit', reap);
      if (this.#child === child) this.#child = undefined;
    });
    this.#child = child;
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (this.#child !== child) throw new Error(`redis-server exited on port ${this.port}: ${this.#output.trim()}`);
      if (await ping(this.port)) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    child.kill('SIGKILL');
    throw new Error(`redis-server did not answer PING on port ${this.port} within 5 s: ${this.#output.trim()}`);
  }
}

/** The server the Redis suites run: REDIS_SERVER_BIN (valkey-server, for one), else Debian's redis-server. */
export function redisServerBinary(): string {
  return process.env.REDIS_SERVER_BIN ?? 'redis-server';
}

/**
 * The CLI of that server, for `--cluster create`: REDIS_CLI_BIN, else the
 * `-cli` next to REDIS_SERVER_BIN (`.../valkey-server` gives `.../valkey-cli`),
 * else redis-cli.
 */
export function redisCliBinary(): string {
  if (process.env.REDIS_CLI_BIN) return process.env.REDIS_CLI_BIN;
  const server = process.env.REDIS_SERVER_BIN;
  if (!server || !basename(server).endsWith('-server')) return 'redis-cli';
  const cli = basename(server).replace(/-server$/, '-cli');
  return server.includes('/') ? join(dirname(server), cli) : cli;
}

let version: string | undefined;

/** The server's `--version` line (`Redis server v=7.0.15 ...`, `Valkey server v=8.0.1 ...`); throws with the install command when it cannot run. */
export function serverVersion(): string {
  if (version !== undefined) return version;
  const binary = redisServerBinary();
  const probe = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `The Redis tests need a real redis-server, and "${binary}" could not be run (${probe.error?.message ?? `exit ${probe.status}`}). ` +
        'Install it with `apt-get install -y redis-server` (Debian/Ubuntu), or point REDIS_SERVER_BIN at one (valkey-server works too).',
    );
  }
  version = probe.stdout.trim();
  return version;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True when something on the port answers PING with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: HOST, port });
    let answer = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}
