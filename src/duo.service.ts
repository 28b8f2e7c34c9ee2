import { Injectable, Optional } from '@nestjs/common';
import { DuoApplications } from './duo.applications.js';
import { DuoConfigError } from './protocol/index.js';
import type { Observable } from 'rxjs';
import type { DuoStatus } from './duo-health.js';
import { DuoContext } from './duo.context.js';
import type { DuoEvent } from './duo.events.js';
import { DuoFlow } from './duo.flow.js';
import type {
  DuoAuthUrlExtras,
  DuoAuthUrlOptions,
  DuoAuthorization,
  DuoHealthCheckResult,
  DuoIdTokenClaims,
  DuoNonce,
  DuoTokenChecks,
} from './protocol/index.js';
import type { BypassMarker, VerifiedMarker } from './second-factor.session.js';

/**
 * The injectable face of Duo: Duo's Web SDK v4 workflow under its names, what
 * the current session has passed (`verification`), and the audit events
 * (`events$`). The flow itself (starting a login, completing a callback) is the
 * module's own business and not reachable from here.
 */
@Injectable()
export class DuoService {
  readonly #applications: DuoApplications | undefined;
  readonly #others = new Map<string, DuoService>();

  constructor(
    private readonly context: DuoContext,
    private readonly flow: DuoFlow,
    @Optional() applications?: DuoApplications,
  ) {
    this.#applications = applications;
  }

  /** The name of this service's Duo application (`default` for top-level credentials). */
  get applicationName(): string {
    return this.context.name;
  }

  /** The names of the module's Duo applications, the default first. */
  get applicationNames(): string[] {
    return this.#applications ? this.#applications.contexts.map((context) => context.name) : [this.context.name];
  }

  /**
   * The face of another of the module's Duo applications (`applications`):
   * its health, its SDK workflow, what the current session passed there.
   * Injected, DuoService is the default application's. An unknown name throws
   * a DuoConfigError naming the registered ones.
   */
  forApplication(name: string): DuoService {
    if (name === this.context.name) return this;
    const cached = this.#others.get(name);
    if (cached) return cached;
    const context = this.#applications?.get(name);
    const flow = this.#applications?.flow(name);
    if (!context || !flow) {
      throw new DuoConfigError(`DuoService.forApplication(${JSON.stringify(name)}): no such Duo application; the registered ones are ${this.applicationNames.join(', ')}.`);
    }
    const service = new DuoService(context, flow, this.#applications);
    this.#others.set(name, service);
    return service;
  }

  /** Audit events: prompt started, second factor passed, failed, bypassed. No secrets in them. Subscribers must not throw. */
  get events$(): Observable<DuoEvent> {
    return this.context.events.events$;
  }

  /** This Duo application: `clientId@host` (a verified marker's `app` holds 12 characters of its SHA-256). */
  get application(): string {
    return this.context.application;
  }

  /**
   * Duo's health for probes and dashboards: whether Duo passed the last health
   * check, the clock offset, the fail mode and whether fail-open bypasses are
   * running. Cached: asks Duo at most once per `healthCheckCacheSeconds` (and
   * never more than once per 5 s), so a probe every second does not hammer Duo.
   * Never rejects. (`healthCheck()` is the fresh call.)
   */
  status(): Promise<DuoStatus> {
    return this.context.status();
  }

  // ---- Duo's Web SDK v4 workflow, by its names ----

  /** Asks Duo whether it can take a login now (a fresh call); warns when this server's clock is off. */
  async healthCheck(): Promise<DuoHealthCheckResult> {
    return this.context.remember(await this.context.health.refresh());
  }

  generateState(): string {
    return this.context.client.generateState();
  }

  /**
   * The prompt URL for a state you made and keep. `options.nonce` is required:
   * the nonce you keep with the state, or `expectNoNonce` to go without one, explicitly.
   */
  createAuthUrl(username: string, state: string, options: DuoAuthUrlOptions): Promise<string> {
    return this.context.client.createAuthUrl(username, state, options);
  }

  /** A fresh state and nonce and the prompt URL; keep both for the callback. */
  startAuthorization(username: string, options?: DuoAuthUrlExtras): Promise<DuoAuthorization> {
    return this.context.client.startAuthorization(username, options);
  }

  /** The verified claims for Duo's code. `nonce` is the one sent with the login, or `expectNoNonce`, explicitly. */
  exchangeAuthorizationCodeFor2FAResult(code: string, username: string, nonce: DuoNonce, checks?: DuoTokenChecks): Promise<DuoIdTokenClaims> {
    return this.context.exchangeAuthorizationCode(code, username, nonce, checks);
  }

  // ---- What the current session has passed ----

  /** The verified marker for the current user and this Duo application, if any (optionally no older than maxAge seconds). */
  verification(request: object, maxAge?: number): VerifiedMarker | undefined {
    return this.flow.verification(request as never, maxAge);
  }

  /** The fail-open bypass marker for the current user, if Duo was skipped for this session and the bypass still runs. */
  bypass(request: object): BypassMarker | undefined {
    return this.flow.bypass(request as never);
  }

  toJSON(): Record<string, unknown> {
    return { name: this.context.name, application: this.context.application };
  }
}
