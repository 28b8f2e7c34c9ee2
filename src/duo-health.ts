import { randomBytes } from 'node:crypto';
import { Logger, type LoggerService } from '@nestjs/common';
import { DuoError, isDuoError, type DuoProtocolErrorCode } from './protocol/errors.js';
import type { DuoHealthCheckResult } from './protocol/types.js';

/**
 * The health-check failures fail mode `open` may let through: transient
 * unavailability only. Never a refused certificate (`duo_tls_failed`), a rate
 * limit (`duo_rate_limited`), refused credentials (`duo_invalid_client`), a
 * refusal (`duo_request_rejected`), an answer that is not Duo's
 * (`duo_upstream_invalid`), our own full cap (`duo_overloaded`, which anyone
 * could trigger by starting logins), nor anything else.
 */
export const FAIL_OPEN_CODES: ReadonlySet<string> = new Set<DuoProtocolErrorCode>(['duo_unavailable', 'duo_timeout']);
/** How long a failed health check is remembered before Duo is asked again, in milliseconds. */
export const FAILED_HEALTH_RETRY_MS = 5_000;
/** Each kind of health line (a failure code, the clock skew, ...) is logged at most once per this many milliseconds. */
export const HEALTH_LOG_INTERVAL_MS = 60_000;
/** A `bypassTtlMs` beyond this (one hour) is warned about at bootstrap in fail mode `open`. */
export const LONG_BYPASS_TTL_MS = 3_600_000;
/**
 * The shortest `timeoutMs` that suits fail mode `open`: below it, a slow Duo
 * (or a slow network) becomes a bypass. Warned about at bootstrap; the module
 * may also enforce it.
 */
export const FAIL_OPEN_MIN_TIMEOUT_MS = 3_000;
/** How far behind this process's event loop or thread pool may be before a failed health check is taken for our own overload. */
export const LOCAL_STALL_MS = 1_000;
/** `status()` (health probes) asks Duo at most once per this many milliseconds, whatever `healthCheckCacheMs` is. */
export const PROBE_MIN_INTERVAL_MS = 5_000;

/**
 * How far behind this process is, in ms: one turn of the event loop and one
 * task through libuv's thread pool (where DNS lookups and crypto run), both
 * measured together, the larger of the two. Bounded: a probe still waiting
 * after 2 s counts as 2 s.
 */
async function localStall(): Promise<number> {
  const started = performance.now();
  const since = (): number => performance.now() - started;
  const loop = new Promise<number>((resolve) => setImmediate(() => resolve(since())));
  const pool = new Promise<number>((resolve) => randomBytes(16, () => resolve(since())));
  const cap = new Promise<number>((resolve) => setTimeout(() => resolve(2_000), 2_000).unref());
  return Math.max(await Promise.race([loop, cap]), await Promise.race([pool, cap]));
}

/**
 * Duo's health as probes and dashboards see it (`DuoService.status()`): the
 * last health check's outcome and whether fail-open bypasses are running. No
 * secret and no text from Duo: a code at most.
 */
export interface DuoStatus {
  /** Duo passed the last health check. */
  reachable: boolean;
  /** When that health check ended, in milliseconds since the epoch. */
  checkedAt: number;
  /** Duo's clock minus ours, in seconds, from the last health check that passed (absent before one has). */
  clockOffsetSeconds?: number;
  /** The offset is beyond `clockSkewWarningSeconds`: Duo's tokens will be refused until the clock is fixed (NTP). */
  clockSkewed: boolean;
  /** Why the last health check failed: its code (`duo_unavailable`, `duo_timeout`, ...). */
  error?: string;
  failMode: 'closed' | 'open';
  /** Fail mode `open` let a user through without Duo in this process, and that bypass still runs (`bypassTtlSeconds`). */
  bypassing: boolean;
  /** Until when the last bypass granted in this process runs, in milliseconds since the epoch (absent when none ran). */
  bypassingUntil?: number;
}

/** What DuoHealth needs of the protocol client (`DuoClient` has it). */
export interface DuoHealthClient {
  healthCheck(): Promise<DuoHealthCheckResult>;
}

/** The module settings DuoHealth works with. */
export interface DuoHealthSettings {
  /** `open` lets logins through while Duo is out (see `mayFailOpen()`); anything else counts as `closed`. */
  failMode: 'closed' | 'open';
  /** How long a healthy answer is trusted, in milliseconds; 0: every `check()` asks Duo (concurrent ones share the call). */
  healthCheckCacheMs: number;
  /** The deadline of one call to Duo, in milliseconds (for the messages, and the bootstrap warning). */
  timeoutMs: number;
  /** How long one fail-open bypass lets a user through, in milliseconds (for the bootstrap warning). */
  bypassTtlMs: number;
}

/** For tests, and for tuning. */
export interface DuoHealthOptions {
  /** The clock, in milliseconds. Default `Date.now`. */
  now?: () => number;
  /** How long a failure is remembered. Default FAILED_HEALTH_RETRY_MS (5 s). */
  failureCacheMs?: number;
  /** At most one line of each kind per this interval. Default HEALTH_LOG_INTERVAL_MS (1 min). */
  logIntervalMs?: number;
}

/** What to do about each failure, for the operator reading the log. */
const FIXES: Partial<Record<DuoProtocolErrorCode, string>> = {
  duo_invalid_client: "Duo refused our credentials: check clientId/clientSecret/apiHost, and the clock (NTP) of this server.",
  duo_unavailable:
    'Duo answered with a server error or could not be reached: see https://status.duo.com, and check the network path to Duo (DNS, firewall, proxy); if this has never worked, check apiHost / apiBaseUrl.',
  duo_tls_failed:
    'TLS to Duo failed: behind a TLS-inspecting proxy, pass its CA certificate in the "ca" option; otherwise check apiHost / apiBaseUrl, and the clock of this server.',
  duo_tls_pinning_failed:
    "Duo's certificate does not lead to a root CA Duo pins: behind a TLS-inspecting proxy pass its CA in \"ca\" or set tls: { pinning: 'system' }; otherwise check apiHost / apiBaseUrl.",
  duo_rate_limited: 'Duo is rate-limiting this integration: make fewer calls to Duo (a longer healthCheckCacheSeconds, fewer login attempts).',
  duo_request_rejected:
    'Duo (or a proxy on the way) refused the request: check apiHost / apiBaseUrl, the proxy and its credentials, and that the application is a Web SDK application in the Duo Admin Panel.',
  duo_upstream_invalid: "The answer did not come from Duo's API as expected: check apiHost / apiBaseUrl and what sits in between (a proxy, a captive portal).",
  duo_overloaded: 'Too many health checks were in flight at once: this comes from calls that do not go through DuoHealth.',
};

/**
 * The cached Duo health check and the fail-open decision, for the Nest layer
 * (one instance per DuoService, so per process):
 *
 * - `check()` before each login: healthy answers cached for
 *   `healthCheckCacheMs`, failures for 5 s, concurrent callers share one call,
 *   our own full cap (`duo_overloaded`) never remembered.
 * - `mayFailOpen(error)` with what `check()` threw: whether fail mode `open`
 *   may let this login through without a second factor.
 * - `markAnswered()` when Duo answered a token call.
 * - `onBootstrap()` once, from the module's `onApplicationBootstrap`.
 *
 * It logs each distinct health failure once per minute, as an error with its
 * fix, the clock-skew warning, and the fail-open warnings at bootstrap. Its lines
 * are built from DuoError messages, which never carry a secret.
 */
export class DuoHealth {
  readonly #client: DuoHealthClient;
  readonly #settings: DuoHealthSettings;
  readonly #logger: LoggerService;
  readonly #now: () => number;
  readonly #failureCacheMs: number;
  readonly #logIntervalMs: number;
  readonly #open: boolean;

  #cache?: { until: number; result?: DuoHealthCheckResult; error?: DuoError<string> };
  /** The last health check that completed, whether it was cached or not. */
  #last?: { at: number; result?: DuoHealthCheckResult; error?: DuoError<string> };
  /** The last healthy answer. */
  #lastHealthy?: DuoHealthCheckResult;
  /** Until when the last fail-open bypass granted runs. */
  #bypassUntil?: number;
  #inFlight?: Promise<DuoHealthCheckResult>;
  #everHealthy = false;
  /** The last completed health check failed with a fail-open code (a failure streak is running). */
  #streak = false;
  /** Fail-open failures that followed another one: a second, fresh health check confirmed the outage. */
  readonly #confirmed = new WeakSet<DuoError<string>>();
  /** A failure was logged since the last healthy answer. */
  #failing = false;
  #bootstrapping = false;
  /** Per kind of line: when it was last logged and how many were left out since. */
  readonly #logged = new Map<string, { at: number; suppressed: number }>();

  constructor(client: DuoHealthClient, settings: DuoHealthSettings, logger: LoggerService = new Logger('DuoModule'), options: DuoHealthOptions = {}) {
    this.#client = client;
    this.#settings = { ...settings };
    this.#logger = logger;
    this.#now = options.now ?? Date.now;
    this.#failureCacheMs = options.failureCacheMs ?? FAILED_HEALTH_RETRY_MS;
    this.#logIntervalMs = options.logIntervalMs ?? HEALTH_LOG_INTERVAL_MS;
    // Fails closed: only the exact string "open" opens.
    this.#open = settings.failMode === 'open';
  }

  /** Whether Duo has passed at least one health check since this instance was made. */
  get everHealthy(): boolean {
    return this.#everHealthy;
  }

  /**
   * The health check, cached. Resolves with Duo's answer; throws the DuoError of
   * the failure (the very same object while it is remembered: pass it to
   * `mayFailOpen()`).
   */
  async check(): Promise<DuoHealthCheckResult> {
    const cached = this.#cache;
    if (cached && cached.until > this.#now()) {
      if (cached.error) throw cached.error;
      return cached.result!;
    }
    return this.refresh();
  }

  /**
   * A fresh health check now, whatever is cached (joining the one in flight, if
   * any); its answer is cached as `check()`'s would be. For Duo's SDK-named
   * `DuoService.healthCheck()`, and for the confirmation of a timeout.
   */
  refresh(): Promise<DuoHealthCheckResult> {
    this.#inFlight ??= this.#run().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /**
   * Whether fail mode `open` may let this login through without Duo, given the
   * error `check()` threw. All of these must hold:
   *
   * 1. fail mode is `open`, and the error is a DuoError with a code of
   *    FAIL_OPEN_CODES (`duo_unavailable`, `duo_timeout`);
   * 2. Duo has passed at least one health check since this process started: a
   *    Duo that never answered is a misconfiguration (a stale apiBaseUrl, a DNS
   *    name that never resolved, nothing listening), not an outage;
   * 3. a `duo_timeout` is confirmed by a second, fresh health check (an
   *    event-loop stall of our own is not Duo being down): the bypass is allowed
   *    only if that one fails with a fail-open code too. Concurrent callers share
   *    the confirmation; while the confirmed failure is remembered (5 s), no
   *    further call is made.
   *
   * Resolves false when Duo answers the confirmation: refuse this login with the
   * original error; the next one finds the healthy answer cached. Never rejects.
   * Step-up logins (max_age) must never fail open: that is the caller's rule.
   */
  async mayFailOpen(error: unknown): Promise<boolean> {
    if (!this.#open || !isDuoError(error) || !FAIL_OPEN_CODES.has(error.code)) return false;
    if (!this.#everHealthy) {
      this.#line('never_healthy', 'error', () =>
        `Fail mode "open" let nobody through (${error.code}): Duo has not passed a single health check since this process started, so this is a misconfiguration, not an outage (check apiHost / apiBaseUrl, DNS, the firewall and the proxy). Logins are refused until Duo answers.`,
      );
      return false;
    }
    if (!this.#confirmed.has(error)) {
      let second: unknown;
      try {
        await this.refresh();
        return false;
      } catch (caught) {
        second = caught;
      }
      if (!isDuoError(second) || !FAIL_OPEN_CODES.has(second.code) || !this.#confirmed.has(second)) return false;
    }
    // Both checks failed. Before believing Duo is down, make sure it is not us: a flooded
    // event loop or a thread pool full of our own work (scrypt, DNS lookups) makes a healthy
    // Duo look silent or unreachable, and an attacker can cause that without touching Duo.
    const stall = await localStall();
    if (stall > LOCAL_STALL_MS) {
      this.#line('local_stall', 'error', () =>
        `Fail mode "open" let nobody through (${error.code}): this server itself is overloaded (event loop or thread pool ${Math.round(stall)} ms behind), so Duo's silence may be ours. Logins are refused until it recovers.`,
      );
      return false;
    }
    return true;
  }

  /**
   * Duo answered a token call (the code exchange got an answer from Duo): a
   * remembered health failure is out of date and is dropped, and a running
   * failure streak ends. Does not count as a passed health check.
   */
  markAnswered(): void {
    if (this.#cache?.error) this.#cache = undefined;
    this.#streak = false;
  }

  /** Fail mode `open` let a user through, until `until` (ms since the epoch): `status()` reports bypasses running until then. */
  recordBypass(until: number): void {
    if (this.#bypassUntil === undefined || until > this.#bypassUntil) this.#bypassUntil = until;
  }

  /**
   * Duo's health for probes: the cached health check (`check()`), and never
   * more than one call to Duo per PROBE_MIN_INTERVAL_MS (5 s) even with
   * `healthCheckCacheMs` 0, so that a probe every second does not hammer Duo.
   * Never rejects.
   */
  async status(): Promise<DuoStatus> {
    const last = this.#last;
    if (last === undefined || this.#now() - last.at >= PROBE_MIN_INTERVAL_MS) {
      try {
        await this.check();
      } catch {
        // Recorded in #last, and logged, by #failed.
      }
    }
    const now = this.#now();
    const { at, result, error } = this.#last ?? { at: now, error: new DuoError('duo_upstream_invalid', 'No health check has completed.') };
    const healthy = result ?? this.#lastHealthy;
    const bypassUntil = this.#bypassUntil;
    return {
      reachable: result !== undefined,
      checkedAt: at,
      ...(healthy === undefined ? {} : { clockOffsetSeconds: healthy.clockOffsetSeconds }),
      clockSkewed: healthy?.clockSkewWarning !== undefined,
      ...(error === undefined ? {} : { error: error.code }),
      failMode: this.#open ? 'open' : 'closed',
      bypassing: bypassUntil !== undefined && bypassUntil > now,
      ...(bypassUntil === undefined ? {} : { bypassingUntil: bypassUntil }),
    };
  }

  /**
   * Once, at application bootstrap. Fail mode `closed`: nothing (no call, no
   * line). Fail mode `open`: a warning that users get in without a second factor
   * while Duo is unreachable, a warning when `bypassTtlMs` is over an hour or
   * `timeoutMs` under FAIL_OPEN_MIN_TIMEOUT_MS, and one health check, whose
   * failure is logged as an error with its fix. Resolves when that check is done
   * (within timeoutMs); never rejects.
   */
  async onBootstrap(): Promise<void> {
    if (!this.#open) return;
    const { bypassTtlMs, timeoutMs } = this.#settings;
    this.#logger.warn(
      `Duo fail mode "open": while Duo is unreachable (${[...FAIL_OPEN_CODES].join(', ')}), users are let in WITHOUT a second factor, each for ${seconds(bypassTtlMs)} s (bypassTtlSeconds). ` +
        'No bypass before Duo has passed a health check in this process, nor for TLS, credential, rate-limit or other refusals; a timeout is confirmed by a second health check first. Use fail mode "closed" unless availability must win over the second factor.',
    );
    if (bypassTtlMs > LONG_BYPASS_TTL_MS) {
      this.#logger.warn(
        `bypassTtlSeconds is ${seconds(bypassTtlMs)} s: each fail-open bypass lets a user through that long without Duo, even after Duo is back. Keep it to minutes (the default is 300 s).`,
      );
    }
    if (timeoutMs < FAIL_OPEN_MIN_TIMEOUT_MS) {
      this.#logger.warn(
        `timeoutMs is ${timeoutMs} ms: with fail mode "open", a Duo slower than that becomes a bypass. Use ${FAIL_OPEN_MIN_TIMEOUT_MS} ms or more.`,
      );
    }
    this.#bootstrapping = true;
    try {
      const result = await this.refresh();
      this.#logger.log(`Duo passed its health check at startup (clock offset ${Math.round(result.clockOffsetSeconds)} s).`);
    } catch {
      // Logged, with its fix, as the failure came in.
    } finally {
      this.#bootstrapping = false;
    }
  }

  async #run(): Promise<DuoHealthCheckResult> {
    let result: DuoHealthCheckResult;
    try {
      result = await this.#client.healthCheck();
    } catch (error) {
      // A non-DuoError is a bug, never an outage: a code that does not fail open.
      const duoError = isDuoError(error) ? error : new DuoError('duo_upstream_invalid', 'The Duo health check failed unexpectedly (a fault of this application, not an answer from Duo).');
      this.#failed(duoError);
      throw duoError;
    }
    this.#passed(result);
    return result;
  }

  #passed(result: DuoHealthCheckResult): void {
    this.#cache = { until: this.#now() + this.#settings.healthCheckCacheMs, result };
    this.#last = { at: this.#now(), result };
    this.#lastHealthy = result;
    this.#everHealthy = true;
    this.#streak = false;
    if (this.#failing) {
      this.#failing = false;
      this.#line('recovered', 'log', () => 'Duo answers health checks again.');
    }
    const warning = result.clockSkewWarning;
    if (warning) this.#line('clock_skew', 'warn', () => warning);
  }

  #failed(error: DuoError<string>): void {
    const failOpen = FAIL_OPEN_CODES.has(error.code);
    this.#last = { at: this.#now(), error };
    // Our own full cap says nothing about Duo: neither remembered nor part of a streak.
    if (error.code !== 'duo_overloaded') {
      if (failOpen && this.#streak) this.#confirmed.add(error);
      this.#streak = failOpen;
      this.#cache = { until: this.#now() + this.#failureCacheMs, error };
    }
    this.#failing = true;
    const level = error.code === 'duo_overloaded' ? 'warn' : 'error';
    this.#line(`failure:${error.code}`, level, (suppressed) => this.#describe(error, suppressed), this.#bootstrapping);
  }

  #describe(error: DuoError<string>, suppressed: number): string {
    const when = this.#bootstrapping ? ' at startup' : '';
    let fix = FIXES[error.code as DuoProtocolErrorCode] ?? 'See the message.';
    if (error.code === 'duo_timeout') {
      fix = `Duo did not answer within timeoutMs (${this.#settings.timeoutMs} ms): see https://status.duo.com, and check the network path to Duo (firewall, proxy).`;
    }
    if (error.code === 'duo_rate_limited' && error.retryAfterSeconds !== undefined) fix += ` Duo asks to wait ${error.retryAfterSeconds} s.`;
    let mode = '';
    if (this.#open) {
      if (!FAIL_OPEN_CODES.has(error.code)) mode = ' Fail mode "open" does not apply to this failure: logins are refused until it is fixed.';
      else if (!this.#everHealthy) mode = ' Fail mode "open" does not let anyone through: Duo has not passed a health check since this process started.';
      else mode = ' Fail mode "open" lets users through WITHOUT a second factor while this lasts.';
    }
    const more = suppressed > 0 ? ` (${suppressed} more such failures since the last line were not logged)` : '';
    return `Duo health check failed${when} (${error.code}): ${error.message} ${fix}${mode}${more}`;
  }

  /** Logs one line of this kind unless one was logged within the interval (or `force`), counting those left out. */
  #line(kind: string, level: 'log' | 'warn' | 'error', message: (suppressed: number) => string, force = false): void {
    const now = this.#now();
    const last = this.#logged.get(kind);
    if (last && !force && now - last.at < this.#logIntervalMs) {
      last.suppressed++;
      return;
    }
    this.#logged.set(kind, { at: now, suppressed: 0 });
    this.#logger[level](message(last?.suppressed ?? 0));
  }
}

function seconds(ms: number): number {
  return Math.round(ms / 1000);
}
