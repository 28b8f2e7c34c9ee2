/**
 * Benchmark 5: memory.
 *  a) The bytes a pending login adds to a session (in-session store): the
 *     session as the store serializes it (MemoryStore keeps JSON, as Redis
 *     session stores do), before and after the guard starts a login, one field
 *     at a time; and the bytes of the verified marker and of the completed-state
 *     entry the callback writes, each measured by taking it out of the JSON.
 *  b) The same logins with RedisTransactionStore (a throw-away redis-server on
 *     127.0.0.1): the session's key name plus its value (one record per
 *     pending login), and Redis's MEMORY USAGE of the key.
 *  c) The app's heap (after forced full GCs) before and after `logins`
 *     completed logins (BENCH_MEMORY_LOGINS, default 10,000), then after their
 *     transactions have expired. Each login ends with a logout, so the session
 *     store returns to empty and what is left is what nestjs-duo itself keeps.
 *     Expiry is reached with a fake clock: the app's Date.now() (and the
 *     emulator's clock) are moved forward past transactionTtlSeconds + the 60 s
 *     claim margin, then a few more logins let the store prune; no real waiting.
 */
import type { AppStats, RedisFootprint } from './app-process.js';
import { sessionIdOf } from './driver.js';
import { startStack, type Stack } from './stack.js';
import { figureRow, formatBytes, log, type ResultRow } from './stats.js';
import { RedisServer } from '../test/support/redis-server.js';

export interface MemoryOptions {
  logins?: number;
  concurrency?: number;
}

const TRANSACTION_TTL_SECONDS = 600;
/** Issue 14's targets. */
const REDIS_PENDING_TARGET = 300;
const MARKER_TARGET = 200;
const DUO_KEY = 'duo';

type Json = Record<string, unknown>;

async function sessionJson(stack: Stack, cookie: string): Promise<string> {
  const json = await stack.app.call<string | null>('sessionJson', sessionIdOf(cookie));
  if (json === null) throw new Error('memory benchmark: the session is not in the store');
  return json;
}

const bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/** What one part of the session's Duo data costs in the stored JSON: the JSON with it minus the JSON without it. */
function partBytes(json: string, remove: (duo: Json) => void): number {
  const session = JSON.parse(json) as Json;
  const duo = session[DUO_KEY] as Json;
  remove(duo);
  return bytes(json) - bytes(JSON.stringify(session));
}

/** One pending login's JSON, field by field (`"name":value,`), and the map entry around it. */
function pendingBreakdown(json: string): string {
  const pending = ((JSON.parse(json) as Json)[DUO_KEY] as Json).pending as Record<string, Json>;
  const [state, tx] = Object.entries(pending)[0]!;
  const fields = Object.entries(tx).map(([name, value]) => `${name} ${bytes(`"${name}":${JSON.stringify(value)},`)}`);
  return `entry key "${state.length}-char state": ${bytes(`${JSON.stringify(state)}:{},`)} B + fields: ${fields.join(', ')}`;
}

/** Starts `tabs` logins in one primary-login session (the guard's 303 to Duo each time). */
async function startLogins(stack: Stack, username: string, tabs: number, after: (cookie: string) => Promise<void>): Promise<{ cookie: string; starts: string[] }> {
  const { driver } = stack;
  const login = await driver.http('POST', '/login', undefined, { username });
  if (login.status !== 201 || !login.setCookie) throw new Error(`memory benchmark: the primary login answered HTTP ${login.status}`);
  const cookie = login.setCookie;
  const starts: string[] = [];
  for (let tab = 0; tab < tabs; tab++) {
    const start = await driver.http('GET', '/account', cookie);
    if (start.status !== 303 || !start.location) throw new Error(`memory benchmark: the guard answered HTTP ${start.status}`);
    starts.push(start.location);
    await after(cookie);
  }
  return { cookie, starts };
}

async function finishLogin(stack: Stack, cookie: string, start: string): Promise<string> {
  const back = new URL(await stack.emulator.call<string>('authorize', start));
  const callback = await stack.driver.http('GET', `${back.pathname}${back.search}`, cookie);
  if (callback.status !== 303 || !callback.setCookie) throw new Error(`memory benchmark: the callback answered HTTP ${callback.status}`);
  return callback.setCookie;
}

const verdict = (value: number, target: number): string => (value <= target ? 'met' : `MISSED by ${(((value - target) / target) * 100).toFixed(0)}%`);

async function sessionSizes(stack: Stack): Promise<ResultRow[]> {
  const jsons: string[] = [];
  const { cookie, starts } = await startLogins(stack, 'memory.user@example.com', 5, async (session) => {
    jsons.push(await sessionJson(stack, session));
  });
  const plain = await stack.driver.http('POST', '/login', undefined, { username: 'memory.user@example.com' });
  const plainBytes = bytes(await sessionJson(stack, plain.setCookie!));
  const sizes = jsons.map(bytes);
  // The first pending login also brings the session's binding (a random value later ones share).
  const first = sizes[0]! - plainBytes;
  const perNext = (sizes[4]! - sizes[0]!) / 4;
  const verifiedJson = await sessionJson(stack, await finishLogin(stack, cookie, starts[4]!));
  const marker = partBytes(verifiedJson, (duo) => delete duo.verified);
  const completed = partBytes(verifiedJson, (duo) => delete duo.completed);
  const verified = (JSON.parse(verifiedJson) as Json)[DUO_KEY] as Json;
  log(`memory (session): ${plainBytes} B with the primary login; ${sizes.join(', ')} B with 1-5 pending; ${bytes(verifiedJson)} B verified with 4 pending`);
  log(`memory (session): one pending login: ${pendingBreakdown(jsons[0]!)}`);
  log(`memory (session): verified marker ${JSON.stringify(verified.verified)}; completed ${JSON.stringify(verified.completed)}`);
  return [
    figureRow('5a. session store: bytes a pending login adds to the session', `${first} B (first, with the binding), ${perNext.toFixed(0)} B each next`, `session JSON ${plainBytes} B -> ${sizes[0]} B`),
    { ...figureRow('    the verified marker (session JSON)', `${marker} B`, `+ ${completed} B for the completed-state entry (reloads of the callback)`), target: `<= ${MARKER_TARGET} B`, verdict: verdict(marker, MARKER_TARGET) },
  ];
}

async function redisSizes(stack: Stack): Promise<ResultRow[]> {
  const footprints: RedisFootprint[] = [];
  const sessions: number[] = [];
  const plain = await stack.driver.http('POST', '/login', undefined, { username: 'memory.user@example.com' });
  const plainBytes = bytes(await sessionJson(stack, plain.setCookie!));
  await startLogins(stack, 'memory.user@example.com', 5, async (cookie) => {
    const footprint = await stack.app.call<RedisFootprint | null>('redisFootprint', sessionIdOf(cookie));
    if (!footprint) throw new Error('memory benchmark (Redis): no pending key in Redis after the guard started a login');
    footprints.push(footprint);
    sessions.push(bytes(await sessionJson(stack, cookie)));
  });
  const one = footprints[0]!;
  const perNext = (footprints[4]!.valueBytes - one.valueBytes) / 4;
  const perNextMemory = (footprints[4]!.memoryUsage - one.memoryUsage) / 4;
  const first = one.keyBytes + one.valueBytes;
  log(
    `memory (Redis): key ${JSON.stringify(one.key)} (${one.keyBytes} B); value ${footprints.map((f) => f.valueBytes).join(', ')} B with 1-5 pending; ` +
      `MEMORY USAGE ${footprints.map((f) => f.memoryUsage).join(', ')} B; session ${plainBytes} B -> ${sessions.join(', ')} B`,
  );
  return [
    {
      ...figureRow(
        '5b. Redis store: bytes per pending login in Redis (key + value)',
        `${first} B for a session's only one (key ${one.keyBytes} + value ${one.valueBytes}), ${perNext.toFixed(0)} B each next`,
        `MEMORY USAGE ${one.memoryUsage} B, +${perNextMemory.toFixed(0)} B each next; the session itself +${sessions[0]! - plainBytes} B (the binding)`,
      ),
      target: `<= ${REDIS_PENDING_TARGET} B`,
      verdict: verdict(first, REDIS_PENDING_TARGET),
    },
  ];
}

let userCounter = 0;

async function logins(stack: Stack, count: number, concurrency: number): Promise<void> {
  let next = 0;
  let failed = 0;
  let firstFailure = '';
  const browser = async (): Promise<void> => {
    while (next < count) {
      next++;
      const outcome = await stack.driver.login(`memory.user.${++userCounter}`, { logout: true });
      if (!outcome.ok) {
        failed++;
        firstFailure ||= `${outcome.failedAt} HTTP ${outcome.status}: ${outcome.reason}`;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, browser));
  if (failed > 0) throw new Error(`memory benchmark: ${failed} of ${count} logins failed; first: ${firstFailure}`);
}

async function heap(stack: Stack, count: number, concurrency: number): Promise<ResultRow> {
  log('memory: warm-up logins');
  await logins(stack, 1000, concurrency);
  const before = await stack.app.call<NodeJS.MemoryUsage>('gc');
  const started = performance.now();
  log(`memory: ${count} logins`);
  await logins(stack, count, concurrency);
  const seconds = (performance.now() - started) / 1000;
  const after = await stack.app.call<NodeJS.MemoryUsage>('gc');
  const sessionsAfter = (await stack.app.call<AppStats>('stats')).sessions;

  const jump = TRANSACTION_TTL_SECONDS + 120;
  await stack.app.call('advanceClock', jump * 1000);
  await stack.emulator.call('setClockOffset', jump);
  await logins(stack, 100, concurrency);
  const expired = await stack.app.call<NodeJS.MemoryUsage>('gc');

  const mib = (value: number): string => `${(value / 1024 / 1024).toFixed(1)} MiB`;
  log(
    `memory: heapUsed ${mib(before.heapUsed)} before, ${mib(after.heapUsed)} after ${count} logins (${(count / seconds).toFixed(0)}/s; ${sessionsAfter} sessions left), ` +
      `${mib(expired.heapUsed)} once expired; rss ${mib(before.rss)} / ${mib(after.rss)} / ${mib(expired.rss)}`,
  );
  return figureRow(
    `5c. app heap after ${count.toLocaleString('en-US')} logins (+logout), forced GC`,
    `${mib(before.heapUsed)} -> ${mib(after.heapUsed)} (${formatBytes(after.heapUsed - before.heapUsed)}, ${((after.heapUsed - before.heapUsed) / count).toFixed(0)} B/login)`,
    `after expiry (fake clock +${jump} s): ${mib(expired.heapUsed)} (${formatBytes(expired.heapUsed - before.heapUsed)} vs before)`,
  );
}

export async function benchMemory(options: MemoryOptions = {}): Promise<ResultRow[]> {
  const count = options.logins ?? Number(process.env.BENCH_MEMORY_LOGINS ?? 10_000);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error('BENCH_MEMORY_LOGINS must be a whole number of logins, 1 or more');
  const concurrency = options.concurrency ?? 16;
  const rows: ResultRow[] = [];

  // Redis first: without a redis-server the run stops at once, with the install command, not after the heap part.
  const redis = await RedisServer.start();
  try {
    const redisStack = await startStack({ app: { redisUrl: redis.url, duo: { transactionTtlSeconds: TRANSACTION_TTL_SECONDS } } });
    try {
      rows.push(...(await redisSizes(redisStack)));
    } finally {
      await redisStack.stop();
    }
  } finally {
    await redis.stop();
  }

  const stack = await startStack({ app: { fakeClock: true, duo: { transactionTtlSeconds: TRANSACTION_TTL_SECONDS } } });
  try {
    rows.unshift(...(await sessionSizes(stack)));
    rows.push(await heap(stack, count, concurrency));
  } finally {
    await stack.stop();
  }
  return rows;
}
