/**
 * Benchmark 7 (issue 14 item 2): the app CPU of the second factor of a login
 * against the app CPU of three plain requests through the same app and session
 * store.
 *
 * A login here is what the issue counts: the protected page (the guard's 303
 * to Duo), the callback (code exchange, 303 back) and the protected page again
 * (200); the primary login (POST /login) that makes each session is done before
 * the measured section, and Duo's side runs in the emulator's process, so its
 * CPU is not counted. The baseline is three GET /open (the same handler, not
 * decorated) per primary-login session, made the same way. A third side is
 * the floor: the same login hand-rolled in the same app (bench/hand-login.ts:
 * synchronous HMACs, the same checks, the session regenerated). Rounds turn
 * which side goes first; each ratio is the median of the per-round ratios.
 *
 * Stores: `session` (pending logins in the session, express-session's
 * MemoryStore) or `redis` (sessions in Redis through connect-redis 9 and
 * pending logins in RedisTransactionStore, one node-redis 6 client, a
 * throw-away redis-server). With `redis`, it also counts the Redis commands of
 * one login and of three plain requests (INFO commandstats around them), with
 * promptLimits off and on.
 */
import { createClient } from 'redis';
import type { AppEvents, AppStats } from './app-process.js';
import { startStack, type Stack } from './stack.js';
import { formatNumber, log, mapLimit, median, turns, type ResultRow } from './stats.js';
import { RedisServer } from '../test/support/redis-server.js';

export type LoginCostStore = 'session' | 'redis';

export interface LoginCostOptions {
  store?: LoginCostStore;
  rounds?: number;
  /** Logins (and plain triples) per round. */
  perRound?: number;
  /** Browsers at once. */
  concurrency?: number;
  /** DuoModule promptLimits (off against the emulator by default). */
  promptLimits?: Record<string, unknown>;
  /** Node flags for the app process (--cpu-prof ...). */
  appExecArgv?: string[];
}

/** Issue 14's target for the ratio. */
const TARGET = 1.8;

let userCounter = 0;

const cpuUs = (before: NodeJS.CpuUsage, after: NodeJS.CpuUsage): number => after.user + after.system - before.user - before.system;

/** Primary logins (POST /login): one session cookie each. Not measured. */
async function primaryLogins(stack: Stack, count: number, concurrency: number): Promise<string[]> {
  return mapLimit(Array.from({ length: count }, () => `cost.user.${++userCounter}`), concurrency, async (username) => {
    const answer = await stack.driver.http('POST', '/login', undefined, { username });
    if (answer.status !== 201 || !answer.setCookie) throw new Error(`login-cost benchmark: primary login HTTP ${answer.status}`);
    return `${answer.setCookie}|${username}`;
  });
}

/** The second factor of one login: protected page -> 303 to Duo, Duo (emulator), callback -> 303, protected page -> 200. */
export async function secondFactor(stack: Stack, cookieAndUser: string): Promise<void> {
  const [sessionCookie, username] = cookieAndUser.split('|') as [string, string];
  let cookie = sessionCookie;
  const start = await stack.driver.http('GET', '/account', cookie);
  if (start.status !== 303 || !start.location) throw new Error(`login-cost benchmark: the guard answered HTTP ${start.status}`);
  const back = await stack.emulator.call<string>('authorize', start.location);
  if (back.startsWith('ERROR')) throw new Error(`login-cost benchmark: Duo's prompt failed: ${back}`);
  const backUrl = new URL(back);
  const callback = await stack.driver.http('GET', `${backUrl.pathname}${backUrl.search}`, cookie);
  if (callback.status !== 303 || callback.location !== '/account') throw new Error(`login-cost benchmark: the callback answered HTTP ${callback.status}: ${callback.text.slice(0, 200)}`);
  if (callback.setCookie) cookie = callback.setCookie;
  const account = await stack.driver.http('GET', '/account', cookie);
  if (account.status !== 200 || account.text !== `account of ${username}`) throw new Error(`login-cost benchmark: the protected page answered HTTP ${account.status}`);
}

/** The hand-rolled login of the same session (bench/hand-login.ts): the same three requests. */
export async function secondFactorHand(stack: Stack, cookieAndUser: string): Promise<void> {
  const [sessionCookie, username] = cookieAndUser.split('|') as [string, string];
  let cookie = sessionCookie;
  const start = await stack.driver.http('GET', '/hand/account', cookie);
  if (start.status !== 303 || !start.location) throw new Error(`login-cost benchmark (hand-rolled): the start answered HTTP ${start.status}`);
  const back = await stack.emulator.call<string>('authorize', start.location);
  if (back.startsWith('ERROR')) throw new Error(`login-cost benchmark (hand-rolled): Duo's prompt failed: ${back}`);
  const backUrl = new URL(back);
  const callback = await stack.driver.http('GET', `${backUrl.pathname}${backUrl.search}`, cookie);
  if (callback.status !== 303 || callback.location !== '/hand/account') throw new Error(`login-cost benchmark (hand-rolled): the callback answered HTTP ${callback.status}: ${callback.text.slice(0, 200)}`);
  if (callback.setCookie) cookie = callback.setCookie;
  const account = await stack.driver.http('GET', '/hand/account', cookie);
  if (account.status !== 200 || account.text !== `account of ${username}`) throw new Error(`login-cost benchmark (hand-rolled): the page answered HTTP ${account.status}`);
}

/** Three plain requests of one session: GET /open (undecorated) three times. */
export async function threePlain(stack: Stack, cookieAndUser: string): Promise<void> {
  const [cookie, username] = cookieAndUser.split('|') as [string, string];
  for (let i = 0; i < 3; i++) {
    const page = await stack.driver.http('GET', '/open', cookie);
    if (page.status !== 200 || page.text !== `account of ${username}`) throw new Error(`login-cost benchmark: /open answered HTTP ${page.status}`);
  }
}

/** App CPU (us) per item of `task` over `sessions`, `concurrency` at once. */
async function measure(stack: Stack, sessions: string[], concurrency: number, task: (stack: Stack, session: string) => Promise<void>): Promise<number> {
  const before = await stack.app.call<AppStats>('stats');
  await mapLimit(sessions, concurrency, (session) => task(stack, session));
  const after = await stack.app.call<AppStats>('stats');
  return cpuUs(before.cpu, after.cpu) / sessions.length;
}

/** Redis commands by name (INFO commandstats), without the INFO calls themselves. */
async function commandStats(client: { info(section: string): Promise<unknown> }): Promise<Record<string, number>> {
  const text = String(await client.info('commandstats'));
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) counts[match[1]!] = Number(match[2]);
  return counts;
}

function diff(before: Record<string, number>, after: Record<string, number>, per: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after)) {
    if (name === 'info') continue;
    const delta = (calls - (before[name] ?? 0)) / per;
    if (delta > 0) out[name] = delta;
  }
  return out;
}

const total = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);
const show = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => `${name} ${Number.isInteger(n) ? n : n.toFixed(2)}`)
    .join(', ');

/** Redis commands per login's second factor and per three plain requests (averaged over `samples`, one at a time). */
async function countCommands(
  stack: Stack,
  redisUrl: string,
  samples: number,
): Promise<{ login: Record<string, number>; plain: Record<string, number>; roundTrips: number; order: string[] }> {
  const client = createClient({ url: redisUrl });
  await client.connect();
  try {
    const sessions = await primaryLogins(stack, samples * 2, 1);
    const before = await commandStats(client);
    for (const session of sessions.slice(0, samples)) await secondFactor(stack, session);
    const middle = await commandStats(client);
    for (const session of sessions.slice(samples)) await threePlain(stack, session);
    const after = await commandStats(client);
    // One more login, watched by MONITOR: the order of the commands, with their keys' prefixes (no values).
    const watcher = createClient({ url: redisUrl });
    await watcher.connect();
    const seen: string[] = [];
    try {
      const [one] = await primaryLogins(stack, 1, 1);
      await watcher.monitor((line: unknown) => {
        const words = String(line).match(/"(?:[^"\\]|\\.)*"/g) ?? [];
        const [name, key] = words.map((word) => word.slice(1, -1));
        const shortKey = name === 'evalsha' ? (words[3]?.slice(1, -1) ?? '') : (key ?? '');
        const inScript = / lua\]/.test(String(line));
        seen.push(`${inScript ? '  (script) ' : ''}${name} ${shortKey.replace(/[:{][^:{}]{12,}.*$/, (m) => `${m[0]}...`)}`);
      });
      await secondFactor(stack, one!);
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      watcher.destroy();
    }
    log(`Redis commands of one login, in order: ${seen.join('; ')}; ${seen.filter((line) => !line.startsWith(' ')).length} round trips (commands sent by the app), ${seen.length} commands run (those inside scripts too: what INFO commandstats counts)`);
    const roundTrips = seen.filter((line) => !line.startsWith(' ')).length;
    return { login: diff(before, middle, samples), plain: diff(middle, after, samples), roundTrips, order: seen };
  } finally {
    client.destroy();
  }
}

export interface LoginCostResult {
  rows: ResultRow[];
  loginUs: number[];
  plainUs: number[];
  handUs: number[];
  ratios: number[];
}

export async function benchLoginCost(options: LoginCostOptions = {}): Promise<LoginCostResult> {
  const store = options.store ?? 'session';
  const rounds = options.rounds ?? 8;
  const perRound = options.perRound ?? 300;
  const concurrency = options.concurrency ?? 8;
  const limits = options.promptLimits;
  const redis = store === 'redis' ? await RedisServer.start() : undefined;
  const rows: ResultRow[] = [];
  try {
    const stack = await startStack({
      app: { ...(redis ? { redisUrl: redis.url, redisSessions: true } : {}), duo: limits ? { promptLimits: limits } : {} },
      ...(options.appExecArgv ? { appExecArgv: options.appExecArgv } : {}),
    });
    const label = `${store === 'redis' ? 'Redis (sessions: connect-redis, pending logins: RedisTransactionStore)' : 'in-session store (MemoryStore)'}${limits ? ', promptLimits on' : ''}`;
    const loginUs: number[] = [];
    const plainUs: number[] = [];
    const handUs: number[] = [];
    try {
      log(`login cost, ${label}: warm-up`);
      const warm = await primaryLogins(stack, 400, concurrency);
      await mapLimit(warm.slice(0, 200), concurrency, (s) => secondFactor(stack, s));
      await mapLimit(warm.slice(200), concurrency, (s) => threePlain(stack, s));
      await mapLimit(await primaryLogins(stack, 200, concurrency), concurrency, (s) => secondFactorHand(stack, s));
      const passedBefore = (await stack.app.call<AppEvents>('events')).passed;
      const exchangesBefore = (await stack.emulator.call<{ tokenExchangesOk: number }>('stats')).tokenExchangesOk;
      const sides = { login: { task: secondFactor, into: loginUs }, plain: { task: threePlain, into: plainUs }, hand: { task: secondFactorHand, into: handUs } };
      const orders = turns('login' as const, 'plain' as const, 'hand' as const);
      for (let round = 0; round < rounds; round++) {
        for (const side of orders[round % orders.length]!) {
          const sessions = await primaryLogins(stack, perRound, concurrency);
          sides[side].into.push(await measure(stack, sessions, concurrency, sides[side].task));
        }
      }
      const passed = (await stack.app.call<AppEvents>('events')).passed - passedBefore;
      const exchanges = (await stack.emulator.call<{ tokenExchangesOk: number }>('stats')).tokenExchangesOk - exchangesBefore;
      // Every nestjs-duo login passed once; the hand-rolled ones (as many) exchanged their code too.
      if (passed !== rounds * perRound || exchanges !== passed + rounds * perRound) {
        throw new Error(`login-cost benchmark: ${rounds * perRound} logins of each kind but ${passed} passed events and ${exchanges} token exchanges`);
      }
      const ratios = loginUs.map((us, i) => us / plainUs[i]!);
      const handRatios = handUs.map((us, i) => us / plainUs[i]!);
      log(
        `login cost, ${label}: login ${loginUs.map((us) => us.toFixed(0)).join(', ')} us; three plain ${plainUs.map((us) => us.toFixed(0)).join(', ')} us; hand-rolled ${handUs.map((us) => us.toFixed(0)).join(', ')} us; ratios ${ratios.map((r) => r.toFixed(2)).join(', ')}; hand-rolled ratios ${handRatios.map((r) => r.toFixed(2)).join(', ')}`,
      );
      const ratio = median(ratios);
      rows.push({
        benchmark: `7. app CPU per login (303, callback, 200) / three plain requests, ${label}`,
        nestjsDuo: `${formatNumber(median(loginUs))} us/login [${formatNumber(Math.min(...loginUs))}-${formatNumber(Math.max(...loginUs))}]`,
        reference: `${formatNumber(median(plainUs))} us/3 requests [${formatNumber(Math.min(...plainUs))}-${formatNumber(Math.max(...plainUs))}]`,
        ratio: `${ratio.toFixed(2)} [${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}]`,
        target: `<= ${TARGET}`,
        verdict: ratio <= TARGET ? 'met' : `MISSED by ${((ratio / TARGET - 1) * 100).toFixed(0)}%`,
      });
      const handRatio = median(handRatios);
      rows.push({
        benchmark: `7f. the floor: the same login hand-rolled in the same app (sync HMACs, same checks, regenerate) / three plain requests, ${label}`,
        nestjsDuo: `${formatNumber(median(handUs))} us/login [${formatNumber(Math.min(...handUs))}-${formatNumber(Math.max(...handUs))}]`,
        reference: `nestjs-duo / hand-rolled: ${median(loginUs.map((us, i) => us / handUs[i]!)).toFixed(2)}`,
        ratio: `${handRatio.toFixed(2)} [${Math.min(...handRatios).toFixed(2)}-${Math.max(...handRatios).toFixed(2)}]`,
        target: '',
        verdict: '',
      });
      if (redis) {
        const counts = await countCommands(stack, redis.url, 10);
        log(`login cost, ${label}: Redis commands per login ${show(counts.login)}; per three plain requests ${show(counts.plain)}`);
        rows.push({
          benchmark: `7r. Redis commands per login, ${label}`,
          nestjsDuo: `${counts.roundTrips} sent (MONITOR), ${total(counts.login)} run with those inside scripts (${show(counts.login)})`,
          reference: `three plain requests: ${total(counts.plain)} (${show(counts.plain)})`,
          ratio: '',
          target: '',
          verdict: '',
        });
      }
      return { rows, loginUs, plainUs, handUs, ratios };
    } finally {
      await stack.stop();
    }
  } finally {
    await redis?.stop();
  }
}
