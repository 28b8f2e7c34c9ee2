import { checkInteger } from './protocol/config.js';
import { DuoConfigError, type DuoClientOptions } from './protocol/index.js';
import type { DuoTransactionStore } from './transaction.store.js';
import type { DuoEvent } from './duo.events.js';
import { resolveErrorPageSettings, type DuoErrorPageOptions, type DuoErrorPageSettings } from './duo-error-page.js';
import { safeReturnPath, type DuoRequest } from './request.util.js';
import { resolvePromptLimits, type DuoPromptLimitOptions, type PromptLimitSettings } from './prompt-limits.js';

export type { DuoRequest } from './request.util.js';

export type DuoFailMode = 'closed' | 'open';


/**
 * One Duo application of `applications`: its credentials and redirect URI
 * (and any transport option that differs from the top level's), plus the
 * name shown in Duo Mobile.
 */
export interface DuoApplicationOptions extends DuoClientOptions {
  /** Sent to Duo as `dest_app_name` for this application's logins; default: the top-level `appName`. */
  appName?: string;
}

/** The client options every application takes from the top level unless it sets its own. */
export const SHARED_CLIENT_OPTIONS = ['apiBaseUrl', 'timeoutMs', 'ca', 'tls', 'proxy', 'usernameMatch', 'maxConcurrentRequests', 'clockSkewWarningSeconds'] as const;

/** What an application's name may be: it keys session markers and Redis records (so never `__proto__`, which an assignment would not keep). */
export const APPLICATION_NAME = /^(?!__proto__$)[A-Za-z0-9_-]{1,64}$/;

/** The application of a module configured with top-level credentials (no `applications`). */
export const DEFAULT_APPLICATION_NAME = 'default';

/**
 * Everything `DuoModule.forRoot()` takes: Duo's credentials plus how the module
 * behaves around them. Either the credentials at the top level (one Duo
 * application, named `default`), or several under `applications`.
 */
export interface DuoModuleOptions extends Partial<DuoClientOptions> {
  /**
   * Several Duo applications (staff and admin, one per tenant), by name
   * (letters, digits, `_` and `-`, up to 64). Each has its own credentials,
   * client, health check and telemetry; the store of pending logins, the
   * events and every other option are shared. A verified second factor counts
   * only for the application that verified it. Leave the top-level `clientId`,
   * `clientSecret`, `apiHost` and `redirectUri` out when you set this; the
   * other client options there (`timeoutMs`, `tls`, `proxy`, ...) are every
   * application's defaults.
   */
  applications?: Record<string, DuoApplicationOptions>;
  /** With `applications`: the one a route uses when neither its decorator nor `resolveApplication` names one. Required with more than one. */
  defaultApplication?: string;
  /**
   * With `applications`: the application of a request whose route does not
   * name one (`@RequireSecondFactor({ application })` wins), e.g. from the
   * host name or a tenant id. May be async. undefined or null: the default
   * application. A name that is not registered is refused (400
   * `application_unknown`); a resolver that throws, 503 `application_unavailable`.
   */
  resolveApplication?: (request: DuoRequest) => string | undefined | null | Promise<string | undefined | null>;

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
   * Report at startup (an error log line) when no `@DuoCallback()` route serves
   * the redirect URI's path. Default true; `false` for an app that handles Duo's
   * callback itself with `DuoService`.
   */
  checkCallbackRoute?: boolean;
  /**
   * Deadline of each session-store call the callback makes (reload, regenerate,
   * save), in milliseconds: a hung store answers 503 instead of holding the
   * request. Default 2000.
   */
  sessionTimeoutMs?: number;
  /** OpenTelemetry metrics and spans through the optional `@opentelemetry/api` (see the README's Telemetry section). */
  telemetry?: import('./telemetry.js').DuoTelemetryOptions;
  /**
   * The page browsers get for an error (denied, expired, Duo down, ...): your own
   * layout through `render`, the default page's strings through `texts`, and
   * its home link (`homePath`, default `/`). API clients always get JSON.
   */
  errorPage?: DuoErrorPageOptions;
  /**
   * Push-flood protection: prompt starts per user and per client IP, and failed
   * callbacks per user, each in a window. On by default (10 prompts per user and
   * 600 per IP in 10 minutes; 5 failed callbacks in 15 minutes stop prompts for
   * that user until the window ends) when the module talks to Duo's own hosts;
   * off against the emulator or another `apiBaseUrl` unless given (`{}` turns
   * the defaults on there too); `false` turns them off. Shared by every
   * instance when the transaction store keeps counts (RedisTransactionStore).
   */
  promptLimits?: DuoPromptLimitOptions | false;
}

/** The module options after validation: what the module runs with. */
export interface DuoSettings {
  readonly failMode: DuoFailMode;
  readonly healthCheckCacheMs: number;
  readonly transactionTtlMs: number;
  readonly maxPendingPerSession: number;
  readonly bypassTtlMs: number;
  readonly sessionTimeoutMs: number;
  readonly loginPath?: string;
  readonly appName?: string;
  readonly checkSessionCookie: boolean;
  readonly checkCallbackRoute: boolean;
  readonly getUsername: (request: DuoRequest) => string | undefined | null;
  readonly onEvent?: (event: DuoEvent) => unknown;
  readonly transactionStore?: DuoTransactionStore;
  readonly errorPage: DuoErrorPageSettings;
  /** Undefined when every limit is off. */
  readonly promptLimits: PromptLimitSettings | undefined;
}

/** With fail mode `open`, the shortest `timeoutMs`: a shorter deadline turns a slow Duo into a bypass. */
export const FAIL_OPEN_MIN_TIMEOUT_MS = 3_000;

/**
 * The one place the module's own options are checked (Duo's credentials and
 * transport are checked by the protocol client's `resolveClientConfig`, which
 * `DuoClient` runs). Every mistake is a `DuoConfigError` naming the option.
 * An optional string option given as '' (`process.env.X` set but empty) counts
 * as not given.
 */
export function resolveDuoSettings(options: DuoModuleOptions, target: { duoHost: boolean } = { duoHost: true }): DuoSettings {
  const record = options as unknown as Record<string, unknown>;
  const failMode = notEmpty(options.failMode) ?? 'closed';
  const loginPath = notEmpty(options.loginPath);
  const appName = notEmpty(options.appName);
  if (failMode !== 'closed' && failMode !== 'open') throw new DuoConfigError('Duo option "failMode" must be "closed" or "open".');
  if (failMode === 'open' && options.timeoutMs !== undefined && options.timeoutMs < FAIL_OPEN_MIN_TIMEOUT_MS) {
    throw new DuoConfigError(
      `Duo option "timeoutMs" must be at least ${FAIL_OPEN_MIN_TIMEOUT_MS} with failMode "open": a shorter deadline turns a slow Duo into a bypass.`,
    );
  }
  if (loginPath !== undefined && safeReturnPath(loginPath, '') !== loginPath) {
    throw new DuoConfigError('Duo option "loginPath" must be a path on this site, such as /login.');
  }
  if (appName !== undefined && (typeof appName !== 'string' || appName.length > 256)) {
    throw new DuoConfigError('Duo option "appName" must be a string of 1 to 256 characters.');
  }
  const store = options.transactionStore as Partial<DuoTransactionStore> | null | undefined;
  if (store !== undefined && (!store || typeof store.create !== 'function' || typeof store.take !== 'function')) {
    throw new DuoConfigError('Duo option "transactionStore" must have create() and take() methods.');
  }
  if (options.getUsername !== undefined && typeof options.getUsername !== 'function') {
    throw new DuoConfigError('Duo option "getUsername" must be a function of the request.');
  }
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw new DuoConfigError('Duo option "onEvent" must be a function.');
  }
  for (const flag of ['checkSessionCookie', 'checkCallbackRoute'] as const) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') throw new DuoConfigError(`Duo option "${flag}" must be true or false.`);
  }
  return {
    failMode,
    healthCheckCacheMs: checkInteger(record, 'healthCheckCacheSeconds', 30, 0, 3600) * 1000,
    transactionTtlMs: checkInteger(record, 'transactionTtlSeconds', 600, 30, 3600) * 1000,
    maxPendingPerSession: checkInteger(record, 'maxPendingPerSession', 5, 1, 50),
    bypassTtlMs: checkInteger(record, 'bypassTtlSeconds', 300, 1, 86_400) * 1000,
    sessionTimeoutMs: checkInteger(record, 'sessionTimeoutMs', 2000, 100, 60_000),
    checkSessionCookie: options.checkSessionCookie !== false,
    checkCallbackRoute: options.checkCallbackRoute !== false,
    getUsername: options.getUsername ?? defaultGetUsername,
    ...(loginPath === undefined ? {} : { loginPath }),
    ...(appName === undefined ? {} : { appName }),
    ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
    ...(options.transactionStore === undefined ? {} : { transactionStore: options.transactionStore }),
    errorPage: resolveErrorPageSettings(options.errorPage),
    promptLimits: resolvePromptLimits(options.promptLimits, target.duoHost),
  };
}

/** An optional string option: '' (an environment variable set but empty) counts as not given. */
function notEmpty<T>(value: T): T | undefined {
  return value === '' ? undefined : value;
}

/** `req.user.username`, else `req.user.email`, else `req.user` when it is a string. */
function defaultGetUsername(request: DuoRequest): string | undefined {
  const user = request.user;
  if (typeof user === 'string') return user;
  if (user && typeof user === 'object') {
    const { username, email } = user as { username?: unknown; email?: unknown };
    if (typeof username === 'string') return username;
    if (typeof email === 'string') return email;
  }
  return undefined;
}
