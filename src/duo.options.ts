import type { DuoClientOptions } from './protocol/index.js';
import type { DuoTransactionStore } from './transaction.store.js';
import type { DuoEvent } from './duo.events.js';

export type DuoFailMode = 'closed' | 'open';

/**
 * The request object of the HTTP platform (Express or Fastify), as the module
 * reads it. Public methods take any request object; hooks such as `getUsername`
 * receive it under this type.
 */
export type DuoRequest = Record<string, unknown> & { headers: Record<string, string | string[] | undefined> };

/** Everything `DuoModule.forRoot()` takes: Duo's credentials plus how the module behaves around them. */
export interface DuoModuleOptions extends DuoClientOptions {
  /**
   * What happens when Duo is unreachable or unhealthy as a login starts. `closed`
   * (default) refuses with 503. `open` lets the user through, marking the session
   * "bypassed" (never "verified"); step-up routes still refuse.
   */
  failMode?: DuoFailMode;
  /** How long a healthy health check is trusted, in seconds. Default 30. Failures are retried after 5 s. */
  healthCheckCacheSeconds?: number;
  /** How long a started login may take before its callback is refused, in seconds. Default 600. */
  transactionTtlSeconds?: number;
  /** Pending logins kept per session (tabs); the oldest is dropped beyond this. Default 5. */
  maxPendingPerSession?: number;
  /** How long a fail-open bypass lets the user through before Duo is tried again, in seconds. Default 300. */
  bypassTtlSeconds?: number;
  /**
   * Finds the primary user's name in a request (the name Duo knows). Default:
   * `req.user.username`, else `req.user.email`, else `req.user` when it is a string.
   * Return undefined when nobody is logged in.
   */
  getUsername?: (request: DuoRequest) => string | undefined | null;
  /** Browsers with no primary user are sent here (303) instead of getting 401, with `?returnTo=`. */
  loginPath?: string;
  /** Where to store pending logins. Default: the session itself (single-instance apps). */
  transactionStore?: DuoTransactionStore;
  /** Sent to Duo as `dest_app_name`, shown to the user in Duo Mobile. */
  appName?: string;
  /**
   * Called for every audit event (prompt started, passed, failed, bypassed). No
   * secrets are in them. It may be async; a hook that throws or rejects is logged
   * and never stops a login.
   */
  onEvent?: (event: DuoEvent) => unknown;
  /** Warn, at the first protected request, about session cookie settings that break or weaken the flow. Default true. */
  checkSessionCookie?: boolean;
  /**
   * Deadline of each session-store call the callback makes (reload, regenerate,
   * save), in milliseconds: a hung store answers 503 instead of holding the
   * request. Default 2000.
   */
  sessionTimeoutMs?: number;
}
