/**
 * DuoHealth: the cached health check and the fail-open decision. A fake client
 * whose calls the test settles by hand, a logger that captures every line and
 * an injected clock: nothing here waits on a real timer.
 */
import type { LoggerService } from '@nestjs/common';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  DuoHealth,
  FAILED_HEALTH_RETRY_MS,
  FAIL_OPEN_CODES,
  FAIL_OPEN_MIN_TIMEOUT_MS,
  HEALTH_LOG_INTERVAL_MS,
  LONG_BYPASS_TTL_MS,
  type DuoHealthSettings,
} from '../../src/duo-health.js';
import { DuoClient, DuoError, type DuoHealthCheckResult } from '../../src/protocol/index.js';
import { CLIENT_SECRET, localOptions, sendJson, startServer } from '../protocol/helpers.js';
import { DUO_ERROR_STATUS, type DuoErrorCode } from '../../src/duo.errors.js';

// ---------------------------------------------------------------- fakes

interface Call {
  resolve(result: DuoHealthCheckResult): void;
  reject(error: unknown): void;
}

/** A health-check client whose every call waits until the test settles it. */
class FakeClient {
  readonly calls: Call[] = [];
  healthCheck(): Promise<DuoHealthCheckResult> {
    return new Promise<DuoHealthCheckResult>((resolve, reject) => this.calls.push({ resolve, reject }));
  }
  /** The latest call, settled with a healthy answer (or the given one). */
  pass(result: DuoHealthCheckResult = HEALTHY): void {
    this.#latest().resolve(result);
  }
  fail(error: unknown): void {
    this.#latest().reject(error);
  }
  #latest(): Call {
    const call = this.calls.at(-1);
    if (!call) throw new Error('no health check call to settle');
    return call;
  }
}

type Level = 'log' | 'warn' | 'error' | 'debug' | 'verbose' | 'fatal';
class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: Level; message: string }> = [];
  log(message: unknown): void {
    this.lines.push({ level: 'log', message: String(message) });
  }
  warn(message: unknown): void {
    this.lines.push({ level: 'warn', message: String(message) });
  }
  error(message: unknown): void {
    this.lines.push({ level: 'error', message: String(message) });
  }
  debug(message: unknown): void {
    this.lines.push({ level: 'debug', message: String(message) });
  }
  verbose(message: unknown): void {
    this.lines.push({ level: 'verbose', message: String(message) });
  }
  fatal(message: unknown): void {
    this.lines.push({ level: 'fatal', message: String(message) });
  }
  at(level: Level): string[] {
    return this.lines.filter((line) => line.level === level).map((line) => line.message);
  }
  clear(): void {
    this.lines.length = 0;
  }
}

const HEALTHY: DuoHealthCheckResult = { timestamp: 1_800_000_000, clockOffsetSeconds: 0.2 };
const OPEN: DuoHealthSettings = { failMode: 'open', healthCheckCacheMs: 30_000, timeoutMs: 10_000, bypassTtlMs: 300_000 };
const CLOSED: DuoHealthSettings = { ...OPEN, failMode: 'closed' };

const fail = (code: DuoErrorCode, message = `Duo failed with ${code} (test).`, details = {}): DuoError<string> => new DuoError<DuoErrorCode>(code, message, details);

let now = 0;
let client: FakeClient;
let logger: CapturingLogger;

function health(settings: Partial<DuoHealthSettings> = {}): DuoHealth {
  return new DuoHealth(client, { ...OPEN, ...settings }, logger, { now: () => now });
}

/** Lets the promise callbacks queued so far run (no timers involved). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

/** A DuoHealth whose first health check has passed (fail mode "open" may then apply). */
async function healthyOnce(settings: Partial<DuoHealthSettings> = {}): Promise<DuoHealth> {
  const made = health(settings);
  const first = made.check();
  client.pass();
  await first;
  logger.clear();
  return made;
}

/** check() that fails with `error` on a fresh call; returns what check() threw. */
async function failingCheck(made: DuoHealth, error: unknown): Promise<unknown> {
  const pending = made.check().then(
    () => {
      throw new Error('expected the health check to fail');
    },
    (caught: unknown) => caught,
  );
  await settle();
  client.fail(error);
  return pending;
}

beforeEach(() => {
  now = 1_000_000;
  client = new FakeClient();
  logger = new CapturingLogger();
});

// ---------------------------------------------------------------- the cache

describe('check(): the cached health check', () => {
  it('caches a healthy answer for healthCheckCacheMs, then asks again', async () => {
    const made = health({ healthCheckCacheMs: 30_000 });
    const first = made.check();
    client.pass();
    await expect(first).resolves.toEqual(HEALTHY);
    now += 29_999;
    await expect(made.check()).resolves.toEqual(HEALTHY);
    expect(client.calls).toHaveLength(1);
    now += 1;
    const second = made.check();
    expect(client.calls).toHaveLength(2);
    client.pass();
    await second;
  });

  it('healthCheckCacheMs 0: every check asks Duo', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    for (let i = 1; i <= 3; i++) {
      const pending = made.check();
      client.pass();
      await pending;
      expect(client.calls).toHaveLength(i);
    }
  });

  it(`remembers a failure for ${FAILED_HEALTH_RETRY_MS} ms (the same error), then asks again`, async () => {
    const made = health();
    const error = fail('duo_unavailable');
    expect(await failingCheck(made, error)).toBe(error);
    now += FAILED_HEALTH_RETRY_MS - 1;
    await expect(made.check()).rejects.toBe(error);
    expect(client.calls).toHaveLength(1);
    now += 1;
    const again = made.check();
    expect(client.calls).toHaveLength(2);
    client.pass();
    await expect(again).resolves.toEqual(HEALTHY);
  });

  it('concurrent callers share one call, for an answer and for a failure', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    const three = [made.check(), made.check(), made.check()];
    expect(client.calls).toHaveLength(1);
    client.pass();
    expect(await Promise.all(three)).toEqual([HEALTHY, HEALTHY, HEALTHY]);
    const error = fail('duo_timeout');
    const failing = [made.check(), made.check()].map((p) => p.catch((caught: unknown) => caught));
    expect(client.calls).toHaveLength(2);
    client.fail(error);
    expect(await Promise.all(failing)).toEqual([error, error]);
  });

  it('never remembers our own full cap (duo_overloaded): the next check asks again', async () => {
    const made = health();
    const overloaded = fail('duo_overloaded');
    expect(await failingCheck(made, overloaded)).toBe(overloaded);
    const next = made.check();
    expect(client.calls).toHaveLength(2);
    client.pass();
    await expect(next).resolves.toEqual(HEALTHY);
  });

  it('turns a non-DuoError from the client into duo_upstream_invalid, which never fails open', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const caught = await failingCheck(made, new TypeError('a bug'));
    expect(caught).toBeInstanceOf(DuoError);
    expect((caught as DuoError).code).toBe('duo_upstream_invalid');
    expect(FAIL_OPEN_CODES.has((caught as DuoError).code)).toBe(false);
    await expect(made.mayFailOpen(caught)).resolves.toBe(false);
  });

  it('markAnswered(): Duo answered a token call, so a remembered failure is out of date', async () => {
    const made = health();
    await failingCheck(made, fail('duo_unavailable'));
    made.markAnswered();
    const next = made.check();
    expect(client.calls).toHaveLength(2);
    client.pass();
    await expect(next).resolves.toEqual(HEALTHY);
    // A healthy answer stays cached.
    made.markAnswered();
    await made.check();
    expect(client.calls).toHaveLength(2);
  });

  it('refresh(): a fresh call even while a healthy answer is cached, shared with a call in flight', async () => {
    const made = await healthyOnce();
    const a = made.refresh();
    const b = made.refresh();
    expect(client.calls).toHaveLength(2);
    client.pass({ ...HEALTHY, timestamp: HEALTHY.timestamp + 1 });
    expect(await a).toEqual(await b);
    await expect(made.check()).resolves.toMatchObject({ timestamp: HEALTHY.timestamp + 1 });
    expect(client.calls).toHaveLength(2);
  });
});

// ---------------------------------------------------------------- rule 1

describe('rule 1: only transient unavailability may fail open', () => {
  it('fail-open codes are exactly duo_unavailable and duo_timeout', () => {
    expect([...FAIL_OPEN_CODES].sort()).toEqual(['duo_timeout', 'duo_unavailable']);
  });

  const never = (Object.keys(DUO_ERROR_STATUS) as DuoErrorCode[]).filter((code) => !FAIL_OPEN_CODES.has(code));

  it.each(never)('%s never fails open, whatever the history', async (code) => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const error = fail(code);
    expect(await failingCheck(made, error)).toBe(error);
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
    // Not after a second, fresh such failure either (no confirmation makes it an outage).
    now += FAILED_HEALTH_RETRY_MS;
    const second = fail(code);
    expect(await failingCheck(made, second)).toBe(second);
    await expect(made.mayFailOpen(second)).resolves.toBe(false);
    expect(client.calls).toHaveLength(3);
  });

  it('duo_unavailable fails open once a second, fresh health check confirms it (after a passed health check)', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const error = fail('duo_unavailable');
    await failingCheck(made, error);
    const decision = made.mayFailOpen(error);
    await settle();
    expect(client.calls).toHaveLength(3);
    client.fail(fail('duo_unavailable'));
    await expect(decision).resolves.toBe(true);
  });

  it('duo_unavailable answered by the confirmation: no bypass', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const error = fail('duo_unavailable');
    await failingCheck(made, error);
    const decision = made.mayFailOpen(error);
    await settle();
    client.pass();
    await expect(decision).resolves.toBe(false);
  });

  it('no bypass while this process itself is behind (event loop or thread pool): it may be our silence, not Duo\'s', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const error = fail('duo_unavailable');
    await failingCheck(made, error);
    const decision = made.mayFailOpen(error);
    await settle();
    client.fail(fail('duo_unavailable'));
    await settle();
    // Hold the event loop while the probe waits for its turn.
    const until = Date.now() + 1_200;
    while (Date.now() < until) {
      // busy: the process is overloaded
    }
    await expect(decision).resolves.toBe(false);
    expect(logger.lines.some((line) => line.message.includes('this server itself is overloaded'))).toBe(true);
  });

  it('anything that is not a DuoError never fails open', async () => {
    const made = await healthyOnce();
    for (const value of [new Error('duo_unavailable'), { code: 'duo_unavailable' }, 'duo_unavailable', undefined]) {
      await expect(made.mayFailOpen(value)).resolves.toBe(false);
    }
  });

  it('fail mode "closed" never fails open, and the decision costs no call', async () => {
    const made = await healthyOnce({ failMode: 'closed', healthCheckCacheMs: 0 });
    const error = fail('duo_unavailable');
    await failingCheck(made, error);
    const calls = client.calls.length;
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
    await expect(made.mayFailOpen(fail('duo_timeout'))).resolves.toBe(false);
    expect(client.calls).toHaveLength(calls);
  });

  it('an unknown fail mode counts as "closed"', async () => {
    const made = await healthyOnce({ failMode: 'opn' as never, healthCheckCacheMs: 0 });
    const error = fail('duo_unavailable');
    await failingCheck(made, error);
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
  });
});

// ---------------------------------------------------------------- rule 2

describe('rule 2: no bypass before Duo has passed one health check in this process', () => {
  it('a Duo that never answered is a misconfiguration: no bypass, and an error that says so (once per interval)', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    expect(made.everHealthy).toBe(false);
    const error = fail('duo_unavailable', 'Duo could not be reached for the health check (ENOTFOUND). Check the network path to Duo (firewall, proxy, DNS).');
    await failingCheck(made, error);
    logger.clear();
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
    const errors = logger.at('error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/never|not .*passed/i);
    expect(errors[0]).toMatch(/misconfiguration/);
    expect(errors[0]).toMatch(/apiHost|apiBaseUrl/);
    // No health call is spent on the decision.
    expect(client.calls).toHaveLength(1);
    now += HEALTH_LOG_INTERVAL_MS;
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
    expect(logger.at('error')).toHaveLength(2);
  });

  it('not for a timeout either, without even a confirmation call', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    const error = fail('duo_timeout');
    await failingCheck(made, error);
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
    expect(client.calls).toHaveLength(1);
  });

  it('once one health check has passed, an outage may fail open', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    const down = fail('duo_unavailable');
    await failingCheck(made, down);
    await expect(made.mayFailOpen(down)).resolves.toBe(false);
    now += FAILED_HEALTH_RETRY_MS;
    const up = made.check();
    client.pass();
    await up;
    expect(made.everHealthy).toBe(true);
    const downAgain = fail('duo_unavailable');
    await failingCheck(made, downAgain);
    const decision = made.mayFailOpen(downAgain);
    await settle();
    client.fail(fail('duo_unavailable'));
    await expect(decision).resolves.toBe(true);
  });

  it('a token call answered (markAnswered) does not stand in for a passed health check', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    made.markAnswered();
    const error = fail('duo_unavailable');
    await failingCheck(made, error);
    await expect(made.mayFailOpen(error)).resolves.toBe(false);
  });
});

// ---------------------------------------------------------------- rule 3

describe('rule 3: a timeout is confirmed by a second, fresh health check', () => {
  it('the confirmation fails too (duo_timeout): the bypass is allowed', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const first = fail('duo_timeout');
    await failingCheck(made, first);
    const decision = made.mayFailOpen(first);
    await settle();
    expect(client.calls).toHaveLength(3);
    client.fail(fail('duo_timeout'));
    await expect(decision).resolves.toBe(true);
  });

  it('the confirmation fails with duo_unavailable: allowed', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const first = fail('duo_timeout');
    await failingCheck(made, first);
    const decision = made.mayFailOpen(first);
    await settle();
    client.fail(fail('duo_unavailable'));
    await expect(decision).resolves.toBe(true);
  });

  it('Duo answers the confirmation (our own event loop stalled): no bypass, and the healthy answer is cached', async () => {
    const made = await healthyOnce();
    now += OPEN.healthCheckCacheMs;
    const first = fail('duo_timeout');
    await failingCheck(made, first);
    const decision = made.mayFailOpen(first);
    await settle();
    client.pass();
    await expect(decision).resolves.toBe(false);
    await expect(made.check()).resolves.toEqual(HEALTHY);
    expect(client.calls).toHaveLength(3);
  });

  it.each<DuoErrorCode>(['duo_tls_failed', 'duo_rate_limited', 'duo_invalid_client', 'duo_overloaded'])(
    'the confirmation fails with %s: no bypass',
    async (code) => {
      const made = await healthyOnce({ healthCheckCacheMs: 0 });
      const first = fail('duo_timeout');
      await failingCheck(made, first);
      const decision = made.mayFailOpen(first);
      await settle();
      client.fail(fail(code));
      await expect(decision).resolves.toBe(false);
    },
  );

  it('many logins that met the same timeout share one confirmation call', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const first = fail('duo_timeout');
    await failingCheck(made, first);
    const decisions = Array.from({ length: 5 }, () => made.mayFailOpen(first));
    await settle();
    expect(client.calls).toHaveLength(3);
    client.fail(fail('duo_timeout'));
    expect(await Promise.all(decisions)).toEqual([true, true, true, true, true]);
  });

  it('while the confirmed outage is remembered, the next logins are decided without another call', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    const first = fail('duo_timeout');
    await failingCheck(made, first);
    const decision = made.mayFailOpen(first);
    await settle();
    const confirmation = fail('duo_timeout');
    client.fail(confirmation);
    await expect(decision).resolves.toBe(true);
    const calls = client.calls.length;
    const cached = await made.check().catch((caught: unknown) => caught);
    expect(cached).toBe(confirmation);
    await expect(made.mayFailOpen(cached)).resolves.toBe(true);
    expect(client.calls).toHaveLength(calls);
    // When it expires, the next fresh timeout follows a failure: it is its own confirmation.
    now += FAILED_HEALTH_RETRY_MS;
    const third = await failingCheck(made, fail('duo_timeout'));
    await expect(made.mayFailOpen(third)).resolves.toBe(true);
    expect(client.calls).toHaveLength(calls + 1);
  });

  it('a success in between breaks the streak: a lone timeout is confirmed again', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    await failingCheck(made, fail('duo_timeout'));
    now += FAILED_HEALTH_RETRY_MS;
    const up = made.check();
    client.pass();
    await up;
    const lone = fail('duo_timeout');
    await failingCheck(made, lone);
    const calls = client.calls.length;
    const decision = made.mayFailOpen(lone);
    await settle();
    expect(client.calls).toHaveLength(calls + 1);
    client.pass();
    await expect(decision).resolves.toBe(false);
  });

  it('a Duo token call answered (markAnswered) breaks the streak too', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    await failingCheck(made, fail('duo_timeout'));
    made.markAnswered();
    const lone = fail('duo_timeout');
    await failingCheck(made, lone);
    const decision = made.mayFailOpen(lone);
    await settle();
    client.pass();
    await expect(decision).resolves.toBe(false);
  });
});

// ---------------------------------------------------------------- rule 4

describe('rule 4: each distinct health failure is logged once per interval, as an error, with its fix', () => {
  it.each<[string, DuoError<string>, RegExp]>([
    ['invalid_client', fail('duo_invalid_client', 'Duo refused our credentials in the health check (invalid_client).'), /check clientId\/clientSecret\/apiHost, and the clock/],
    ['a 5xx', fail('duo_unavailable', 'Duo answered the health check with HTTP 503; Duo is unavailable. Try again later.'), /status\.duo\.com/],
    ['unreachable', fail('duo_unavailable', 'Duo could not be reached for the health check (ECONNREFUSED).'), /network path|DNS|firewall/],
    ['TLS', fail('duo_tls_failed', "Duo's TLS certificate was refused in the health check (CERT_HAS_EXPIRED)."), /"ca" option/],
    ['rate limited', fail('duo_rate_limited', 'Duo is rate-limiting this integration (HTTP 429).', { retryAfterSeconds: 30 }), /30 s/],
    ['a timeout', fail('duo_timeout', 'Duo did not complete the health check within 10000 ms.'), /10000 ms|timeoutMs/],
    ['a refusal', fail('duo_request_rejected', 'Duo answered the health check with an error: Access forbidden.'), /apiHost|apiBaseUrl/],
    ['an answer that is not Duo', fail('duo_upstream_invalid', "Duo's answer to the health check is not JSON."), /apiHost|apiBaseUrl/],
  ])('%s: one error line with the code, the message and the fix', async (_name, error, fix) => {
    const made = health({ healthCheckCacheMs: 0 });
    await failingCheck(made, error);
    const errors = logger.at('error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(error.code);
    expect(errors[0]).toContain(error.message);
    expect(errors[0]).toMatch(fix);
  });

  it('the same code again within the interval is not logged (cached or fresh); after the interval it is, with the count left out', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    await failingCheck(made, fail('duo_unavailable'));
    await made.check().catch(() => undefined); // cached: no call, no line
    now += FAILED_HEALTH_RETRY_MS;
    await failingCheck(made, fail('duo_unavailable'));
    now += FAILED_HEALTH_RETRY_MS;
    await failingCheck(made, fail('duo_unavailable'));
    expect(logger.at('error')).toHaveLength(1);
    now += HEALTH_LOG_INTERVAL_MS;
    await failingCheck(made, fail('duo_unavailable'));
    const errors = logger.at('error');
    expect(errors).toHaveLength(2);
    expect(errors[1]).toMatch(/2 more/);
  });

  it('another code within the interval is logged at once', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    await failingCheck(made, fail('duo_unavailable'));
    now += FAILED_HEALTH_RETRY_MS;
    await failingCheck(made, fail('duo_invalid_client'));
    expect(logger.at('error').map((line) => /duo_[a-z_]+/.exec(line)?.[0])).toEqual(['duo_unavailable', 'duo_invalid_client']);
  });

  it('in fail mode "open", says whether this failure lets users through', async () => {
    const made = await healthyOnce({ healthCheckCacheMs: 0 });
    await failingCheck(made, fail('duo_unavailable'));
    expect(logger.at('error')[0]).toMatch(/WITHOUT a second factor/);
    now += FAILED_HEALTH_RETRY_MS;
    await failingCheck(made, fail('duo_tls_failed'));
    expect(logger.at('error')[1]).toMatch(/does not let anyone through|not .*fail open|refused until/i);
  });

  it('says once when Duo answers again', async () => {
    const made = health({ healthCheckCacheMs: 0 });
    await failingCheck(made, fail('duo_unavailable'));
    now += FAILED_HEALTH_RETRY_MS;
    const up = made.check();
    client.pass();
    await up;
    const up2 = made.check();
    client.pass();
    await up2;
    expect(logger.at('log').filter((line) => /again/.test(line))).toHaveLength(1);
  });

  it('never logs the secret, with a real DuoClient that Duo refuses', async () => {
    const server = await startServer((_req, res) =>
      sendJson(res, 401, { stat: 'FAIL', code: 40002, message: 'invalid_client', message_detail: 'The provided client_assertion was invalid.', timestamp: Math.floor(Date.now() / 1000) }),
    );
    const real = new DuoClient(localOptions(server.url));
    try {
      const made = new DuoHealth(real, OPEN, logger, { now: () => now });
      await expect(made.check()).rejects.toMatchObject({ code: 'duo_invalid_client' });
      await made.onBootstrap();
      const text = logger.lines.map((line) => line.message).join('\n');
      expect(text).toMatch(/duo_invalid_client/);
      for (let i = 0; i + 12 <= CLIENT_SECRET.length; i += 4) expect(text).not.toContain(CLIENT_SECRET.slice(i, i + 12));
      for (const assertion of server.requests.map((r) => r.form.client_assertion ?? '')) expect(text).not.toContain(assertion.split('.')[2]);
    } finally {
      await real.close();
      await server.close();
    }
  });
});

// ---------------------------------------------------------------- rule 5

describe('rule 5: onBootstrap()', () => {
  it('fail mode "open": warns that users get in without a second factor, and runs one health check', async () => {
    const made = health();
    const boot = made.onBootstrap();
    await settle();
    expect(client.calls).toHaveLength(1);
    client.pass();
    await boot;
    const warnings = logger.at('warn');
    expect(warnings.some((line) => /fail mode "open"/i.test(line) && /WITHOUT a second factor/.test(line) && /unreachable/.test(line))).toBe(true);
    expect(logger.at('error')).toEqual([]);
    expect(made.everHealthy).toBe(true);
  });

  it('fail mode "open" and the health check fails: an error with the fix, and bootstrap still completes', async () => {
    const made = health();
    const boot = made.onBootstrap();
    await settle();
    client.fail(fail('duo_invalid_client', 'Duo refused our credentials in the health check (invalid_client).'));
    await expect(boot).resolves.toBeUndefined();
    const errors = logger.at('error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/duo_invalid_client/);
    expect(errors[0]).toMatch(/check clientId\/clientSecret\/apiHost/);
    expect(errors[0]).toMatch(/startup/);
  });

  it(`warns when bypassTtlMs is over ${LONG_BYPASS_TTL_MS / 60_000} minutes, not at it`, async () => {
    const long = health({ bypassTtlMs: LONG_BYPASS_TTL_MS + 1000 });
    const boot = long.onBootstrap();
    await settle();
    client.pass();
    await boot;
    expect(logger.at('warn').some((line) => /bypassTtlSeconds is 3601 s/.test(line) && /without Duo/.test(line))).toBe(true);
    logger.clear();
    const atLimit = health({ bypassTtlMs: LONG_BYPASS_TTL_MS });
    const boot2 = atLimit.onBootstrap();
    await settle();
    client.pass();
    await boot2;
    expect(logger.at('warn').some((line) => /bypassTtlSeconds is/.test(line))).toBe(false);
  });

  it(`warns when timeoutMs is under ${FAIL_OPEN_MIN_TIMEOUT_MS} ms (a slow Duo would become a bypass), not at it`, async () => {
    const short = health({ timeoutMs: FAIL_OPEN_MIN_TIMEOUT_MS - 1 });
    const boot = short.onBootstrap();
    await settle();
    client.pass();
    await boot;
    expect(logger.at('warn').some((line) => line.includes(`timeoutMs is ${FAIL_OPEN_MIN_TIMEOUT_MS - 1} ms`))).toBe(true);
    logger.clear();
    const enough = health({ timeoutMs: FAIL_OPEN_MIN_TIMEOUT_MS });
    const boot2 = enough.onBootstrap();
    await settle();
    client.pass();
    await boot2;
    expect(logger.at('warn').some((line) => /timeoutMs is/.test(line))).toBe(false);
  });

  it('fail mode "closed": no call, no line', async () => {
    const made = health({ failMode: 'closed', bypassTtlMs: 86_400_000 });
    await made.onBootstrap();
    expect(client.calls).toHaveLength(0);
    expect(logger.lines).toEqual([]);
  });
});

// ---------------------------------------------------------------- rule 6

describe('rule 6: the clock-skew warning', () => {
  it('is logged as a warning from a fresh answer, once per interval, not from the cache', async () => {
    const skewed: DuoHealthCheckResult = { timestamp: 1, clockOffsetSeconds: 120, clockSkewWarning: "This server's clock is 120 s behind Duo's. Synchronise the clock (NTP)." };
    const made = health({ healthCheckCacheMs: 1000 });
    const first = made.check();
    client.pass(skewed);
    await first;
    await made.check();
    expect(logger.at('warn')).toEqual([skewed.clockSkewWarning]);
    now += 1000;
    const second = made.check();
    client.pass(skewed);
    await second;
    expect(logger.at('warn')).toHaveLength(1);
    now += HEALTH_LOG_INTERVAL_MS;
    const third = made.check();
    client.pass(skewed);
    await third;
    expect(logger.at('warn')).toHaveLength(2);
  });
});

describe('defaults', () => {
  it('works with the real clock and a Nest Logger when none are given', async () => {
    const made = new DuoHealth(client, CLOSED);
    const pending = made.check();
    client.pass();
    await expect(pending).resolves.toEqual(HEALTHY);
  });
});
