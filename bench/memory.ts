/**
 * Benchmark 5: memory.
 *  a) The bytes a pending transaction adds to a session: the session as the
 *     store serializes it (MemoryStore keeps JSON, as Redis stores do), before
 *     and after the guard starts a login; and what the verified marker costs.
 *  b) The app's heap (after forced full GCs) before and after 10,000 completed
 *     logins, then after their transactions have expired. Each login ends with
 *     a logout, so the session store returns to empty and what is left is what
 *     nestjs-duo itself keeps. Expiry is reached with a fake clock: the app's
 *     Date.now() (and the emulator's clock) are moved forward past
 *     transactionTtlSeconds + the 60 s claim margin, then a few more logins let
 *     the store prune; no real waiting.
 */
import type { AppStats } from './app-process.js';
import { sessionIdOf } from './driver.js';
import { startStack, type Stack } from './stack.js';
import { figureRow, formatBytes, log, type ResultRow } from './stats.js';

export interface MemoryOptions {
  logins?: number;
  concurrency?: number;
}

const TRANSACTION_TTL_SECONDS = 600;

async function sessionBytes(stack: Stack, cookie: string): Promise<number> {
  return stack.app.call<number>('sessionBytes', sessionIdOf(cookie));
}

async function sessionSizes(stack: Stack): Promise<ResultRow[]> {
  const { driver } = stack;
  const login = await driver.http('POST', '/login', undefined, { username: 'memory.user@example.com' });
  const cookie = login.setCookie!;
  const plain = await sessionBytes(stack, cookie);
  const starts: string[] = [];
  const sizes: number[] = [];
  for (let tab = 0; tab < 5; tab++) {
    const start = await driver.http('GET', '/account', cookie);
    if (start.status !== 303 || !start.location) throw new Error(`memory benchmark: the guard answered HTTP ${start.status}`);
    starts.push(start.location);
    sizes.push(await sessionBytes(stack, cookie));
  }
  // The first pending transaction also brings the session's binding (a random value shared by later ones).
  const first = sizes[0]! - plain;
  const perNext = (sizes[4]! - sizes[0]!) / 4;
  const back = new URL(await stack.emulator.call<string>('authorize', starts[4]!));
  const callback = await driver.http('GET', `${back.pathname}${back.search}`, cookie);
  if (callback.status !== 303 || !callback.setCookie) throw new Error(`memory benchmark: the callback answered HTTP ${callback.status}`);
  const verified = await sessionBytes(stack, callback.setCookie);
  // After the callback: 4 pending (other tabs) + the verified marker + the completed-state entry.
  const verifiedCost = verified - (sizes[3]!);
  log(`memory: session ${plain} B with the primary login; ${sizes.join(', ')} B with 1-5 pending; ${verified} B verified with 4 pending`);
  return [
    figureRow('5a. bytes a pending transaction adds to a session', `${first} B (first, with binding), ${perNext.toFixed(0)} B each next`, `session JSON ${plain} B -> ${sizes[0]} B`),
    figureRow('    bytes the verified marker adds (after the callback)', `${verifiedCost} B`, 'verified marker + completed-state entry'),
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

export async function benchMemory(options: MemoryOptions = {}): Promise<ResultRow[]> {
  const count = options.logins ?? 10_000;
  const concurrency = options.concurrency ?? 16;
  const stack = await startStack({ app: { fakeClock: true, duo: { transactionTtlSeconds: TRANSACTION_TTL_SECONDS } } });
  try {
    const rows = await sessionSizes(stack);

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

    const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    log(
      `memory: heapUsed ${mib(before.heapUsed)} before, ${mib(after.heapUsed)} after ${count} logins (${(count / seconds).toFixed(0)}/s; ${sessionsAfter} sessions left), ` +
        `${mib(expired.heapUsed)} once expired; rss ${mib(before.rss)} / ${mib(after.rss)} / ${mib(expired.rss)}`,
    );
    rows.push(
      figureRow(
        `5b. app heap after ${count.toLocaleString('en-US')} logins (+logout), forced GC`,
        `${mib(before.heapUsed)} -> ${mib(after.heapUsed)} (${formatBytes(after.heapUsed - before.heapUsed)}, ${((after.heapUsed - before.heapUsed) / count).toFixed(0)} B/login)`,
        `after expiry (fake clock +${jump} s): ${mib(expired.heapUsed)} (${formatBytes(expired.heapUsed - before.heapUsed)} vs before)`,
      ),
    );
    return rows;
  } finally {
    await stack.stop();
  }
}
