/**
 * Benchmark 3: the cost of `@RequireSecondFactor()` on a request whose session
 * already passed Duo. One Nest app (its own process), one verified session
 * (a real login through the emulator), three routes with the same handler: one
 * decorated, one not, one behind a guard that does nothing (what Nest costs for
 * any guard). autocannon (in this process) takes them in turn, round by round:
 * first as fast as they go (requests per second), then at one fixed rate for
 * all three (`rate`), so that each route's CPU per request is measured with the
 * same batching of the event loop: a route that ran faster would otherwise
 * share each loop turn among more requests and look cheaper per request.
 */
import autocannon, { type AutocannonResult } from 'autocannon';
import { startStack } from './stack.js';
import { Client } from 'undici';
import type { AppStats, RequestCpu } from './app-process.js';
import { log, median, ratioRow, turns, type ResultRow } from './stats.js';

export interface GuardOptions {
  rounds?: number;
  /** Seconds per autocannon run. */
  seconds?: number;
  connections?: number;
  /** Rounds of the fixed-rate phase (rows 3b and 3c). */
  cpuRounds?: number;
  /** Seconds per route and round in the fixed-rate phase. */
  cpuSeconds?: number;
  /** Requests per second of the fixed-rate phase, the same for all three routes (BENCH_GUARD_RATE). */
  rate?: number;
  /** Rounds of the interleaved phase (row 3d): one connection, one request at a time, the three routes in turn request by request. */
  seqRounds?: number;
  /** Requests per route and round in the interleaved phase. */
  seqRequests?: number;
}

function check(result: AutocannonResult, what: string): number {
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(`guard benchmark: ${what} had ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx answers`);
  }
  return result.requests.average;
}

export async function benchGuard(options: GuardOptions = {}): Promise<ResultRow[]> {
  const rounds = options.rounds ?? 6;
  const seconds = options.seconds ?? 2;
  const connections = options.connections ?? 10;
  const cpuRounds = options.cpuRounds ?? 18;
  const cpuSeconds = options.cpuSeconds ?? 1.5;
  const rate = options.rate ?? Number(process.env.BENCH_GUARD_RATE ?? 600);
  const seqRounds = options.seqRounds ?? 12;
  const seqRequests = options.seqRequests ?? 1000;
  const stack = await startStack({ app: { requestCpu: true } });
  try {
    const login = await stack.driver.login('guard.user');
    if (!login.ok || !login.cookie) throw new Error(`guard benchmark: the login failed at ${login.failedAt} (${login.reason})`);
    const cookie = login.cookie;
    const appUrl = stack.app.info.baseUrl;
    // The decorated route really is guarded: without the verified session it sends the browser to Duo.
    const fresh = await stack.driver.http('POST', '/login', undefined, { username: 'someone.else' });
    const unverified = await stack.driver.http('GET', '/account', fresh.setCookie);
    if (unverified.status !== 303) throw new Error(`guard benchmark: an unverified session got HTTP ${unverified.status} from the guarded route`);
    for (const path of ['/account', '/open', '/noop-guard']) {
      const page = await stack.driver.http('GET', path, cookie);
      if (page.status !== 200 || page.text !== 'account of guard.user') throw new Error(`guard benchmark: ${path} answered HTTP ${page.status}`);
    }

    const cpuPerRequest: Record<string, number[]> = { '/account': [], '/open': [], '/noop-guard': [] };
    const cpuTotals: Record<string, { cpu: number; requests: number }> = { '/account': { cpu: 0, requests: 0 }, '/open': { cpu: 0, requests: 0 }, '/noop-guard': { cpu: 0, requests: 0 } };
    const run = async (path: string, duration: number, fixedRate?: number): Promise<AutocannonResult> => {
      const before = await stack.app.call<AppStats>('stats');
      const result = await autocannon({ url: `${appUrl}${path}`, connections, duration, headers: { cookie, accept: 'text/html' }, ...(fixedRate ? { overallRate: fixedRate } : {}) });
      const after = await stack.app.call<AppStats>('stats');
      const cpu = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system;
      if (fixedRate) {
        cpuPerRequest[path]!.push(cpu / Math.max(1, result.requests.total));
        cpuTotals[path]!.cpu += cpu;
        cpuTotals[path]!.requests += result.requests.total;
      }
      return result;
    };

    log('guard: warm-up');
    check(await run('/account', 2), 'warm-up /account');
    check(await run('/open', 2), 'warm-up /open');
    check(await run('/noop-guard', 2), 'warm-up /noop-guard');

    const guarded: number[] = [];
    const open: number[] = [];
    const noop: number[] = [];
    const into: Record<string, number[]> = { '/account': guarded, '/open': open, '/noop-guard': noop };
    // Each round runs the three routes, in an order that turns from round to round (each first, middle and last alike).
    const orders = turns('/account', '/open', '/noop-guard');
    for (let round = 0; round < rounds; round++) {
      for (const path of orders[round % orders.length]!) into[path]!.push(check(await run(path, seconds), path));
    }
    log(`guard: CPU per request at ${rate} req/s for every route, ${cpuRounds} rounds of ${cpuSeconds} s`);
    check(await run('/open', 1, rate), 'fixed-rate warm-up');
    cpuPerRequest['/open']!.length = 0;
    cpuTotals['/open'] = { cpu: 0, requests: 0 };
    for (let round = 0; round < cpuRounds; round++) {
      for (const path of orders[round % orders.length]!) check(await run(path, cpuSeconds, rate), path);
    }
    // Row 3d: the three routes interleaved request by request on one connection, each request's CPU counted in the
    // app from its arrival to its answer: the machine's drift (other jobs, the hypervisor) hits the three alike.
    const seq: Record<string, number[]> = { '/account': [], '/open': [], '/noop-guard': [] };
    const client = new Client(appUrl, { pipelining: 1, connections: 1 } as ConstructorParameters<typeof Client>[1]);
    try {
      const one = async (path: string): Promise<void> => {
        const answer = await client.request({ path, method: 'GET', headers: { cookie, accept: 'text/html' } });
        const body = await answer.body.text();
        if (answer.statusCode !== 200 || body !== 'account of guard.user') throw new Error(`guard benchmark: ${path} answered HTTP ${answer.statusCode}`);
      };
      const paths = ['/account', '/open', '/noop-guard'];
      for (let i = 0; i < 300; i++) await one(paths[i % 3]!);
      await stack.app.call<Record<string, RequestCpu>>('takeRequestCpu');
      for (let round = 0; round < seqRounds; round++) {
        for (let i = 0; i < seqRequests; i++) for (const path of orders[(round + i) % orders.length]!) await one(path);
        const taken = await stack.app.call<Record<string, RequestCpu>>('takeRequestCpu');
        for (const path of paths) {
          const entry = taken[path];
          if (!entry || entry.count !== seqRequests) throw new Error(`guard benchmark: the app counted ${entry?.count ?? 0} requests to ${path}, not ${seqRequests}`);
          seq[path]!.push(entry.cpuUs / entry.count);
        }
      }
    } finally {
      await client.close();
    }
    const seqRatio = (a: string, b: string): number[] => seq[a]!.map((us, i) => seq[b]![i]! / us);
    log(`guard: interleaved, us CPU/request per round: guarded ${seq['/account']!.map((v) => v.toFixed(1)).join(', ')}; undecorated ${seq['/open']!.map((v) => v.toFixed(1)).join(', ')}; no-op guard ${seq['/noop-guard']!.map((v) => v.toFixed(1)).join(', ')}`);
    log(`guard: interleaved, undecorated / guarded per round ${seqRatio('/account', '/open').map((v) => v.toFixed(3)).join(', ')}`);
    log(`guard: guarded ${guarded.map(Math.round).join(', ')}; undecorated ${open.map(Math.round).join(', ')} req/s`);
    // Requests per CPU-second of the app process: the same comparison, far less sensitive to other work on the machine.
    const perCpuGuarded = cpuPerRequest['/account']!.map((us) => 1e6 / us);
    const perCpuOpen = cpuPerRequest['/open']!.map((us) => 1e6 / us);
    const perCpuNoop = cpuPerRequest['/noop-guard']!.map((us) => 1e6 / us);
    const cpuGuarded = median(cpuPerRequest['/account']!);
    const cpuOpen = median(cpuPerRequest['/open']!);
    const cpuNoop = median(cpuPerRequest['/noop-guard']!);
    const paired = (a: string, b: string): number => median(cpuPerRequest[a]!.map((us, i) => us - cpuPerRequest[b]![i]!));
    log(`guard: app CPU per request (medians of ${cpuRounds} rounds at ${rate} req/s): guarded ${cpuGuarded.toFixed(1)} us, undecorated ${cpuOpen.toFixed(1)} us, no-op guard ${cpuNoop.toFixed(1)} us`);
    log(`guard: paired differences (median of per-round differences): guarded - undecorated ${paired('/account', '/open').toFixed(1)} us, no-op guard - undecorated ${paired('/noop-guard', '/open').toFixed(1)} us, guarded - no-op guard ${paired('/account', '/noop-guard').toFixed(1)} us`);
    const whole = (path: string): number => cpuTotals[path]!.cpu / cpuTotals[path]!.requests;
    log(`guard: all rounds together (total CPU / total requests): guarded ${whole('/account').toFixed(1)} us, undecorated ${whole('/open').toFixed(1)} us, no-op guard ${whole('/noop-guard').toFixed(1)} us; undecorated / guarded ${(whole('/open') / whole('/account')).toFixed(3)}, no-op / guarded ${(whole('/noop-guard') / whole('/account')).toFixed(3)}`);
    log(`guard: per round, us CPU/request: guarded ${cpuPerRequest['/account']!.map((v) => v.toFixed(0)).join(', ')}; undecorated ${cpuPerRequest['/open']!.map((v) => v.toFixed(0)).join(', ')}; no-op guard ${cpuPerRequest['/noop-guard']!.map((v) => v.toFixed(0)).join(', ')}`);
    return [
      ratioRow(`3. guarded route req/s, verified session, vs same route undecorated (${connections} conns)`, guarded, open, 'req/s', 0.95),
      ratioRow(
        `3b. same, app requests per CPU-second, all three routes at ${rate} req/s (difference ${(cpuGuarded - cpuOpen).toFixed(0)} us CPU/request; all rounds together ${(whole('/open') / whole('/account')).toFixed(3)}x)`,
        perCpuGuarded,
        perCpuOpen,
        'req/CPU-s',
        // Issue 14 item 4: the guard's CPU per request, the figure the machine's load does not drown.
        0.97,
      ),
      ratioRow(
        `3c. same, against the route with a synchronous no-op guard (what any guard costs in Nest: ${paired('/noop-guard', '/open').toFixed(0)} us; ours beyond it ${paired('/account', '/noop-guard').toFixed(0)} us)`,
        perCpuGuarded,
        perCpuNoop,
        'req/CPU-s',
        0.97,
      ),
      {
        ...ratioRow(
          `3d. same, the three routes interleaved request by request (one connection, ${seqRounds} rounds of ${seqRequests} each; guarded ${median(seq['/account']!).toFixed(1)} us, undecorated ${median(seq['/open']!).toFixed(1)} us, no-op guard ${median(seq['/noop-guard']!).toFixed(1)} us CPU/request)`,
          seq['/account']!.map((us) => 1e6 / us),
          seq['/open']!.map((us) => 1e6 / us),
          'req/CPU-s',
          0.97,
        ),
      },
      ratioRow(`3e. 3d against the no-op guard (what Nest costs for any guard: ${(median(seq['/noop-guard']!) - median(seq['/open']!)).toFixed(1)} us)`, seq['/account']!.map((us) => 1e6 / us), seq['/noop-guard']!.map((us) => 1e6 / us), 'req/CPU-s', 0.97),
    ];
  } finally {
    await stack.stop();
  }
}
