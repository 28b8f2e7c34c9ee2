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

  /**
   * Duo's health under `key` (default `duo`). With several Duo applications
   * (`applications`), every one is checked and reported under `applications`
   * by name; the result is down when any is down, degraded when any is degraded
   * (a bypass running for the admin application counts as much as for the
   * default one). `{ application }` reports that one alone.
   */
  async isHealthy<const Key extends string = 'duo'>(key: Key = 'duo' as Key, options: { application?: string } = {}): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.indicators.check(key);
    const names = options.application !== undefined ? [options.application] : this.duo.applicationNames;
    const statuses = await Promise.all(names.map(async (name) => [name, await this.duo.forApplication(name).status()] as const));
    const reports = statuses.map(([name, status]) => [name, detailsOf(status)] as const);
    const worst = reports.some(([, report]) => !report.reachable) ? 'down' : reports.some(([, report]) => report.bypassing || report.clockSkewed) ? 'degraded' : 'up';
    if (names.length === 1 && (options.application !== undefined || names[0] === this.duo.applicationName)) {
      const details = reports[0]![1];
      return worst === 'down' ? indicator.down(details) : worst === 'degraded' ? indicator.degraded(details) : indicator.up(details);
    }
    const details = { applications: Object.fromEntries(reports) };
    return worst === 'down' ? indicator.down(details) : worst === 'degraded' ? indicator.degraded(details) : indicator.up(details);
  }
}

function detailsOf(status: Awaited<ReturnType<DuoService['status']>>): DuoHealthDetails {
  return {
    reachable: status.reachable,
    checkedAt: new Date(status.checkedAt).toISOString(),
    ...(status.clockOffsetSeconds === undefined ? {} : { clockOffsetSeconds: Math.round(status.clockOffsetSeconds) }),
    clockSkewed: status.clockSkewed,
    ...(status.error === undefined ? {} : { error: status.error }),
    failMode: status.failMode,
    bypassing: status.bypassing,
  };
}
