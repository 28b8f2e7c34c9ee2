/**
 * Child process: a Nest app as a user would write it (express-session, a
 * primary login, DuoModule, `@RequireSecondFactor()` and `@DuoCallback()`),
 * built by the tests' app builder (test/support/app.ts), driven over IPC (see
 * rpc.ts) for its measurements. Configured by the BENCH_APP environment
 * variable (JSON AppProcessConfig).
 */
import 'reflect-metadata';
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { Session as InspectorSession } from 'node:inspector/promises';
import { AsyncLocalStorage } from 'node:async_hooks';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Controller, Get, Injectable, Req, UseGuards, type CanActivate, type LoggerService } from '@nestjs/common';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import { RedisTransactionStore, type DuoEvent, type DuoModuleOptions } from '../src/index.js';
import { DUO_SESSION_KEY } from '../src/duo.constants.js';
import { DuoContext } from '../src/duo.context.js';
import { AccountController, CallbackController, PrimaryLoginController, REDIRECT_URI, buildDuoTestApp } from '../test/support/app.js';
import { serveRpc } from './rpc.js';
import { handLoginController } from './hand-login.js';

export interface AppProcessConfig {
  duo: Partial<DuoModuleOptions> & Pick<DuoModuleOptions, 'clientId' | 'clientSecret' | 'apiBaseUrl'>;
  /** Count passed logins per username (grows with every user: not for the memory benchmark). */
  trackUsers?: boolean;
  /** Let the parent move this process's Date.now() forward (memory benchmark). */
  fakeClock?: boolean;
  /** Time every request inside the app, from its arrival to the end of the answer (load run). */
  timeRequests?: boolean;
  /** Keep pending logins in this Redis (RedisTransactionStore, node-redis client) instead of the session (memory benchmark). */
  redisUrl?: string;
  /** With redisUrl: keep the sessions in that Redis too (connect-redis 9, the same client), as several instances would. */
  redisSessions?: boolean;
  /**
   * Count the process's CPU time of each request, from the server's 'request' event (before Express
   * and Nest see it) to the answer's 'finish', per path (guard benchmark, sequential requests only:
   * with several requests in flight their CPU would overlap).
   */
  requestCpu?: boolean;
}

/** CPU of the requests to one path since the last takeRequestCpu (µs, user + system, whole process). */
export interface RequestCpu {
  count: number;
  cpuUs: number;
}

/** One session's pending logins in Redis: the key and its value, and what Redis itself counts for them. */
export interface RedisFootprint {
  key: string;
  keyBytes: number;
  valueBytes: number;
  /** MEMORY USAGE of the key (key, value and Redis's own bookkeeping). */
  memoryUsage: number;
}

/**
 * Per path: requests answered, the longest time one spent in the app, and each
 * one's time in the app minus the time it waited on calls to Duo (DuoClient's
 * healthCheck and exchangeAuthorizationCode, wall time: the emulator's answer,
 * the loopback and our own signing and parsing in those calls).
 */
export type RequestTimes = Record<string, { count: number; maxMs: number; withoutDuoMs: number[]; duoMs: number[] }>;

export interface AppInfo {
  baseUrl: string;
}

export interface AppStats {
  memory: NodeJS.MemoryUsage;
  cpu: NodeJS.CpuUsage;
  /** Calls to Duo in flight now (DuoClient.inFlight). */
  inFlight: number;
  /** Highest inFlight seen by the 5 ms sampler since the last resetPeaks. */
  peakInFlight: number;
  /** Open file descriptors of this process (sockets included). */
  fds: number;
  /** Active libuv handles by type (TCPSocketWrap, TLSWrap, Timeout, ...). */
  resources: Record<string, number>;
  sessions: number;
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  logs: Record<string, number>;
}

export interface AppEvents {
  promptStarted: number;
  passed: number;
  failed: Record<string, number>;
  /** With trackUsers: usernames that passed more than once. */
  passedTwice: number;
  distinctPassed: number;
}

const config = JSON.parse(process.env.BENCH_APP ?? '{}') as AppProcessConfig;

const realNow = Date.now;
let clockOffsetMs = 0;
if (config.fakeClock) Date.now = () => realNow() + clockOffsetMs;

const events: AppEvents = { promptStarted: 0, passed: 0, failed: {}, passedTwice: 0, distinctPassed: 0 };
const passedUsers = new Map<string, number>();
function onEvent(event: DuoEvent): void {
  if (event.type === 'prompt_started') events.promptStarted++;
  else if (event.type === 'second_factor_passed') {
    events.passed++;
    if (config.trackUsers) {
      const seen = (passedUsers.get(event.username) ?? 0) + 1;
      passedUsers.set(event.username, seen);
      if (seen === 1) events.distinctPassed++;
      if (seen === 2) events.passedTwice++;
    }
  } else if (event.type === 'second_factor_failed') events.failed[event.code] = (events.failed[event.code] ?? 0) + 1;
}

/** Counts log lines by level; prints the first few errors. */
class CountingLogger implements LoggerService {
  readonly counts: Record<string, number> = {};
  #printed = 0;
  #count(level: string, message: unknown): void {
    this.counts[level] = (this.counts[level] ?? 0) + 1;
    if ((level === 'error' || level === 'fatal') && this.#printed++ < 5) process.stderr.write(`[app] ${level}: ${String(message)}\n`);
  }
  log(message: unknown): void { this.#count('log', message); }
  error(message: unknown): void { this.#count('error', message); }
  warn(message: unknown): void { this.#count('warn', message); }
  debug(message: unknown): void { this.#count('debug', message); }
  verbose(message: unknown): void { this.#count('verbose', message); }
  fatal(message: unknown): void { this.#count('fatal', message); }
}

type Req = Record<string, any>;

/** A guard that lets everything through, synchronously: what Nest itself costs for a route with one guard. */
@Injectable()
class AllowGuard implements CanActivate {
  canActivate(): boolean {
    return true;
  }
}

/** The account page without the decorator: the baseline of the guard-overhead benchmark; and with a guard that does nothing. */
@Controller()
class OpenController {
  @Get('open')
  open(@Req() req: Req): string {
    return `account of ${req.user.username}`;
  }

  @Get('noop-guard')
  @UseGuards(AllowGuard)
  noopGuard(@Req() req: Req): string {
    return `account of ${req.user.username}`;
  }
}

const logger = new CountingLogger();
const memoryStore = new session.MemoryStore();
let requestTimes: RequestTimes = {};
/** First of all middleware: from the request's arrival in the app to the end of its answer. */
const duoWait = new AsyncLocalStorage<{ ms: number }>();
function timeRequest(req: Req, res: { once(event: string, listener: () => void): void }, next: () => void): void {
  const started = performance.now();
  const path = String(req.originalUrl ?? req.url ?? '').split('?', 1)[0]!;
  const waited = { ms: 0 };
  res.once('close', () => {
    const ms = performance.now() - started;
    const entry = (requestTimes[path] ??= { count: 0, maxMs: 0, withoutDuoMs: [], duoMs: [] });
    entry.count++;
    entry.maxMs = Math.max(entry.maxMs, ms);
    entry.withoutDuoMs.push(ms - waited.ms);
    entry.duoMs.push(waited.ms);
  });
  duoWait.run(waited, next);
}
/** Adds the wall time of a call to Duo to the request that made it (a cached health check that other requests share counts for the one that started it). */
function timeDuoCalls(client: Record<'healthCheck' | 'exchangeAuthorizationCode', (...args: never[]) => Promise<unknown>>): void {
  for (const name of ['healthCheck', 'exchangeAuthorizationCode'] as const) {
    const original = client[name].bind(client) as (...args: unknown[]) => Promise<unknown>;
    Object.defineProperty(client, name, {
      configurable: true,
      value: async (...args: unknown[]) => {
        const waited = duoWait.getStore();
        const started = performance.now();
        try {
          return await original(...args);
        } finally {
          if (waited) waited.ms += performance.now() - started;
        }
      },
    });
  }
}
const redis = config.redisUrl === undefined ? undefined : createClient({ url: config.redisUrl, disableOfflineQueue: true });
if (redis) {
  redis.on('error', (error: Error) => process.stderr.write(`[app] redis: ${error.message}\n`));
  await redis.connect();
}
const redisStore = redis ? new RedisTransactionStore(redis) : undefined;
if (config.redisSessions && !redis) throw new Error('redisSessions needs redisUrl');
const store = config.redisSessions && redis ? new RedisStore({ client: redis }) : memoryStore;
const { app, baseUrl } = await buildDuoTestApp({
  duo: { redirectUri: REDIRECT_URI, ...config.duo, onEvent, ...(redisStore ? { transactionStore: redisStore } : {}) } as DuoModuleOptions,
  // In the order of a user's controller: login, logout, account, open, callback.
  controllers: [
    PrimaryLoginController,
    AccountController,
    OpenController,
    CallbackController,
    handLoginController({ clientId: String(config.duo.clientId), clientSecret: String(config.duo.clientSecret), apiBaseUrl: String(config.duo.apiBaseUrl) }),
  ],
  bootstrap: 'factory',
  logger,
  session: { store },
  beforeMiddleware: (created) => {
    if (config.timeRequests) created.use(timeRequest);
  },
});
// As behind a load balancer: keep the load generator's connections open between its requests.
const server = app.getHttpServer() as { keepAliveTimeout: number; headersTimeout: number };
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
let requestCpu: Record<string, RequestCpu> = {};
if (config.requestCpu) {
  // First of the server's listeners, so the CPU of everything the app does for a request is inside the window.
  (server as unknown as import('node:http').Server).prependListener('request', (req, res) => {
    const started = process.cpuUsage();
    const path = String(req.url ?? '').split('?', 1)[0]!;
    res.once('finish', () => {
      const used = process.cpuUsage(started);
      const entry = (requestCpu[path] ??= { count: 0, cpuUs: 0 });
      entry.count++;
      entry.cpuUs += used.user + used.system;
    });
  });
}
const duo = app.get(DuoContext);
if (config.timeRequests) timeDuoCalls(duo.client as never);

let profiler: InspectorSession | undefined;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let peakInFlight = 0;
const sampler = setInterval(() => {
  peakInFlight = Math.max(peakInFlight, duo.client.inFlight);
}, 5);
sampler.unref();

/** MemoryStore's own map: session id -> the JSON string it stores. */
const storeSessions = (): Record<string, string | undefined> => (memoryStore as unknown as { sessions: Record<string, string | undefined> }).sessions;

function stats(): AppStats {
  const resources: Record<string, number> = {};
  for (const name of process.getActiveResourcesInfo()) resources[name] = (resources[name] ?? 0) + 1;
  let fds = -1;
  try {
    fds = readdirSync('/proc/self/fd').length;
  } catch {
    // Not Linux: leave -1.
  }
  return {
    memory: process.memoryUsage(),
    cpu: process.cpuUsage(),
    inFlight: duo.client.inFlight,
    peakInFlight,
    fds,
    resources,
    sessions: Object.keys(storeSessions()).length,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    loopDelayMaxMs: loopDelay.max / 1e6,
    logs: { ...logger.counts },
  };
}

/**
 * This process's TCP connections to `port` (Duo's), from /proc (Linux): the
 * sockets among our file descriptors whose remote end is that port. -1 elsewhere.
 */
function socketsTo(port: number): number {
  try {
    const inodes = new Set<string>();
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
        if (match) inodes.add(match[1]!);
      } catch {
        // The descriptor closed meanwhile.
      }
    }
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    let count = 0;
    for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        if (fields.length < 10) continue;
        if (fields[2]!.endsWith(`:${hexPort}`) && inodes.has(fields[9]!)) count++;
      }
    }
    return count;
  } catch {
    return -1;
  }
}

/** Full garbage collections until the heap stops shrinking. */
async function collect(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('start the app process with --expose-gc');
  let last = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 10; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    const used = process.memoryUsage().heapUsed;
    if (used >= last - 1024) break;
    last = used;
  }
  return process.memoryUsage();
}

/** The serialized size of one session, as the store keeps it (MemoryStore keeps JSON strings, as Redis stores do). */
function sessionBytes(sid: string): number {
  const stored = storeSessions()[sid];
  return stored === undefined ? -1 : Buffer.byteLength(stored);
}

/** The Redis key of a session's pending logins (named by the session's binding) and its size. */
async function redisFootprint(sid: string): Promise<RedisFootprint | null> {
  if (!redis || !redisStore) throw new Error('redisUrl is not set');
  const stored = storeSessions()[sid];
  if (stored === undefined) return null;
  const binding = (JSON.parse(stored) as Record<string, { binding?: string } | undefined>)[DUO_SESSION_KEY]?.binding;
  if (typeof binding !== 'string') return null;
  const key = redisStore.key(binding);
  const value = await redis.get(key);
  if (value === null) return null;
  const memoryUsage = Number(await redis.sendCommand(['MEMORY', 'USAGE', key, 'SAMPLES', '0']));
  return { key, keyBytes: Buffer.byteLength(key), valueBytes: Buffer.byteLength(value), memoryUsage };
}

serveRpc(
  { baseUrl } satisfies AppInfo,
  {
    stats,
    gc: collect,
    events: () => events,
    resetPeaks: () => {
      peakInFlight = duo.client.inFlight;
      loopDelay.reset();
    },
    sessionBytes,
    socketsTo,
    /** The request times since the last call, then starts afresh. */
    takeRequestTimes: () => {
      const taken = requestTimes;
      requestTimes = {};
      return taken;
    },
    /** The per-request CPU since the last call (requestCpu), then starts afresh. */
    takeRequestCpu: () => {
      const taken = requestCpu;
      requestCpu = {};
      return taken;
    },
    sessionJson: (sid: string) => storeSessions()[sid] ?? null,
    redisFootprint,
    /** Starts V8's CPU profiler in this process (the parent decides what section it covers). */
    profileStart: async () => {
      profiler ??= new InspectorSession();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
      await profiler.post('Profiler.start');
    },
    /** Stops it and writes the profile (a .cpuprofile, as --cpu-prof writes) to `path`. */
    profileStop: async (path: string) => {
      if (!profiler) throw new Error('profileStart was not called');
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      writeFileSync(path, JSON.stringify(profile));
      return path;
    },
    advanceClock: (ms: number) => {
      if (!config.fakeClock) throw new Error('fakeClock is off');
      clockOffsetMs += ms;
      return clockOffsetMs;
    },
  },
  async () => {
    clearInterval(sampler);
    await app.close();
    redis?.destroy();
  },
);
