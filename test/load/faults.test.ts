/**
 * The short version of `npm run load` (bench/load.ts): a few seconds, small
 * numbers, the same promises. A burst of logins is verified exactly once each;
 * when Duo is slow or silent, calls to Duo never exceed maxConcurrentRequests
 * (beyond it the callback fails at once with 503), nothing waits past the
 * deadline (timeoutMs), the app's sockets to Duo stay bounded, and the app
 * recovers by itself when Duo answers again.
 */
import { readFileSync } from 'node:fs';
import { HEALTH_LANE } from '../../src/protocol/http.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { PLATFORMS, createTestApp, loginWithDuo, pathOf, type TestApp } from '../e2e/fixtures.js';
import { DuoContext } from '../../src/duo.context.js';

const TIMEOUT_MS = 1500;
const CAP = 4;
const BURST = 12;
/** Scheduling slack on a shared machine, on top of the deadline. */
const MARGIN_MS = 1500;

type Agent = ReturnType<TestApp['agent']>;

interface Prepared {
  agent: Agent;
  username: string;
  callbackPath: string;
}

interface Timed {
  status: number;
  location?: string;
  ms: number;
}

/**
 * Client-side TCP connections in this process's network namespace to `port`
 * (ESTABLISHED or closing), from /proc/net/tcp; undefined where there is no /proc.
 */
function connectionsTo(port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let found = false;
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    found = true;
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // st: 01 ESTABLISHED, 04 FIN_WAIT1, 05 FIN_WAIT2, 08 CLOSE_WAIT (TIME_WAIT holds no socket).
      if (fields.length > 3 && fields[2]!.endsWith(`:${hexPort}`) && ['01', '04', '05', '08'].includes(fields[3]!)) count++;
    }
  }
  return found ? count : undefined;
}

describe.each(PLATFORMS)('under load and faults on %s (short run)', (adapter) => {
  let emulator: DuoEmulator;
  let t: TestApp;
  let port: number;
  let user = 0;

  beforeAll(async () => {
    emulator = await DuoEmulator.start({ codeTtlSeconds: 300 });
    port = Number(new URL(emulator.baseUrl).port);
    t = await createTestApp(emulator, {
      adapter,
      duo: { timeoutMs: TIMEOUT_MS, maxConcurrentRequests: CAP, healthCheckCacheSeconds: 3600 },
    });
  });

  afterAll(async () => {
    await t?.close();
    await emulator?.close();
  });

  beforeEach(() => {
    emulator.setFailure('none');
  });

  /** Sessions whose Duo prompt was approved: only the callback (the code exchange) is left. */
  async function prepare(count: number): Promise<Prepared[]> {
    const prepared: Prepared[] = [];
    for (let i = 0; i < count; i++) {
      const agent = t.agent();
      const username = `load-${adapter}-${++user}`;
      await agent.post('/login').send({ username }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      prepared.push({ agent, username, callbackPath: pathOf(await emulator.authorize(start.headers.location!)) });
    }
    return prepared;
  }

  /** All callbacks at once, each timed; samples Duo calls in flight and sockets to Duo meanwhile. */
  async function burstOfCallbacks(prepared: Prepared[]): Promise<{ results: Timed[]; peakInFlight: number; peakSockets: number | undefined }> {
    let peakInFlight = 0;
    let peakSockets: number | undefined;
    const sampler = setInterval(() => {
      peakInFlight = Math.max(peakInFlight, t.app.get(DuoContext).client.inFlight);
      const sockets = connectionsTo(port);
      if (sockets !== undefined) peakSockets = Math.max(peakSockets ?? 0, sockets);
    }, 5);
    try {
      const results = await Promise.all(
        prepared.map(async ({ agent, callbackPath }): Promise<Timed> => {
          const started = performance.now();
          const res = await agent.get(callbackPath).set('Accept', 'text/html');
          return { status: res.status, ...(res.headers.location ? { location: res.headers.location } : {}), ms: performance.now() - started };
        }),
      );
      return { results, peakInFlight, peakSockets };
    } finally {
      clearInterval(sampler);
    }
  }

  async function inFlightDrains(): Promise<void> {
    const until = Date.now() + TIMEOUT_MS + MARGIN_MS;
    while (t.app.get(DuoContext).client.inFlight > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(t.app.get(DuoContext).client.inFlight).toBe(0);
  }

  it('a burst of logins: every login passes and is verified exactly once', async () => {
    const before = emulator.stats.tokenExchangesOk;
    const passedBefore = t.events.filter((e) => e.type === 'second_factor_passed').length;
    const usernames: string[] = [];
    // Groups of CAP browsers at once: never more exchanges than the cap allows.
    for (let group = 0; group < 24 / CAP; group++) {
      await Promise.all(
        Array.from({ length: CAP }, async () => {
          const agent = t.agent();
          const username = `burst-${adapter}-${++user}`;
          usernames.push(username);
          const { callback } = await loginWithDuo(emulator, agent, username);
          expect(callback.status).toBe(303);
          await agent.get('/account').set('Accept', 'text/html').expect(200, `account of ${username}`);
        }),
      );
    }
    expect(emulator.stats.tokenExchangesOk - before).toBe(usernames.length);
    const passed = t.events.filter((e) => e.type === 'second_factor_passed').slice(passedBefore);
    expect(passed.map((e) => e.username).sort()).toEqual([...usernames].sort());
  });

  it('Duo slow: the calls within the cap finish, the ones beyond it get 503 at once', async () => {
    const prepared = await prepare(BURST);
    emulator.setFailure('slow', { slowMs: (TIMEOUT_MS * 2) / 3 });
    const { results, peakInFlight, peakSockets } = await burstOfCallbacks(prepared);

    expect(peakInFlight).toBeLessThanOrEqual(CAP);
    if (peakSockets !== undefined) expect(peakSockets).toBeLessThanOrEqual(CAP + HEALTH_LANE);
    const passed = results.filter((r) => r.status === 303 && r.location === '/account');
    const refused = results.filter((r) => r.status === 503);
    expect(passed.length + refused.length).toBe(BURST);
    expect(passed.length).toBeGreaterThanOrEqual(1);
    expect(passed.length).toBeLessThanOrEqual(CAP);
    expect(refused.length).toBeGreaterThanOrEqual(BURST - CAP);
    // Refused at once: before Duo's delay (1 s) would have passed for any of them, however loaded the machine.
    for (const r of refused) expect(r.ms).toBeLessThan((TIMEOUT_MS * 2) / 3);
    for (const r of results) expect(r.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    await inFlightDrains();
  });

  it('Duo silent: no callback waits past the deadline (504), the rest get 503 at once', async () => {
    const prepared = await prepare(BURST);
    emulator.setFailure('no_answer', { endpoints: ['token'] });
    const { results, peakInFlight, peakSockets } = await burstOfCallbacks(prepared);

    expect(peakInFlight).toBeLessThanOrEqual(CAP);
    if (peakSockets !== undefined) expect(peakSockets).toBeLessThanOrEqual(CAP + HEALTH_LANE);
    const timedOut = results.filter((r) => r.status === 504);
    const refused = results.filter((r) => r.status === 503);
    expect(timedOut.length + refused.length).toBe(BURST);
    expect(timedOut.length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(BURST - CAP - 1);
    for (const r of timedOut) {
      expect(r.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
      expect(r.ms).toBeLessThan(TIMEOUT_MS + MARGIN_MS);
    }
    // Refused at once: every one before the deadline that the waiting calls had to reach.
    for (const r of refused) expect(r.ms).toBeLessThan(TIMEOUT_MS - 50);
    await inFlightDrains();
    // The hung calls were cut off: their sockets are closed, not left to pile up.
    if (connectionsTo(port) !== undefined) {
      const until = Date.now() + 2000;
      while ((connectionsTo(port) ?? 0) > CAP && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(connectionsTo(port)).toBeLessThanOrEqual(CAP);
    }
  });

  it('recovers by itself when Duo answers again: the next logins pass', async () => {
    emulator.setFailure('no_answer', { endpoints: ['token'] });
    const hung = await burstOfCallbacks(await prepare(CAP));
    expect(hung.results.every((r) => r.status === 504)).toBe(true);

    emulator.setFailure('none');
    const before = emulator.stats.tokenExchangesOk;
    const { results, peakInFlight } = await burstOfCallbacks(await prepare(CAP));
    expect(results.map((r) => r.status)).toEqual(Array(CAP).fill(303));
    expect(peakInFlight).toBeLessThanOrEqual(CAP);
    expect(emulator.stats.tokenExchangesOk - before).toBe(CAP);
    await inFlightDrains();
  });
});
