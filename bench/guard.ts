/**
 * Benchmark 3: the cost of `@RequireSecondFactor()` on a request whose session
 * already passed Duo. One Nest app (its own process), one verified session
 * (a real login through the emulator), three routes with the same handler: one
 * decorated, one not, one behind a guard that does nothing (what Nest costs for
 * any guard). autocannon (in this process) takes them in turn, round by round.
 */
import autocannon, { type AutocannonResult } from 'autocannon';
import { startStack } from './stack.js';
import type { AppStats } from './app-process.js';
import { log, median, ratioRow, type ResultRow } from './stats.js';

export interface GuardOptions {
  rounds?: number;
  /** Seconds per autocannon run. */
  seconds?: number;
  connections?: number;
}

function check(result: AutocannonResult, what: string): number {
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0) {
    throw new Error(`guard benchmark: ${what} had ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx answers`);
  }
  return result.requests.average;
}

export async function benchGuard(options: GuardOptions = {}): Promise<ResultRow[]> {
  const rounds = options.rounds ?? 10;
  const seconds = options.seconds ?? 2;
  const connections = options.connections ?? 10;
  const stack = await startStack();
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
    const run = async (path: string, duration: number): Promise<AutocannonResult> => {
      const before = await stack.app.call<AppStats>('stats');
      const result = await autocannon({ url: `${appUrl}${path}`, connections, duration, headers: { cookie, accept: 'text/html' } });
      const after = await stack.app.call<AppStats>('stats');
      const cpu = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system;
      cpuPerRequest[path]!.push(cpu / Math.max(1, result.requests.total));
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
    const orders = [
      ['/account', '/open', '/noop-guard'],
      ['/open', '/noop-guard', '/account'],
      ['/noop-guard', '/account', '/open'],
      ['/account', '/noop-guard', '/open'],
      ['/open', '/account', '/noop-guard'],
      ['/noop-guard', '/open', '/account'],
    ];
    for (let round = 0; round < rounds; round++) {
      for (const path of orders[round % orders.length]!) into[path]!.push(check(await run(path, seconds), path));
    }
    log(`guard: guarded ${guarded.map(Math.round).join(', ')}; undecorated ${open.map(Math.round).join(', ')} req/s`);
    // Requests per CPU-second of the app process: the same comparison, far less sensitive to other work on the machine.
    const perCpuGuarded = cpuPerRequest['/account']!.slice(1).map((us) => 1e6 / us);
    const perCpuOpen = cpuPerRequest['/open']!.slice(1).map((us) => 1e6 / us);
    const perCpuNoop = cpuPerRequest['/noop-guard']!.slice(1).map((us) => 1e6 / us);
    const cpuGuarded = median(cpuPerRequest['/account']!.slice(1));
    const cpuOpen = median(cpuPerRequest['/open']!.slice(1));
    const cpuNoop = median(cpuPerRequest['/noop-guard']!.slice(1));
    const paired = (a: string, b: string): number => median(cpuPerRequest[a]!.slice(1).map((us, i) => us - cpuPerRequest[b]!.slice(1)[i]!));
    log(`guard: app CPU per request (medians of ${rounds} rounds): guarded ${cpuGuarded.toFixed(1)} us, undecorated ${cpuOpen.toFixed(1)} us, no-op guard ${cpuNoop.toFixed(1)} us`);
    log(`guard: paired differences (median of per-round differences): guarded - undecorated ${paired('/account', '/open').toFixed(1)} us, no-op guard - undecorated ${paired('/noop-guard', '/open').toFixed(1)} us, guarded - no-op guard ${paired('/account', '/noop-guard').toFixed(1)} us`);
    log(`guard: per round, us CPU/request: guarded ${cpuPerRequest['/account']!.slice(1).map((v) => v.toFixed(0)).join(', ')}; undecorated ${cpuPerRequest['/open']!.slice(1).map((v) => v.toFixed(0)).join(', ')}; no-op guard ${cpuPerRequest['/noop-guard']!.slice(1).map((v) => v.toFixed(0)).join(', ')}`);
    return [
      ratioRow(`3. guarded route req/s, verified session, vs same route undecorated (${connections} conns)`, guarded, open, 'req/s', 0.95),
      ratioRow(
        `3b. same, app requests per CPU-second (difference ${(cpuGuarded - cpuOpen).toFixed(0)} us CPU/request)`,
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
    ];
  } finally {
    await stack.stop();
  }
}
