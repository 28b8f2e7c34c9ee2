import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { inspect, type InspectOptions } from 'node:util';
import { Subject, type Observable } from 'rxjs';
import { DUO_MODULE_OPTIONS } from './duo.module-definition.js';
import type { DuoEvent } from './duo.events.js';
import type { DuoFailMode, DuoModuleOptions, DuoRequest } from './duo.options.js';
import {
  DuoClient,
  DuoConfigError,
  DuoError,
  isDuoError,
  type DuoAuthUrlExtras,
  type DuoAuthUrlOptions,
  type DuoAuthorization,
  type DuoErrorCode,
  type DuoNonce,
  type DuoTokenChecks,
  type DuoHealthCheckResult,
  type DuoIdTokenClaims,
} from './protocol/index.js';
import { isWellFormedState } from './protocol/random.js';
import { hasQueryParam, safeReturnPath, singleQueryValue } from './request.util.js';
import { SecondFactorSession } from './second-factor.session.js';
import { SessionTransactionStore, type BypassMarker, type DuoSessionData, type DuoTransactionStore, type PendingTransaction, type VerifiedMarker } from './transaction.store.js';
import { Throttle } from './throttle.js';
import { DuoHealth, FAIL_OPEN_MIN_TIMEOUT_MS } from './duo-health.js';

/** Where a failed callback's page points its "start again" link, once the pending login is known. */
export const DUO_RETRY_PATH = 'duoRetryPath';


/** What the guard does next for a session without a (fresh enough) second factor. */
export type SecondFactorStart =
  | { kind: 'redirect'; url: string; transaction: PendingTransaction }
  | { kind: 'bypass'; reason: DuoErrorCode };

/** What a completed callback yields. */
export interface SecondFactorResult {
  username: string;
  returnTo: string;
  /** The session binding the pending login carried. */
  binding: string;
  verified: VerifiedMarker;
  claims: DuoIdTokenClaims;
}

interface ResolvedModuleSettings {
  failMode: DuoFailMode;
  healthCheckCacheMs: number;
  transactionTtlMs: number;
  maxPendingPerSession: number;
  bypassTtlMs: number;
  loginPath?: string;
  appName?: string;
  sessionTimeoutMs: number;
}

/**
 * The injectable face of Duo: the protocol client under Duo's SDK names, plus
 * what a Nest app needs around it (health-check cache, fail mode, pending
 * logins, the verified marker, clock-skew warning, logs and audit events).
 */
@Injectable()
export class DuoService implements OnModuleDestroy, OnApplicationBootstrap {
  readonly client: DuoClient;
  readonly settings: ResolvedModuleSettings;
  readonly store: DuoTransactionStore;
  readonly callbackPath: string;
  /** This Duo application, as markers name it: `clientId@host`. */
  readonly application: string;
  readonly #logger = new Logger('DuoModule');
  readonly #events = new Subject<DuoEvent>();
  readonly #onEvent?: (event: DuoEvent) => unknown;
  readonly #getUsername: (request: DuoRequest) => string | undefined | null;
  readonly #health: DuoHealth;
  #cookieChecked = false;
  /** Duo's clock minus ours, from the last health check that answered. */
  #clockOffsetSeconds = 0;
  readonly #anonymousFailures = new Throttle(10_000);

  readonly #checkCookie: boolean;

  constructor(@Inject(DUO_MODULE_OPTIONS) options: DuoModuleOptions) {
    this.client = new DuoClient(options);
    hideSecrets(options, this.client.config.proxy);
    this.#checkCookie = options.checkSessionCookie !== false;
    this.settings = resolveSettings(options);
    if (this.settings.failMode === 'open' && options.timeoutMs !== undefined && options.timeoutMs < FAIL_OPEN_MIN_TIMEOUT_MS) {
      throw new DuoConfigError(
        `Duo option "timeoutMs" must be at least ${FAIL_OPEN_MIN_TIMEOUT_MS} with failMode "open": a shorter deadline turns a slow Duo into a bypass.`,
      );
    }
    this.#health = new DuoHealth(
      this.client,
      { failMode: this.settings.failMode, healthCheckCacheMs: this.settings.healthCheckCacheMs, timeoutMs: this.client.config.timeoutMs, bypassTtlMs: this.settings.bypassTtlMs },
      this.#logger,
    );
    this.store = options.transactionStore ?? new SessionTransactionStore();
    if (options.transactionStore !== undefined) {
      const store = options.transactionStore as Partial<DuoTransactionStore> | null;
      if (!store || typeof store.create !== 'function' || typeof store.take !== 'function') {
        throw new DuoConfigError('Duo option "transactionStore" must have create() and take() methods.');
      }
    }
    if (options.getUsername !== undefined && typeof options.getUsername !== 'function') {
      throw new DuoConfigError('Duo option "getUsername" must be a function of the request.');
    }
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
      throw new DuoConfigError('Duo option "onEvent" must be a function.');
    }
    this.#getUsername = options.getUsername ?? defaultGetUsername;
    this.#onEvent = options.onEvent;
    this.callbackPath = new URL(this.client.config.redirectUri).pathname;
    this.application = `${this.client.config.clientId}@${new URL(this.client.config.baseUrl).host}`;
  }

  /** Audit events: prompt started, second factor passed, failed, bypassed. No secrets in them. */
  get events$(): Observable<DuoEvent> {
    return this.#events.asObservable();
  }

  // ---- Duo's Web SDK v4 workflow, by its names ----

  /** Asks Duo whether it can take a login now (a fresh call); warns when this server's clock is off. */
  async healthCheck(): Promise<DuoHealthCheckResult> {
    return this.#remember(await this.#health.refresh());
  }

  generateState(): string {
    return this.client.generateState();
  }

  /**
   * The prompt URL for a state you made and keep. `options.nonce` is required:
   * the nonce you keep with the state, or `expectNoNonce` to go without one, explicitly.
   */
  createAuthUrl(username: string, state: string, options: DuoAuthUrlOptions): Promise<string> {
    return this.client.createAuthUrl(username, state, options);
  }

  /** A fresh state and nonce and the prompt URL; keep both for the callback. */
  startAuthorization(username: string, options?: DuoAuthUrlExtras): Promise<DuoAuthorization> {
    return this.client.startAuthorization(username, options);
  }

  /** The verified claims for Duo's code. `nonce` is the one sent with the login, or `expectNoNonce`, explicitly. */
  exchangeAuthorizationCodeFor2FAResult(code: string, username: string, nonce: DuoNonce, checks?: DuoTokenChecks): Promise<DuoIdTokenClaims> {
    return this.client.exchangeAuthorizationCode(code, username, nonce, checks);
  }

  // ---- What the guard and the callback use ----

  /**
   * Warns once, on the first protected request, about session cookie settings
   * that break the flow (SameSite=Strict loses the session on Duo's redirect
   * back) or weaken it (no Secure flag while the redirect URI is https).
   */
  checkSessionCookie(raw: object): void {
    const request = raw as DuoRequest;
    if (this.#cookieChecked || !this.#checkCookie) return;
    this.#cookieChecked = true;
    const cookie = (request.session as { cookie?: { sameSite?: unknown; secure?: unknown } } | undefined)?.cookie;
    if (!cookie || typeof cookie !== 'object') return;
    const sameSite = typeof cookie.sameSite === 'string' ? cookie.sameSite.toLowerCase() : cookie.sameSite;
    if (sameSite === 'strict' || sameSite === true) {
      this.#logger.warn('The session cookie is SameSite=Strict: browsers will not send it on Duo\'s redirect back, so every Duo callback will fail. Set cookie.sameSite to "lax".');
    } else if (sameSite === 'none' && cookie.secure !== true) {
      this.#logger.warn('The session cookie is SameSite=None without Secure: browsers reject it. Use sameSite "lax" (recommended) and secure: true.');
    } else if (sameSite === undefined || sameSite === null || sameSite === false) {
      this.#logger.warn('The session cookie sets no SameSite attribute; set cookie.sameSite to "lax" explicitly (Strict breaks Duo\'s redirect back, None weakens CSRF protection).');
    }
    if (this.client.config.redirectUri.startsWith('https:') && cookie.secure !== true && cookie.secure !== 'auto') {
      this.#logger.warn('The redirect URI is https but the session cookie is not Secure: set cookie.secure to true in production.');
    }
  }

  /** The primary user's name, or undefined when nobody is logged in. */
  usernameOf(raw: object): string | undefined {
    const request = raw as DuoRequest;
    const username = this.#getUsername(request);
    return typeof username === 'string' && username.length > 0 ? username : undefined;
  }

  /** A health check, cached: healthy answers for `healthCheckCacheSeconds`, failures for 5 s; concurrent callers share one call. */
  async cachedHealthCheck(): Promise<DuoHealthCheckResult> {
    return this.#remember(await this.#health.check());
  }

  #remember(result: DuoHealthCheckResult): DuoHealthCheckResult {
    this.#clockOffsetSeconds = result.clockOffsetSeconds;
    return result;
  }

  /**
   * Starts Duo for this request: health check (cached), new state and nonce,
   * the pending transaction saved, the prompt URL. With fail mode `open` and
   * Duo unreachable, marks the session bypassed instead (never for step-up).
   */
  async startSecondFactor(raw: object, username: string, returnTo: string, maxAge?: number): Promise<SecondFactorStart> {
    const request = raw as DuoRequest;
    const session = SecondFactorSession.of(request);
    try {
      await this.cachedHealthCheck();
    } catch (error) {
      const duoError = isDuoError(error) ? error : new DuoError('duo_upstream_invalid', 'The Duo health check failed unexpectedly.');
      // Step-up logins never fail open, so they never spend a confirming health check either.
      if (maxAge === undefined && (await this.#health.mayFailOpen(duoError))) {
        const now = Date.now();
        session.markBypassed({ username, app: this.application, at: now, until: now + this.settings.bypassTtlMs, reason: duoError.code });
        this.#logger.warn(`Fail mode "open": user "${printable(username)}" let through WITHOUT a second factor because Duo is unavailable (${duoError.code}).`);
        this.emit({ type: 'second_factor_bypassed', at: now, username, reason: duoError.code });
        return { kind: 'bypass', reason: duoError.code };
      }
      this.emit({ type: 'second_factor_failed', at: Date.now(), username, code: duoError.code });
      throw duoError;
    }
    const extras: DuoAuthUrlExtras = {};
    if (this.settings.appName !== undefined) extras.destAppName = this.settings.appName;
    if (maxAge !== undefined) extras.maxAge = maxAge;
    const authorization = await this.client.startAuthorization(username, extras);
    const now = Date.now();
    const transaction: PendingTransaction = {
      state: authorization.state,
      nonce: authorization.nonce,
      username,
      returnTo: this.#returnTarget(returnTo),
      binding: session.binding(),
      startedAt: now,
      expiresAt: now + this.settings.transactionTtlMs,
      ...(maxAge === undefined ? {} : { maxAge }),
    };
    await this.#storeCall(() => this.store.create(transaction, this.#storeContext(session.writable())));
    this.emit({ type: 'prompt_started', at: now, username, ...(maxAge === undefined ? {} : { maxAge }) });
    return { kind: 'redirect', url: authorization.url, transaction };
  }

  /**
   * Consumes Duo's callback: the pending transaction is taken by state exactly
   * once, checked against this session and user, the code exchanged and the
   * id_token verified. Does not mark the session (the callback guard does).
   */
  async completeCallback(raw: object): Promise<SecondFactorResult> {
    const request = raw as DuoRequest;
    let username = this.usernameOf(request);
    try {
      const state = singleQueryValue(request, 'state');
      if (state.malformed) throw new DuoError('state_invalid', 'The callback carries more than one state, or a state that is not plain text. Start the login again.');
      if (state.value === undefined) throw new DuoError('state_invalid', 'The callback has no state. Start the login again.');
      if (!isWellFormedState(state.value)) {
        throw new DuoError('state_invalid', 'The callback state is malformed. Start the login again.');
      }
      const session = SecondFactorSession.of(request);
      // A session that never started a login has nothing to take: it is not given module data to write into.
      const context = session.existing.binding === undefined ? this.#storeContext({}) : this.#storeContext(session.writable());
      const transaction = await this.#storeCall(() => this.store.take(state.value!, context));
      if (!transaction) {
        throw new DuoError('state_unknown', 'This sign-in response is unknown, already used, or belongs to another session. Start the login again.');
      }
      if (transaction.binding !== session.existing.binding) {
        throw new DuoError('state_unknown', 'This sign-in response belongs to another session. Start the login again.');
      }
      username = transaction.username;
      // From here on the page the user was going to is known: error pages offer it to start again.
      request[DUO_RETRY_PATH] = transaction.returnTo;
      if (transaction.expiresAt <= Date.now()) {
        throw new DuoError('transaction_expired', 'This sign-in took too long and expired. Start the login again.');
      }
      if (this.usernameOf(request) !== transaction.username) {
        throw new DuoError('username_mismatch', 'The user logged in to this session changed during the Duo login; the second factor does not count.');
      }
      if (hasQueryParam(request, 'error')) {
        const error = singleQueryValue(request, 'error').value;
        if (error === 'access_denied') throw new DuoError('access_denied', 'Duo denied the authentication.');
        throw new DuoError('duo_error', `Duo reported an error (${printable(error ?? 'malformed', 40)}); the second factor was not passed.`);
      }
      const duoCode = singleQueryValue(request, 'duo_code');
      const plainCode = singleQueryValue(request, 'code');
      if (duoCode.malformed || plainCode.malformed || (duoCode.value !== undefined && plainCode.value !== undefined)) {
        throw new DuoError('input_invalid', 'The callback carries more than one authorization code.');
      }
      const code = duoCode.value ?? plainCode.value;
      if (code === undefined || code.length === 0) throw new DuoError('input_invalid', 'The callback has no authorization code (duo_code).');
      const claims = await this.client.exchangeAuthorizationCode(
        code,
        transaction.username,
        transaction.nonce,
        transaction.maxAge === undefined ? {} : { maxAge: transaction.maxAge, clockOffsetSeconds: this.#clockOffsetSeconds },
      );
      // Duo answered a token call: a remembered health failure is out of date.
      this.#health.markAnswered();
      const now = Date.now();
      // Duo's auth_time is Duo's clock: turned into ours with the offset the health check measured.
      const authAt = typeof claims.auth_time === 'number' ? (claims.auth_time - this.#clockOffsetSeconds) * 1000 : now;
      const verified: VerifiedMarker = {
        username: transaction.username,
        app: this.application,
        at: Math.min(now, authAt),
        ...(typeof claims.auth_context?.factor === 'string' ? { factor: claims.auth_context.factor } : {}),
        ...(typeof claims.auth_context?.txid === 'string' ? { txid: claims.auth_context.txid } : {}),
        ...(typeof claims.auth_time === 'number' ? { authTime: claims.auth_time } : {}),
        ...(Array.isArray(claims.amr) ? { amr: claims.amr.filter((item): item is string => typeof item === 'string') } : {}),
      };
      return { username: transaction.username, returnTo: transaction.returnTo, binding: transaction.binding, verified, claims };
    } catch (error) {
      const duoError = isDuoError(error) ? error : new DuoError('duo_upstream_invalid', 'The Duo callback failed unexpectedly.');
      this.#callbackFailed(duoError, username);
      throw duoError;
    }
  }

  /**
   * A refused callback: an event and a warning. Callbacks that name no user (an
   * unknown or malformed state, no session) cost an attacker nothing to send, so
   * those are reported at most once per 10 s, with the count of the ones left out.
   */
  #callbackFailed(error: DuoError, username: string | undefined): void {
    const at = Date.now();
    if (username) {
      this.emit({ type: 'second_factor_failed', at, code: error.code, username });
      this.#logger.warn(`Duo callback refused for user "${printable(username)}": ${error.code}.`);
      return;
    }
    const suppressed = this.#anonymousFailures.pass(at);
    if (suppressed === undefined) return;
    this.emit({ type: 'second_factor_failed', at, code: error.code, ...(suppressed > 0 ? { suppressed } : {}) });
    const more = suppressed > 0 ? ` (${suppressed} more such callbacks in the last 10 s were not logged)` : '';
    this.#logger.warn(`Duo callback refused: ${error.code}${more}.`);
  }

  /** Records a completed callback in the session (new session id) and announces it. */
  async recordSuccess(raw: object, result: SecondFactorResult, state: string): Promise<void> {
    const request = raw as DuoRequest;
    const session = SecondFactorSession.of(request);
    try {
      await session.recordVerified({
        marker: result.verified,
        completed: { state, returnTo: result.returnTo, until: Date.now() + this.settings.transactionTtlMs },
        binding: result.binding,
        username: result.username,
        usernameOf: (view) => this.usernameOf(view),
        timeoutMs: this.settings.sessionTimeoutMs,
      });
    } catch (error) {
      const duoError = isDuoError(error) ? error : new DuoError('session_unavailable', 'The second factor could not be recorded in the session.');
      this.#callbackFailed(duoError, result.username);
      throw duoError;
    }
    this.emit({
      type: 'second_factor_passed',
      at: result.verified.at,
      username: result.username,
      ...(result.verified.factor ? { factor: result.verified.factor } : {}),
      ...(result.verified.txid ? { txid: result.verified.txid } : {}),
    });
  }

  /** The verified marker for the current user, if any (optionally no older than maxAge seconds). */
  verification(raw: object, maxAge?: number): VerifiedMarker | undefined {
    const request = raw as DuoRequest;
    const username = this.usernameOf(request);
    if (!username) return undefined;
    return SecondFactorSession.of(request).verifiedFor(username, this.application, maxAge);
  }

  /** The fail-open bypass marker for the current user, if Duo was skipped for this session and the bypass still runs. */
  bypass(raw: object): BypassMarker | undefined {
    const request = raw as DuoRequest;
    const username = this.usernameOf(request);
    if (!username) return undefined;
    return SecondFactorSession.of(request).bypassFor(username, this.application);
  }

  emit(event: DuoEvent): void {
    this.#events.next(event);
    if (!this.#onEvent) return;
    const dropped = (): void => {
      this.#logger.error(`The onEvent hook failed for a "${event.type}" event; the event was dropped for it. Catch errors inside the hook (an audit sink that is down must not stop logins).`);
    };
    try {
      const result: unknown = this.#onEvent(event);
      // An async hook's rejection would be an unhandled rejection, which ends the process.
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        Promise.resolve(result as PromiseLike<unknown>).catch(dropped);
      }
    } catch {
      dropped();
    }
  }

  /** With fail mode `open`: a warning, and one health check whose failure is logged as an error. */
  async onApplicationBootstrap(): Promise<void> {
    await this.#health.onBootstrap();
  }

  async onModuleDestroy(): Promise<void> {
    this.#events.complete();
    await this.client.close();
  }

  #returnTarget(returnTo: string): string {
    const target = safeReturnPath(returnTo);
    // Never return to the callback itself: it would only ever fail.
    return target.split('?')[0] === this.callbackPath ? '/' : target;
  }

  /** For a take, the session is only read; for a create, the module's data is made. */
  #storeContext(data: DuoSessionData) {
    return { session: data, maxPendingPerSession: this.settings.maxPendingPerSession };
  }

  async #storeCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (isDuoError(error)) throw error;
      throw new DuoError('store_unavailable', 'The store of pending Duo logins is unavailable; nothing was let through. Try again shortly.');
    }
  }
}

/**
 * The options object is a provider anyone can inject and log. Its secret and
 * the proxy URL (which may carry credentials) become non-enumerable getters, so
 * JSON.stringify and spreading leave them out while the properties still read as
 * before; and util.inspect (console.log), even with showHidden and getters, shows
 * the options through a custom view with both replaced.
 */
function hideSecrets(options: DuoModuleOptions, printableProxy: string | undefined): void {
  if (Object.isFrozen(options)) return;
  try {
    for (const key of ['clientSecret', 'proxy'] as const) {
      const descriptor = Object.getOwnPropertyDescriptor(options, key);
      if (!descriptor || !descriptor.configurable || !('value' in descriptor)) continue;
      const value: unknown = descriptor.value;
      Object.defineProperty(options, key, { get: () => value, enumerable: false, configurable: true });
    }
    Object.defineProperty(options, inspect.custom, {
      value: (_depth: number, inspectOptions: InspectOptions, show: typeof inspect = inspect): string =>
        show(
          { ...options, clientSecret: '[hidden]', ...(printableProxy === undefined ? {} : { proxy: printableProxy }) },
          { ...inspectOptions, showHidden: false, getters: false },
        ),
      enumerable: false,
      configurable: true,
    });
  } catch {
    // An options object that will not take it keeps its shape; nothing we hold shows it.
  }
}

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

function printable(value: string, max = 80): string {
  const text = value.replace(/[^\x20-\x7e]/g, '?');
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

function whole(options: DuoModuleOptions, option: keyof DuoModuleOptions, fallback: number, min: number, max: number): number {
  const value = options[option];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new DuoConfigError(`Duo option "${option}" must be a whole number from ${min} to ${max}.`);
  }
  return value;
}

function resolveSettings(options: DuoModuleOptions): ResolvedModuleSettings {
  const failMode = options.failMode ?? 'closed';
  if (failMode !== 'closed' && failMode !== 'open') throw new DuoConfigError('Duo option "failMode" must be "closed" or "open".');
  if (options.loginPath !== undefined && safeReturnPath(options.loginPath, '') !== options.loginPath) {
    throw new DuoConfigError('Duo option "loginPath" must be a path on this site, such as /login.');
  }
  if (options.appName !== undefined && (typeof options.appName !== 'string' || options.appName.length === 0 || options.appName.length > 256)) {
    throw new DuoConfigError('Duo option "appName" must be a string of 1 to 256 characters.');
  }
  return {
    failMode,
    healthCheckCacheMs: whole(options, 'healthCheckCacheSeconds', 30, 0, 3600) * 1000,
    transactionTtlMs: whole(options, 'transactionTtlSeconds', 600, 30, 3600) * 1000,
    maxPendingPerSession: whole(options, 'maxPendingPerSession', 5, 1, 50),
    bypassTtlMs: whole(options, 'bypassTtlSeconds', 300, 1, 86_400) * 1000,
    sessionTimeoutMs: whole(options, 'sessionTimeoutMs', 2000, 100, 60_000),
    ...(options.loginPath === undefined ? {} : { loginPath: options.loginPath }),
    ...(options.appName === undefined ? {} : { appName: options.appName }),
  };
}
