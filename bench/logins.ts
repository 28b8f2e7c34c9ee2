/**
 * Benchmark 4: complete logins per second through a Nest app and the emulator
 * (primary login, guard's 303 to Duo, Duo's prompt, callback with the code
 * exchange, protected page), with the CPU time each login costs the app
 * (process.cpuUsage() of the app's own process).
 */
import type { AppEvents, AppStats } from './app-process.js';
import { startStack, type Stack } from './stack.js';
import { figureRow, formatNumber, log, median, type ResultRow } from './stats.js';

export interface LoginsOptions {
  runs?: number;
  seconds?: number;
  /** Browsers logging in at once. */
  concurrency?: number;
}

interface RunResult {
  logins: number;
  perSecond: number;
  appCpuMs: number;
  emulatorCpuMs: number;
}

let userCounter = 0;

/** Closed loop: `concurrency` browsers each log in again as soon as they are done, for `seconds`. */
async function loginLoop(stack: Stack, seconds: number, concurrency: number): Promise<{ ok: number; failed: number; elapsedMs: number }> {
  let ok = 0;
  let failed = 0;
  let firstFailure = '';
  const started = performance.now();
  const end = started + seconds * 1000;
  const browser = async (): Promise<void> => {
    while (performance.now() < end) {
      const outcome = await stack.driver.login(`bench.user.${++userCounter}`);
      if (outcome.ok) ok++;
      else {
        failed++;
        firstFailure ||= `${outcome.failedAt} HTTP ${outcome.status}: ${outcome.reason}`;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, browser));
  if (failed > 0) log(`logins: ${failed} failed, first: ${firstFailure}`);
  return { ok, failed, elapsedMs: performance.now() - started };
}

const cpuMs = (before: NodeJS.CpuUsage, after: NodeJS.CpuUsage): number => (after.user + after.system - before.user - before.system) / 1000;

export async function benchLogins(options: LoginsOptions = {}): Promise<ResultRow[]> {
  const runs = options.runs ?? 3;
  const seconds = options.seconds ?? 8;
  const concurrency = options.concurrency ?? 16;
  const stack = await startStack();
  try {
    log('logins: warm-up');
    await loginLoop(stack, 2, concurrency);
    const results: RunResult[] = [];
    for (let run = 0; run < runs; run++) {
      const appBefore = await stack.app.call<AppStats>('stats');
      const emulatorBefore = await stack.emulator.call<NodeJS.CpuUsage>('cpu');
      const exchangesBefore = (await stack.emulator.call<{ tokenExchangesOk: number }>('stats')).tokenExchangesOk;
      const passedBefore = (await stack.app.call<AppEvents>('events')).passed;
      const { ok, failed, elapsedMs } = await loginLoop(stack, seconds, concurrency);
      const appAfter = await stack.app.call<AppStats>('stats');
      const emulatorAfter = await stack.emulator.call<NodeJS.CpuUsage>('cpu');
      const exchanges = (await stack.emulator.call<{ tokenExchangesOk: number }>('stats')).tokenExchangesOk - exchangesBefore;
      const passed = (await stack.app.call<AppEvents>('events')).passed - passedBefore;
      if (failed > 0) throw new Error(`logins benchmark: ${failed} logins failed`);
      if (exchanges !== ok || passed !== ok) throw new Error(`logins benchmark: ${ok} logins but ${exchanges} token exchanges and ${passed} passed events`);
      results.push({
        logins: ok,
        perSecond: ok / (elapsedMs / 1000),
        appCpuMs: cpuMs(appBefore.cpu, appAfter.cpu) / ok,
        emulatorCpuMs: cpuMs(emulatorBefore, emulatorAfter) / ok,
      });
    }
    const rates = results.map((r) => r.perSecond);
    log(
      `logins: ${results.map((r) => `${r.logins} logins, ${r.perSecond.toFixed(0)}/s, app ${r.appCpuMs.toFixed(2)} ms CPU/login, emulator ${r.emulatorCpuMs.toFixed(2)} ms`).join('; ')}`,
    );
    const appCpu = median(results.map((r) => r.appCpuMs));
    const emulatorCpu = median(results.map((r) => r.emulatorCpuMs));
    return [
      figureRow(
        `4. complete logins/s (${concurrency} browsers at once)`,
        `${formatNumber(median(rates))} logins/s [${formatNumber(Math.min(...rates))}-${formatNumber(Math.max(...rates))}]`,
        `app CPU ${appCpu.toFixed(2)} ms/login (emulator ${emulatorCpu.toFixed(2)} ms)`,
      ),
    ];
  } finally {
    await stack.stop();
  }
}
