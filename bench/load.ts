/**
 * `npm run load`: the load and fault run, bounded in count and time, loopback only.
 *
 *  1. normal:   LOAD_RATE (default 110) new logins per second for LOAD_SECONDS
 *               (default 60) against the emulator; every login must succeed and
 *               be verified exactly once (token exchanges = logins = passed events,
 *               no user passed twice).
 *  2. slow:     Duo answers every call after 2 s (FAULT_SECONDS, default 20).
 *  3. silent:   Duo accepts the token calls and never answers (FAULT_SECONDS);
 *               the health check and the browser leg (authorize) still work, so
 *               callbacks keep arriving and each exchange hangs: the worst case
 *               for the app's sockets.
 *  4. silent:   Duo also leaves the health check unanswered (FAULT_SECONDS): the
 *               guard cannot start logins (fail closed).
 *  5. recovery: Duo is back (RECOVERY_SECONDS, default 20); the app must recover
 *               by itself: no failures once its 5 s health-failure cache and one
 *               deadline have passed.
 * Through 2-5: no app answer later than the deadline (timeoutMs) plus a margin,
 * calls to Duo in flight and the app's sockets to Duo never above
 * maxConcurrentRequests (beyond it: 503 at once), memory bounded.
 * Exit code 1 when a check fails.
 */
import type { AppEvents, AppStats, RequestTimes } from './app-process.js';
import { HEALTH_LANE } from '../src/protocol/http.js';
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startStack, type Stack } from './stack.js';
import { log, percentile, sleep } from './stats.js';
import { RedisServer } from '../test/support/redis-server.js';

const RATE = Number(process.env.LOAD_RATE ?? 110);
const LOAD_SECONDS = Number(process.env.LOAD_SECONDS ?? 60);
const FAULT_SECONDS = Number(process.env.FAULT_SECONDS ?? 20);
const RECOVERY_SECONDS = Number(process.env.RECOVERY_SECONDS ?? 20);
/** App instances; more than one share a throw-away redis-server (sessions through connect-redis, pending logins in RedisTransactionStore), and the generator sends each request to the next instance in turn. */
const INSTANCES = Number(process.env.LOAD_INSTANCES ?? 1);
/** LOAD_REDIS=1: one instance, on Redis too. */
const USE_REDIS = INSTANCES > 1 || process.env.LOAD_REDIS === '1';
const TIMEOUT_MS = 3000;
const CAP = 64;
const HEALTH_CACHE_SECONDS = 10;
/** Scheduling and CPU slack allowed on top of the deadline on a shared 2-core machine. */
const DEADLINE_MARGIN_MS = 1000;
/** The load generator never keeps more logins than this open (bounded memory on our side too). */
const MAX_OPEN_LOGINS = 1000;
const WATCHDOG_MS = 15 * 60_000;

interface PhaseReport {
  name: string;
  launched: number;
  ok: number;
  /** Failed logins by "step HTTP status". */
  failures: Record<string, number>;
  skipped: number;
  /** App answers by status, with their latencies. */
  appLatency: Record<string, number[]>;
  /** Latencies of the app answers that may wait on Duo: the guard starting a login (health check) and the callback (code exchange). */
  duoBound: number[];
  /** Failed logins: when they were launched (ms into the phase) and nestjs-duo's error code. */
  failureTimes: Array<{ at: number; code: string }>;
  /** Time spent inside the app per path (measured by the app), the deadline's true test. */
  appTimes: RequestTimes;
  seconds: number;
  peakInFlight: number;
  peakDuoSockets: number;
  peakFds: number;
  peakHeap: number;
  peakRss: number;
  /** The app's worst event-loop delay, and the load generator's (this process). */
  appLoopMaxMs: number;
  driverLoopMaxMs: number;
  endHeap: number;
  endRss: number;
  /** heapUsed after forced full GCs at the end of the phase. */
  endHeapAfterGc: number;
  /** CPU per launched login over the phase (all instances together), of the emulator and of this load generator. */
  appCpuMsPerLogin: number;
  emulatorCpuMsPerLogin: number;
  generatorCpuMsPerLogin: number;
}

let userCounter = 0;

async function runPhase(stack: Stack, name: string, seconds: number, rate: number, duoPort: number): Promise<PhaseReport> {
  const report: PhaseReport = {
    name,
    launched: 0,
    ok: 0,
    failures: {},
    skipped: 0,
    appLatency: {},
    duoBound: [],
    failureTimes: [],
    appTimes: {},
    seconds: 0,
    peakInFlight: 0,
    peakDuoSockets: 0,
    peakFds: 0,
    peakHeap: 0,
    peakRss: 0,
    appLoopMaxMs: 0,
    driverLoopMaxMs: 0,
    endHeap: 0,
    endRss: 0,
    endHeapAfterGc: 0,
    appCpuMsPerLogin: 0,
    emulatorCpuMsPerLogin: 0,
    generatorCpuMsPerLogin: 0,
  };
  await Promise.all(stack.apps.map((app) => app.call('resetPeaks')));
  await Promise.all(stack.apps.map((app) => app.call('takeRequestTimes')));
  const driverLoop = monitorEventLoopDelay({ resolution: 10 });
  driverLoop.enable();
  const sample = async (): Promise<void> => {
    // Per instance (the cap and the pool are each instance's own): the highest of them.
    for (const app of stack.apps) {
      const [stats, sockets] = await Promise.all([app.call<AppStats>('stats'), app.call<number>('socketsTo', duoPort)]);
      report.peakInFlight = Math.max(report.peakInFlight, stats.peakInFlight, stats.inFlight);
      report.peakDuoSockets = Math.max(report.peakDuoSockets, sockets);
      report.peakFds = Math.max(report.peakFds, stats.fds);
      report.peakHeap = Math.max(report.peakHeap, stats.memory.heapUsed);
      report.peakRss = Math.max(report.peakRss, stats.memory.rss);
      report.appLoopMaxMs = Math.max(report.appLoopMaxMs, stats.loopDelayMaxMs);
    }
  };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sample().catch(() => undefined);
      await sleep(250);
    }
  })();

  const startCpu = new Map<unknown, NodeJS.CpuUsage>();
  for (const app of stack.apps) startCpu.set(app, (await app.call<AppStats>('stats')).cpu);
  const generatorCpu = process.cpuUsage();
  const emulatorCpu = await stack.emulator.call<NodeJS.CpuUsage>('cpu');
  const open = new Set<Promise<void>>();
  const started = performance.now();
  const end = started + seconds * 1000;
  const launch = (): void => {
    const launchedAt = performance.now() - started;
    const username = `load.${name}.${++userCounter}`;
    report.launched++;
    const promise = stack.driver.login(username).then((outcome) => {
      if (outcome.ok) report.ok++;
      else {
        const key = `${outcome.failedAt} HTTP ${outcome.status}${outcome.code ? ` ${outcome.code}` : ''}`;
        report.failures[key] = (report.failures[key] ?? 0) + 1;
        report.failureTimes.push({ at: launchedAt, code: outcome.code ?? `HTTP ${outcome.status}` });
      }
      for (const step of outcome.steps) {
        if (step.step === 'duo') continue;
        (report.appLatency[String(step.status)] ??= []).push(step.ms);
        if (step.step === 'start' || step.step === 'callback') report.duoBound.push(step.ms);
      }
    });
    open.add(promise);
    void promise.finally(() => open.delete(promise));
  };
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - started) / 1000) * rate);
    while (report.launched + report.skipped < due) {
      if (open.size >= MAX_OPEN_LOGINS) report.skipped++;
      else launch();
    }
    await sleep(5);
  }
  report.seconds = (performance.now() - started) / 1000;
  // Let the logins in flight finish (each app request is bounded by the driver's own 30 s limit).
  const drainUntil = performance.now() + 45_000;
  while (open.size > 0 && performance.now() < drainUntil) await sleep(50);
  sampling = false;
  await sampler;
  await sample();
  driverLoop.disable();
  for (const app of stack.apps) {
    for (const [path, times] of Object.entries(await app.call<RequestTimes>('takeRequestTimes'))) {
      const entry = (report.appTimes[path] ??= { count: 0, maxMs: 0, withoutDuoMs: [], duoMs: [] });
      entry.count += times.count;
      entry.maxMs = Math.max(entry.maxMs, times.maxMs);
      entry.withoutDuoMs.push(...times.withoutDuoMs);
      entry.duoMs.push(...times.duoMs);
    }
  }
  report.driverLoopMaxMs = driverLoop.max / 1e6;
  const cpuUs = (cpu: NodeJS.CpuUsage): number => cpu.user + cpu.system;
  for (const app of stack.apps) {
    const endStats = await app.call<AppStats>('stats');
    const before = startCpu.get(app)!;
    report.appCpuMsPerLogin += (cpuUs(endStats.cpu) - cpuUs(before)) / 1000 / Math.max(1, report.launched);
    report.endHeap = Math.max(report.endHeap, endStats.memory.heapUsed);
    report.endRss = Math.max(report.endRss, endStats.memory.rss);
    report.endHeapAfterGc = Math.max(report.endHeapAfterGc, (await app.call<NodeJS.MemoryUsage>('gc')).heapUsed);
  }
  report.generatorCpuMsPerLogin = (cpuUs(process.cpuUsage()) - cpuUs(generatorCpu)) / 1000 / Math.max(1, report.launched);
  const emulatorCpuAfter = await stack.emulator.call<NodeJS.CpuUsage>('cpu');
  report.emulatorCpuMsPerLogin = (cpuUs(emulatorCpuAfter) - cpuUs(emulatorCpu)) / 1000 / Math.max(1, report.launched);
  return report;
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function describe(report: PhaseReport): string {
  const latency = Object.entries(report.appLatency)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([status, values]) => `${status}: n=${values.length} p50=${percentile(values, 50).toFixed(0)} p99=${percentile(values, 99).toFixed(0)} max=${Math.max(...values).toFixed(0)} ms`)
    .join('; ');
  const failures = Object.entries(report.failures)
    .map(([key, n]) => `${key} x${n}`)
    .join(', ');
  return [
    `== ${report.name}: ${report.launched} logins launched in ${report.seconds.toFixed(1)} s (${(report.launched / report.seconds).toFixed(1)}/s), ${report.ok} ok (${(report.ok / report.seconds).toFixed(1)}/s), ${report.launched - report.ok} failed${report.skipped ? `, ${report.skipped} not launched (generator full)` : ''}`,
    `   failures: ${failures || 'none'}`,
    `   answers by status, as the load generator saw them: ${latency}`,
    `   time inside the app, max by path: ${Object.entries(report.appTimes)
      .map(([path, t]) => `${path} ${t.maxMs.toFixed(0)} ms (n=${t.count})`)
      .join(', ')}`,
    `   time inside the app without the calls to Duo, p50/p99/max by path: ${Object.entries(report.appTimes)
      .map(([path, t]) => `${path} ${percentile(t.withoutDuoMs, 50).toFixed(1)}/${percentile(t.withoutDuoMs, 99).toFixed(1)}/${Math.max(...t.withoutDuoMs).toFixed(0)} ms (Duo's p50/p99 ${percentile(t.duoMs, 50).toFixed(1)}/${percentile(t.duoMs, 99).toFixed(1)} ms)`)
      .join('; ')}`,
    `   CPU per login: app ${report.appCpuMsPerLogin.toFixed(2)} ms (all instances), emulator ${report.emulatorCpuMsPerLogin.toFixed(2)} ms, load generator ${report.generatorCpuMsPerLogin.toFixed(2)} ms; load average ${loadavg().map((v) => v.toFixed(1)).join(' ')}`,
    `   peaks: Duo calls in flight ${report.peakInFlight} (cap ${CAP}), app sockets to Duo ${report.peakDuoSockets}, app fds ${report.peakFds}, heap ${mib(report.peakHeap)}, rss ${mib(report.peakRss)}, event-loop delay max: app ${report.appLoopMaxMs.toFixed(0)} ms, load generator ${report.driverLoopMaxMs.toFixed(0)} ms; at the end heap ${mib(report.endHeap)} (${mib(report.endHeapAfterGc)} after GC), rss ${mib(report.endRss)}`,
  ].join('\n');
}

const checks: Array<{ ok: boolean; what: string }> = [];
function check(ok: boolean, what: string): void {
  checks.push({ ok, what });
  log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
}

function checkBounded(report: PhaseReport, baselineRss: number): void {
  const slowest = Math.max(0, ...Object.values(report.appTimes).map((t) => t.maxMs));
  check(
    slowest <= TIMEOUT_MS + DEADLINE_MARGIN_MS,
    `${report.name}: longest time a request spent in the app ${slowest.toFixed(0)} ms <= deadline ${TIMEOUT_MS} ms + ${DEADLINE_MARGIN_MS} ms margin (app event-loop delay max ${report.appLoopMaxMs.toFixed(0)} ms; as seen by the load generator, Duo-bound answers took up to ${Math.max(0, ...report.duoBound).toFixed(0)} ms)`,
  );
  check(report.peakInFlight <= CAP, `${report.name}: Duo calls in flight peaked at ${report.peakInFlight} <= cap ${CAP}`);
  // The pool holds the cap plus the health checks' own lane.
  check(report.peakDuoSockets <= CAP + HEALTH_LANE, `${report.name}: app sockets to Duo peaked at ${report.peakDuoSockets} <= cap ${CAP} + health lane ${HEALTH_LANE}`);
  check(report.peakRss <= baselineRss + 256 * 1024 * 1024, `${report.name}: app rss peaked at ${mib(report.peakRss)} (baseline ${mib(baselineRss)}, bound +256 MiB)`);
  const fast503 = report.appLatency['503'] ?? [];
  if (fast503.length > 0) {
    check(percentile(fast503, 50) < TIMEOUT_MS / 10, `${report.name}: 503 answers are fast (p50 ${percentile(fast503, 50).toFixed(0)} ms, ${fast503.length} of them)`);
  }
}

const watchdog = setTimeout(() => {
  log(`load run exceeded ${WATCHDOG_MS / 60_000} minutes; giving up`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

const redis = USE_REDIS ? await RedisServer.start() : undefined;
const stack = await startStack({
  app: {
    trackUsers: true,
    timeRequests: true,
    ...(redis ? { redisUrl: redis.url, redisSessions: true } : {}),
    duo: { timeoutMs: TIMEOUT_MS, maxConcurrentRequests: CAP, healthCheckCacheSeconds: HEALTH_CACHE_SECONDS },
  },
  driver: { connections: 1024, requestTimeoutMs: 30_000 },
  instances: INSTANCES,
});
/** Every instance's events, added up (a user verified twice on two instances shows in the token exchanges = logins check). */
async function allEvents(): Promise<AppEvents> {
  const sum: AppEvents = { promptStarted: 0, passed: 0, failed: {}, passedTwice: 0, distinctPassed: 0 };
  for (const app of stack.apps) {
    const events = await app.call<AppEvents>('events');
    sum.promptStarted += events.promptStarted;
    sum.passed += events.passed;
    sum.passedTwice += events.passedTwice;
    sum.distinctPassed += events.distinctPassed;
    for (const [code, n] of Object.entries(events.failed)) sum.failed[code] = (sum.failed[code] ?? 0) + n;
  }
  return sum;
}
const duoPort = stack.emulator.info.port;
try {
  log(`load run: ${INSTANCES} instance(s)${redis ? ' on Redis' : ''}, ${RATE} logins/s; normal ${LOAD_SECONDS} s, slow ${FAULT_SECONDS} s, silent ${FAULT_SECONDS} s (token) + ${FAULT_SECONDS} s (health + token), recovery ${RECOVERY_SECONDS} s; timeoutMs ${TIMEOUT_MS}, maxConcurrentRequests ${CAP}`);
  // Warm-up: the first login pays for JIT and the first health check.
  for (let i = 0; i < 20; i++) await stack.driver.login(`load.warmup.${i}`);
  const baseline = await stack.app.call<AppStats>('stats');
  const exchangesBefore = (await stack.emulator.call<{ tokenExchangesOk: number }>('stats')).tokenExchangesOk;
  const eventsBefore = await allEvents();

  // 1. normal
  const normal = await runPhase(stack, 'normal', LOAD_SECONDS, RATE, duoPort);
  console.log(describe(normal));
  const exchanges = (await stack.emulator.call<{ tokenExchangesOk: number }>('stats')).tokenExchangesOk - exchangesBefore;
  const events = await allEvents();
  check(normal.launched - normal.ok === 0, `normal: zero errors (${normal.launched - normal.ok} of ${normal.launched} logins failed)`);
  if (normal.skipped > 0) log(`note: the load generator skipped ${normal.skipped} logins while ${MAX_OPEN_LOGINS} were open (a stall of this machine); the rate check below counts only completed logins`);
  const target = RATE * 0.95;
  check(normal.ok / normal.seconds >= target, `normal: at least ${target} logins/s for ${LOAD_SECONDS} s (${(normal.ok / normal.seconds).toFixed(1)}/s)`);
  check(exchanges === normal.ok, `normal: token exchanges at Duo (${exchanges}) = logins (${normal.ok})`);
  check(events.passed - eventsBefore.passed === normal.ok, `normal: second_factor_passed events (${events.passed - eventsBefore.passed}) = logins`);
  check(events.passedTwice === 0, `normal: no user verified twice (${events.passedTwice})`);
  check(Object.keys(events.failed).length === 0, `normal: no second_factor_failed events (${JSON.stringify(events.failed)})`);

  // 2. slow
  await stack.emulator.call('setFailure', 'slow', { slowMs: 2000 });
  const slow = await runPhase(stack, 'slow (every Duo call 2 s)', FAULT_SECONDS, RATE, duoPort);
  console.log(describe(slow));
  checkBounded(slow, baseline.memory.rss);

  // 3. silent token endpoint
  await stack.emulator.call('setFailure', 'no_answer', { endpoints: ['token'] });
  const silentToken = await runPhase(stack, 'silent token endpoint (health check up)', FAULT_SECONDS, RATE, duoPort);
  console.log(describe(silentToken));
  checkBounded(silentToken, baseline.memory.rss);
  check(silentToken.ok === 0, `${silentToken.name}: no login passed while Duo was silent (${silentToken.ok}): the fault was real`);
  check((silentToken.appLatency['504'] ?? []).length > 0, `${silentToken.name}: hung exchanges were cut off at the deadline (${(silentToken.appLatency['504'] ?? []).length} x 504)`);

  // 4. silent health check and token endpoint
  await stack.emulator.call('setFailure', 'no_answer', { endpoints: ['health', 'token'] });
  const silent = await runPhase(stack, 'silent health check and token endpoint', FAULT_SECONDS, RATE, duoPort);
  console.log(describe(silent));
  checkBounded(silent, baseline.memory.rss);
  check(silent.ok === 0, `${silent.name}: no login passed while Duo was silent (${silent.ok}): fail closed`);

  // 5. recovery
  await stack.emulator.call('setFailure', 'none');
  const recovery = await runPhase(stack, 'recovery (Duo back)', RECOVERY_SECONDS, RATE, duoPort);
  console.log(describe(recovery));
  checkBounded(recovery, baseline.memory.rss);
  const settleMs = 5000 + TIMEOUT_MS + DEADLINE_MARGIN_MS;
  // Past the settling time, only the cap may still refuse (a surge of callbacks when Duo returns); nothing may fail for Duo.
  const late = recovery.failureTimes.filter((f) => f.at >= settleMs);
  const lateForDuo = late.filter((f) => f.code !== 'duo_overloaded');
  const lastFailure = recovery.failureTimes.length ? Math.max(...recovery.failureTimes.map((f) => f.at)) : 0;
  check(
    lateForDuo.length === 0,
    `recovery: no login started ${settleMs} ms or more after Duo returned failed for Duo (${lateForDuo.length}; ${late.length - lateForDuo.length} refused by the cap; last failure started at ${lastFailure.toFixed(0)} ms)`,
  );
  check(recovery.ok > 0 && recovery.ok / recovery.seconds >= RATE * 0.5, `recovery: logins pass again (${(recovery.ok / recovery.seconds).toFixed(1)}/s)`);
  for (const app of stack.apps) {
    const end = await app.call<AppStats>('stats');
    check(end.inFlight === 0, `after the run: no Duo call left in flight (${end.inFlight})`);
  }
} finally {
  await stack.stop();
  await redis?.stop();
}

const failed = checks.filter((c) => !c.ok);
console.log('');
console.log(`${checks.length - failed.length} of ${checks.length} checks passed${failed.length ? `; FAILED: ${failed.map((c) => c.what).join(' | ')}` : ''}`);
process.exitCode = failed.length ? 1 : 0;
