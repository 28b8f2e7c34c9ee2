/**
 * DuoHealth.status(), what health probes read (DuoService.status(), the
 * terminus indicator): a probe every second of an injected clock asks Duo at
 * most once per cache period, and never more than once per 5 s.
 */
import type { LoggerService } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { DuoHealth, FAILED_HEALTH_RETRY_MS, PROBE_MIN_INTERVAL_MS, type DuoHealthSettings } from '../../src/duo-health.js';
import { DuoError, type DuoHealthCheckResult } from '../../src/protocol/index.js';

const quiet: LoggerService = { log: () => undefined, warn: () => undefined, error: () => undefined };

/** A client that answers at once, healthy or with the failure set, and counts its calls. */
class CountingClient {
  calls = 0;
  failure?: DuoError;
  result: DuoHealthCheckResult = { timestamp: 0, clockOffsetSeconds: 1.4 };
  async healthCheck(): Promise<DuoHealthCheckResult> {
    this.calls++;
    if (this.failure) throw this.failure;
    return this.result;
  }
}

function health(settings: Partial<DuoHealthSettings> = {}) {
  let now = 1_000_000;
  const client = new CountingClient();
  const subject = new DuoHealth(client, { failMode: 'closed', healthCheckCacheMs: 30_000, timeoutMs: 5_000, bypassTtlMs: 300_000, ...settings }, quiet, { now: () => now });
  return { client, subject, advance: (ms: number) => (now += ms), now: () => now };
}

/** Probes once a second for `seconds` seconds of the fake clock. */
async function probeEverySecond(subject: DuoHealth, advance: (ms: number) => number, seconds: number): Promise<void> {
  for (let i = 0; i < seconds; i++) {
    await subject.status();
    advance(1_000);
  }
}

describe('DuoHealth.status() for health probes', () => {
  it('asks Duo once per healthCheckCacheMs while Duo is healthy (60 probes, 30 s cache: 2 calls)', async () => {
    const { client, subject, advance } = health();
    await probeEverySecond(subject, advance, 60);
    expect(client.calls).toBe(2);
  });

  it(`never asks Duo more than once per ${PROBE_MIN_INTERVAL_MS / 1000} s, even with healthCheckCacheMs 0`, async () => {
    const { client, subject, advance } = health({ healthCheckCacheMs: 0 });
    await probeEverySecond(subject, advance, 60);
    expect(client.calls).toBe(60_000 / PROBE_MIN_INTERVAL_MS);
  });

  it('asks a failing Duo again only after the failure is forgotten', async () => {
    const { client, subject, advance } = health();
    client.failure = new DuoError('duo_unavailable', 'down');
    await probeEverySecond(subject, advance, 60);
    expect(client.calls).toBe(60_000 / Math.max(FAILED_HEALTH_RETRY_MS, PROBE_MIN_INTERVAL_MS));
  });

  it('reports the last check: reachable with the clock offset, or the failure code with the last offset known', async () => {
    const { client, subject, advance, now } = health({ healthCheckCacheMs: 0 });
    expect(await subject.status()).toEqual({ reachable: true, checkedAt: now(), clockOffsetSeconds: 1.4, clockSkewed: false, failMode: 'closed', bypassing: false });
    client.failure = new DuoError('duo_timeout', 'slow');
    advance(PROBE_MIN_INTERVAL_MS);
    expect(await subject.status()).toEqual({ reachable: false, checkedAt: now(), clockOffsetSeconds: 1.4, clockSkewed: false, error: 'duo_timeout', failMode: 'closed', bypassing: false });
  });

  it('reports a skewed clock', async () => {
    const { client, subject } = health();
    client.result = { timestamp: 0, clockOffsetSeconds: -95, clockSkewWarning: "This server's clock is 95 s ahead of Duo's." };
    expect(await subject.status()).toMatchObject({ reachable: true, clockOffsetSeconds: -95, clockSkewed: true });
  });

  it('reports bypasses while the last one granted still runs', async () => {
    const { subject, advance, now } = health({ failMode: 'open' });
    expect(await subject.status()).toMatchObject({ failMode: 'open', bypassing: false });
    const until = now() + 300_000;
    subject.recordBypass(until);
    subject.recordBypass(now() + 1_000); // an earlier end does not shorten it
    expect(await subject.status()).toMatchObject({ bypassing: true, bypassingUntil: until });
    advance(300_000);
    expect(await subject.status()).toMatchObject({ bypassing: false, bypassingUntil: until });
  });

  it('never rejects, whatever the client throws', async () => {
    const { client, subject } = health();
    (client as { healthCheck: () => Promise<DuoHealthCheckResult> }).healthCheck = async () => {
      throw new TypeError('a bug');
    };
    expect(await subject.status()).toMatchObject({ reachable: false, error: 'duo_upstream_invalid' });
  });
});
