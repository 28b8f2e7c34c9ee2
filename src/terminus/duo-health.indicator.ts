import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { DuoService } from '../duo.service.js';

/** What the indicator reports under its key, next to `status`. */
export type DuoHealthDetails = {
  /** Duo passed the last health check. */
  reachable: boolean;
  /** When that health check ended (ISO 8601). */
  checkedAt: string;
  /** Duo's clock minus ours, in seconds, from the last health check that passed. */
  clockOffsetSeconds?: number;
  /** Beyond `clockSkewWarningSeconds`: Duo's tokens are refused until the clock is fixed. */
  clockSkewed: boolean;
  /** The code the last health check failed with (`duo_unavailable`, `duo_timeout`, ...). */
  error?: string;
  failMode: 'closed' | 'open';
  /** Fail mode `open` let a user through without Duo in this process, and that bypass still runs. */
  bypassing: boolean;
};

/**
 * A @nestjs/terminus health indicator for Duo (`nestjs-duo/terminus`). Add it
 * to the providers of the module whose controller serves the health check
 * (that module imports `TerminusModule`; `DuoModule.forRoot({ isGlobal: true })`
 * makes DuoService available there):
 *
 * - `up`: Duo passed the last health check, no bypass is running and the clock agrees with Duo's;
 * - `degraded` (HTTP 200): Duo answers, but fail-open bypasses are still running
 *   (users in without a second factor) or this server's clock is off;
 * - `down` (HTTP 503): Duo failed the last health check.
 *
 * Cached (`DuoService.status()`): a probe every second asks Duo at most once per
 * `healthCheckCacheSeconds`, and never more than once per 5 s. Keep it out of
 * liveness and readiness probes: a Duo outage must not make the orchestrator
 * restart or drain every pod (see the README's Health probes section).
 */
@Injectable()
export class DuoHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly duo: DuoService,
  ) {}

  /** Duo's health under `key` (default `duo`). */
  async isHealthy<const Key extends string = 'duo'>(key: Key = 'duo' as Key): Promise<HealthIndicatorResult<Key>> {
    const status = await this.duo.status();
    const details: DuoHealthDetails = {
      reachable: status.reachable,
      checkedAt: new Date(status.checkedAt).toISOString(),
      ...(status.clockOffsetSeconds === undefined ? {} : { clockOffsetSeconds: Math.round(status.clockOffsetSeconds) }),
      clockSkewed: status.clockSkewed,
      ...(status.error === undefined ? {} : { error: status.error }),
      failMode: status.failMode,
      bypassing: status.bypassing,
    };
    const indicator = this.indicators.check(key);
    if (!status.reachable) return indicator.down(details);
    if (status.bypassing || status.clockSkewed) return indicator.degraded(details);
    return indicator.up(details);
  }
}
