import { Injectable } from '@nestjs/common';
import { DuoContext } from './duo.context.js';
import { DuoHttpException } from './duo.exception.js';
import type { DuoRequest } from './duo.options.js';
import { DuoError, isDuoError, type DuoAuthUrlExtras, type DuoIdTokenClaims } from './protocol/index.js';
import { isWellFormedState } from './protocol/random.js';
import { printable, rawQuery, safeReturnPath } from './request.util.js';
import { markerAge, SecondFactorSession } from './second-factor.session.js';
import { lintSessionCookie } from './session-cookie.lint.js';
import { Throttle } from './throttle.js';
import { PromptLimitError, type PromptLimiter } from './prompt-limits.js';
import type { BypassMarker, DuoSessionData, VerifiedMarker } from './second-factor.session.js';
import type { PendingTransaction } from './transaction.store.js';
import type { DuoErrorCode } from './duo.errors.js';
import { checkFactorRule, decodeFactorRule, encodeFactorRule, type FactorRuleOutcome, type ResolvedFactorRule } from './factor-rules.js';

/** What the guard does next for a session without a (fresh enough) second factor. */
export type SecondFactorStart = { kind: 'redirect'; url: string } | { kind: 'bypass'; reason: DuoErrorCode };

/** A passed second factor, as the callback recorded it. */
export interface SecondFactorResult {
  username: string;
  /** The path the user was going to. */
  returnTo: string;
  verified: VerifiedMarker;
  claims: DuoIdTokenClaims;
}

/** What a `@DuoCallback()` handler receives (`@DuoCallbackResult()`). */
export interface DuoCallbackOutcome {
  /** The path the user was going to; the callback ends in a 303 there unless the handler returns `{ url }`. */
  returnTo: string;
  /** True when this was a reload of a callback that had already succeeded: nothing was sent to Duo. */
  reload: boolean;
  /** The verified second factor (absent on a reload). */
  result?: SecondFactorResult;
}

const CALLBACK_PARAMS = ['state', 'duo_code', 'code', 'error'] as const;
type CallbackParams = ReturnType<typeof rawQuery>;

/** The flow of a named application (undefined: the default's), or undefined when no such application is registered. */
export type DuoFlowLookup = (application: string | undefined) => DuoFlow | undefined;

/**
 * The second-factor flow, internal to the module: start a login (health,
 * state, nonce, pending login), complete a callback (take once, exchange,
 * verify, record under a new session id), and read what a session has passed.
 * The guard and the callback call it, each part once, in one direction.
 */
@Injectable()
export class DuoFlow {
  readonly #anonymousFailures = new Throttle(10_000);
  readonly #limitedWarnings = new Throttle(60_000);
  readonly #futureWarnings = new Throttle(60_000);
  #cookieChecked = false;

  readonly #owners: DuoFlowLookup;

  /** `owners` finds the flow of a pending login's application (DuoApplications passes its lookup); alone, a flow owns only its own logins. */
  constructor(
    readonly context: DuoContext,
    owners?: DuoFlowLookup,
  ) {
    this.#owners = owners ?? ((application) => (application === this.#slot ? this : undefined));
  }

  /** Where this application's markers and pending logins are named: its name for a named application, undefined for top-level credentials. */
  get #slot(): string | undefined {
    return this.context.named ? this.context.name : undefined;
  }

  /** The primary user's name, or undefined when nobody is logged in. */
  usernameOf(request: DuoRequest): string | undefined {
    const username = this.context.settings.getUsername(request);
    return typeof username === 'string' && username.length > 0 ? username : undefined;
  }

  /** The verified marker for the current user and this application, if any (optionally no older than maxAge seconds). */
  verification(request: DuoRequest, maxAge?: number): VerifiedMarker | undefined {
    const username = this.usernameOf(request);
    if (!username) return undefined;
    const marker = SecondFactorSession.of(request).verifiedFor(username, this.context.markerTag, this.#slot);
    if (marker === undefined) return undefined;
    const now = Date.now();
    const age = markerAge(marker, maxAge, now);
    if (age === 'future') this.#warnFutureMarker(marker, now);
    return age === 'fresh' ? marker : undefined;
  }

  /** A marker from this server's future asked for a new login on a step-up route: the clocks of the app's instances disagree (logged at most once a minute). */
  #warnFutureMarker(marker: VerifiedMarker, now: number): void {
    if (this.#futureWarnings.pass(now) === undefined) return;
    this.context.logger.warn(
      `${this.#named()}A verified session's Duo login is dated ${Math.round((marker.at - now) / 1000)} s in this server's future, so step-up routes (maxAge) ask for Duo again. ` +
        "Another instance's clock is ahead of this one's: synchronise the servers' clocks (NTP).",
    );
  }

  /** The fail-open bypass marker for the current user, if Duo was skipped for this session and the bypass still runs. */
  bypass(request: DuoRequest): BypassMarker | undefined {
    const username = this.usernameOf(request);
    if (!username) return undefined;
    return SecondFactorSession.of(request).bypassFor(username, this.context.markerTag, Date.now(), this.#slot);
  }

  /** Warns once, on the first protected request, about session cookie settings that break or weaken the flow. */
  checkSessionCookie(request: DuoRequest): void {
    if (this.#cookieChecked || !this.context.settings.checkSessionCookie) return;
    this.#cookieChecked = true;
    const cookie = (request.session as { cookie?: unknown } | undefined)?.cookie;
    for (const warning of lintSessionCookie(cookie, this.context.client.config.redirectUri)) this.context.logger.warn(warning);
  }

  /**
   * Starts Duo for this request: health check (cached), new state and nonce,
   * the pending login saved, the prompt URL. With fail mode `open` and Duo
   * unavailable, marks the session bypassed instead (never for step-up, never
   * for a route with a factor rule). A factor rule sends Duo `prompt=login`
   * and goes with the pending login, for the callback to check.
   */
  async start(request: DuoRequest, username: string, returnTo: string, maxAge?: number, rule?: ResolvedFactorRule): Promise<SecondFactorStart> {
    const telemetry = this.context.telemetry;
    if (!telemetry) return this.#start(request, username, returnTo, maxAge, rule);
    try {
      const start = await this.#start(request, username, returnTo, maxAge, rule);
      if (start.kind === 'bypass') telemetry.bypassed(start.reason);
      else telemetry.promptStarted(maxAge !== undefined);
      return start;
    } catch (error) {
      telemetry.promptRefused(error);
      throw error;
    }
  }

  async #start(request: DuoRequest, username: string, returnTo: string, maxAge?: number, rule?: ResolvedFactorRule): Promise<SecondFactorStart> {
    const { context } = this;
    const { settings } = context;
    const session = SecondFactorSession.of(request);
    // Push-flood limits come first: a flood must not reach Duo, not even its health check.
    if (context.limiter) await this.#admit(context.limiter, request, username);
    try {
      await context.cachedHealthCheck();
    } catch (error) {
      const duoError = isDuoError(error) ? error : new DuoError<DuoErrorCode>('duo_upstream_invalid', 'The Duo health check failed unexpectedly.');
      // Step-up logins and factor rules never fail open, so they never spend a confirming health check either.
      if (maxAge === undefined && rule === undefined && (await context.health.mayFailOpen(duoError))) {
        const now = Date.now();
        session.markBypassed({ username, app: context.markerTag, at: now, until: now + settings.bypassTtlMs, reason: duoError.code as DuoErrorCode }, this.#slot);
        context.health.recordBypass(now + settings.bypassTtlMs);
        context.logger.warn(`${this.#named()}Fail mode "open": user "${printable(username)}" let through WITHOUT a second factor because Duo is unavailable (${duoError.code}).`);
        context.events.emit({ type: 'second_factor_bypassed', at: now, username, reason: duoError.code as DuoErrorCode });
        return { kind: 'bypass', reason: duoError.code as DuoErrorCode };
      }
      context.events.emit({ type: 'second_factor_failed', at: Date.now(), username, code: duoError.code as DuoErrorCode });
      throw duoError;
    }
    const extras: DuoAuthUrlExtras = {};
    if (settings.appName !== undefined) extras.destAppName = settings.appName;
    if (maxAge !== undefined) extras.maxAge = maxAge;
    // Without it Duo passes a remembered device without asking, and the rule would refuse that login again and again.
    if (rule?.promptLogin) extras.promptLogin = true;
    const authorization = await context.client.startAuthorization(username, extras);
    const now = Date.now();
    const transaction: PendingTransaction = {
      state: authorization.state,
      nonce: authorization.nonce,
      username,
      returnTo: this.#returnTarget(returnTo),
      binding: session.binding(),
      startedAt: now,
      expiresAt: now + settings.transactionTtlMs,
      ...(maxAge === undefined ? {} : { maxAge }),
      ...(rule === undefined ? {} : { factorRule: encodeFactorRule(rule) }),
      ...(this.#slot === undefined ? {} : { application: this.#slot }),
    };
    await this.#storeCall(() => context.store.create(transaction, this.#storeContext(session.writable())));
    context.events.emit({ type: 'prompt_started', at: now, username, ...(maxAge === undefined ? {} : { maxAge }) });
    return { kind: 'redirect', url: authorization.url };
  }

  /**
   * A reload of a callback that already succeeded in this session: where the
   * first one went, without calling Duo; undefined otherwise.
   */
  reloaded(request: DuoRequest): DuoCallbackOutcome | undefined {
    if (!request.session || typeof request.session !== 'object') return undefined;
    const state = rawQuery(request, ['state']).state!.value;
    if (state === undefined) return undefined;
    const completed = SecondFactorSession.of(request).completed(state);
    if (completed === undefined) return undefined;
    // The application that completed it: its marker must be there.
    const owner = this.#owners(completed.application);
    return owner?.verification(request) ? { returnTo: completed.returnTo, reload: true } : undefined;
  }

  /**
   * Consumes Duo's callback: the pending login is taken by state exactly once
   * and checked against this session and user, the code exchanged (with the
   * client of the application that started the login) and the id_token
   * verified, and the session renewed with the verified marker. A failure once
   * the login is known carries its return path (the error page's "start
   * again" link).
   */
  async complete(request: DuoRequest): Promise<DuoCallbackOutcome> {
    const { context } = this;
    let taken: { session: SecondFactorSession; params: CallbackParams; transaction: PendingTransaction; owner: DuoFlow };
    try {
      const params = rawQuery(request, CALLBACK_PARAMS);
      const state = params.state!;
      if (state.repeated) throw new DuoError<DuoErrorCode>('state_invalid', 'The callback carries more than one state. Start the login again.');
      if (state.value === undefined) throw new DuoError<DuoErrorCode>('state_invalid', 'The callback has no state. Start the login again.');
      if (!isWellFormedState(state.value)) throw new DuoError<DuoErrorCode>('state_invalid', 'The callback state is malformed. Start the login again.');
      const session = SecondFactorSession.of(request);
      // A session that never started a login has nothing to take: it is not given module data to write into.
      const data = session.existing.binding === undefined ? {} : session.writable();
      const transaction = await this.#storeCall(() => context.store.take(state.value!, this.#storeContext(data)));
      if (!transaction) {
        throw new DuoError<DuoErrorCode>('state_unknown', 'This sign-in response is unknown, already used, or belongs to another session. Start the login again.');
      }
      if (transaction.binding !== session.existing.binding) {
        throw new DuoError<DuoErrorCode>('state_unknown', 'This sign-in response belongs to another session. Start the login again.');
      }
      // The application that started the login finishes it: its client, its markers, its events.
      const owner = this.#owners(transaction.application);
      if (!owner) {
        throw new DuoError<DuoErrorCode>('state_unknown', 'This sign-in response belongs to a Duo application this site no longer has. Start the login again.');
      }
      taken = { session, params, transaction, owner };
    } catch (error) {
      const duoError = isDuoError(error) ? error : new DuoError<DuoErrorCode>('duo_upstream_invalid', 'The Duo callback failed unexpectedly.');
      this.#callbackFailed(duoError, this.usernameOf(request));
      throw new DuoHttpException(duoError, { retryPath: '/' });
    }
    return taken.owner.#completeTaken(request, taken.session, taken.params, taken.transaction);
  }

  /** The rest of a callback whose pending login was taken, in the flow of the login's application. */
  async #completeTaken(request: DuoRequest, session: SecondFactorSession, params: CallbackParams, transaction: PendingTransaction): Promise<DuoCallbackOutcome> {
    const { context } = this;
    const username = transaction.username;
    /** A login Duo passed that the route's factor rule refuses. */
    let refused: Extract<FactorRuleOutcome, { ok: false }> | undefined;
    try {
      if (transaction.expiresAt <= Date.now()) throw new DuoError<DuoErrorCode>('transaction_expired', 'This sign-in took too long and expired. Start the login again.');
      if (this.usernameOf(request) !== transaction.username) {
        throw new DuoError<DuoErrorCode>('username_mismatch', 'The user logged in to this session changed during the Duo login; the second factor does not count.');
      }
      if (params.error!.present) {
        const error = params.error!.value;
        if (error === 'access_denied') throw new DuoError<DuoErrorCode>('access_denied', 'Duo denied the authentication.');
        throw new DuoError<DuoErrorCode>('duo_error', `Duo reported an error (${printable(error ?? 'malformed', 40)}); the second factor was not passed.`);
      }
      const duoCode = params.duo_code!;
      const plainCode = params.code!;
      if (duoCode.repeated || plainCode.repeated || (duoCode.present && plainCode.present)) {
        throw new DuoError<DuoErrorCode>('input_invalid', 'The callback carries more than one authorization code.');
      }
      const code = duoCode.value ?? plainCode.value;
      if (code === undefined || code.length === 0) throw new DuoError<DuoErrorCode>('input_invalid', 'The callback has no authorization code (duo_code).');
      const claims = await context.exchangeAuthorizationCode(
        code,
        transaction.username,
        transaction.nonce,
        transaction.maxAge === undefined ? {} : { maxAge: transaction.maxAge, clockOffsetSeconds: context.clockOffsetSeconds },
      );
      // Duo answered a token call: a remembered health failure is out of date.
      context.health.markAnswered();
      if (transaction.factorRule !== undefined) {
        const rule = decodeFactorRule(transaction.factorRule);
        const outcome: FactorRuleOutcome = rule
          ? checkFactorRule(claims, rule)
          : { ok: false, rule: 'interaction', message: 'This page has a Duo sign-in rule that could not be read back. Sign in again.', observed: {} };
        if (!outcome.ok) {
          // The session keeps what it had: the callback's failure path discards this request's changes.
          refused = outcome;
          this.#ruleRefused(transaction.username, outcome, rule, claims);
          throw new DuoError<DuoErrorCode>('factor_rule_not_met', outcome.message);
        }
      }
      const result: SecondFactorResult = { username: transaction.username, returnTo: transaction.returnTo, verified: this.#marker(transaction, claims), claims };
      await this.#record(session, transaction, result);
      context.telemetry?.passed();
      return { returnTo: result.returnTo, reload: false, result };
    } catch (error) {
      if (error instanceof DuoHttpException) throw error;
      const duoError = isDuoError(error) ? error : new DuoError<DuoErrorCode>('duo_upstream_invalid', 'The Duo callback failed unexpectedly.');
      // A refused rule had its own event (second_factor_rule_refused); metrics still count it as a failed callback.
      if (refused === undefined) this.#callbackFailed(duoError, username);
      else context.telemetry?.callbackFailed(duoError.code);
      if (context.limiter) await this.#countFailure(context.limiter, username, duoError.code);
      throw new DuoHttpException(duoError, { retryPath: transaction.returnTo });
    }
  }

  /** The verified marker: this user and application, and when the user authenticated at Duo, in our clock. */
  #marker(transaction: PendingTransaction, claims: DuoIdTokenClaims): VerifiedMarker {
    const now = Date.now();
    // Duo's auth_time is Duo's clock: turned into ours with the offset the health check measured.
    const authAt = typeof claims.auth_time === 'number' ? (claims.auth_time - this.context.clockOffsetSeconds) * 1000 : now;
    return {
      username: transaction.username,
      app: this.context.markerTag,
      at: Math.min(now, authAt),
      ...(typeof claims.auth_context?.factor === 'string' ? { factor: claims.auth_context.factor } : {}),
      ...(typeof claims.auth_context?.reason === 'string' ? { reason: claims.auth_context.reason } : {}),
      ...(typeof claims.auth_context?.result === 'string' ? { result: claims.auth_context.result } : {}),
      ...(Array.isArray(claims.amr) ? { amr: claims.amr.filter((item): item is string => typeof item === 'string') } : {}),
    };
  }

  /** Records the passed second factor in the session (new session id), then announces it. */
  async #record(session: SecondFactorSession, transaction: PendingTransaction, result: SecondFactorResult): Promise<void> {
    await session.recordVerified({
      marker: result.verified,
      completed: {
        state: transaction.state,
        returnTo: result.returnTo,
        until: Date.now() + this.context.settings.transactionTtlMs,
        ...(this.#slot === undefined ? {} : { application: this.#slot }),
      },
      binding: transaction.binding,
      ...(this.#slot === undefined ? {} : { slot: this.#slot }),
      username: result.username,
      usernameOf: (view) => this.usernameOf(view),
      timeoutMs: this.context.settings.sessionTimeoutMs,
    });
    this.context.events.emit({
      type: 'second_factor_passed',
      at: result.verified.at,
      username: result.username,
      ...(result.verified.factor ? { factor: result.verified.factor } : {}),
      ...(typeof result.claims.auth_context?.txid === 'string' ? { txid: printable(result.claims.auth_context.txid, 64) } : {}),
    });
  }

  /** A login Duo passed that the route's factor rule refuses: the event and a warning, with Duo's values (printable) and never the token. */
  #ruleRefused(username: string, outcome: Extract<FactorRuleOutcome, { ok: false }>, rule: ResolvedFactorRule | undefined, claims: DuoIdTokenClaims): void {
    const { observed } = outcome;
    const txid = claims.auth_context?.txid;
    this.context.events.emit({
      type: 'second_factor_rule_refused',
      at: Date.now(),
      username,
      rule: outcome.rule,
      ...(rule?.factors === undefined ? {} : { factors: [...rule.factors] }),
      ...observed,
      ...(typeof txid === 'string' ? { txid: printable(txid, 64) } : {}),
    });
    const seen = (['factor', 'reason', 'result'] as const).map((key) => `${key} ${observed[key] === undefined ? 'absent' : JSON.stringify(observed[key])}`).join(', ');
    this.context.logger.warn(
      `${this.#named()}Duo login of user "${printable(username)}" refused by the route's factor rule (${outcome.rule}${rule?.factors ? `: ${rule.factors.join(', ')}` : ''}); Duo reported ${seen}.`,
    );
  }

  /**
   * A refused callback: an event and a warning. Callbacks that name no user (an
   * unknown or malformed state, no session) cost an attacker nothing to send, so
   * those are reported at most once per 10 s, with the count of the ones left out.
   */
  #callbackFailed(error: DuoError<string>, username: string | undefined): void {
    const { events, logger, telemetry } = this.context;
    const at = Date.now();
    // Metrics count every refusal; the events and the log below are throttled for anonymous ones.
    telemetry?.callbackFailed(error.code);
    if (username) {
      events.emit({ type: 'second_factor_failed', at, code: error.code as DuoErrorCode, username });
      logger.warn(`${this.#named()}Duo callback refused for user "${printable(username)}": ${error.code}.`);
      return;
    }
    const suppressed = this.#anonymousFailures.pass(at);
    if (suppressed === undefined) return;
    events.emit({ type: 'second_factor_failed', at, code: error.code as DuoErrorCode, ...(suppressed > 0 ? { suppressed } : {}) });
    const more = suppressed > 0 ? ` (${suppressed} more such callbacks in the last 10 s were not logged)` : '';
    logger.warn(`Duo callback refused: ${error.code}${more}.`);
  }

  /** Counts this prompt start, or refuses it (429) with an event and a warning (at most one a minute, with a count). */
  async #admit(limiter: PromptLimiter, request: DuoRequest, username: string): Promise<void> {
    try {
      await this.#storeCall(() => limiter.admit(request, username));
    } catch (error) {
      if (error instanceof PromptLimitError) {
        const at = Date.now();
        this.context.events.emit({ type: 'prompt_limited', at, username, scope: error.scope, retryAfterSeconds: error.retryAfterSeconds! });
        const suppressed = this.#limitedWarnings.pass(at);
        if (suppressed !== undefined) {
          const more = suppressed > 0 ? ` (${suppressed} more refused in the last minute were not logged)` : '';
          this.context.logger.warn(`${this.#named()}Duo prompt refused for user "${printable(username)}" by promptLimits (${error.scope}): a push flood, or a user who keeps reloading${more}.`);
        }
      }
      throw error;
    }
  }

  /** A failed callback of a known user, counted for promptLimits; a counter that fails is logged, never in the user's way. */
  async #countFailure(limiter: PromptLimiter, username: string, code: string): Promise<void> {
    try {
      await limiter.failed(username, code);
    } catch {
      this.context.logger.error('Could not count a failed Duo callback for promptLimits: the transaction store failed. The next prompt start checks the store again and is refused while it fails.');
    }
  }

  /** `Duo application "admin": ` in front of a log line, when the module names its applications. */
  #named(): string {
    return this.context.named ? `Duo application "${this.context.name}": ` : '';
  }

  #returnTarget(returnTo: string): string {
    const target = safeReturnPath(returnTo);
    // Never return to the callback itself: it would only ever fail.
    return target.split('?')[0] === this.context.callbackPath ? '/' : target;
  }

  #storeContext(data: DuoSessionData) {
    return { session: data, maxPendingPerSession: this.context.settings.maxPendingPerSession };
  }

  async #storeCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (isDuoError(error)) throw error;
      throw new DuoError<DuoErrorCode>('store_unavailable', 'The store of pending Duo logins is unavailable; nothing was let through. Try again shortly.');
    }
  }
}
