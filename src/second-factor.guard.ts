import { HttpException, Inject, Injectable, type CanActivate, type ExecutionContext, type Type } from '@nestjs/common';
import { GUARDS_METADATA } from '@nestjs/common/constants.js';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { RETURN_TO_HEADER, REQUIRE_SECOND_FACTOR, SKIP_SECOND_FACTOR, type RequireSecondFactorOptions } from './duo.constants.js';
import { combinedRequirement } from './route-requirement.js';
import { answeredHere, writeDuoAnswer } from './duo-exception.filter.js';
import { DuoHttpException, withoutStack } from './duo.exception.js';
import type { DuoRequest } from './duo.options.js';
import { DuoFlow } from './duo.flow.js';
import { DuoApplications } from './duo.applications.js';
import { DuoService } from './duo.service.js';
import { DuoError, isDuoError } from './protocol/index.js';
import { requestPath, safeReturnPath, wantsJson } from './request.util.js';
import { SecondFactorSession } from './second-factor.session.js';
import type { DuoErrorCode } from './duo.errors.js';
import { checkFactorEvidence, factorRuleOf, type FactorRuleOutcome, type ResolvedFactorRule } from './factor-rules.js';

/** The Duo application canActivate chose for a request, for check() (a subclass's override calls it with the request only). */
const requestFlows = new WeakMap<object, DuoFlow>();
/** What each handler of each controller demands, as `requirement()` read it from their decorators once. */
const requirements = new WeakMap<object, WeakMap<object, RequireSecondFactorOptions | 'skip' | 'global'>>();

/** A route's application, step-up window and resolved factor rule (none for a globally guarded route). Throws for a rule that cannot be. */
function routeOf(requirement: RequireSecondFactorOptions | 'global'): { named?: string; maxAge?: number; rule?: ResolvedFactorRule } {
  if (requirement === 'global') return {};
  return { named: requirement.application, maxAge: requirement.maxAge, rule: factorRuleOf(requirement, '@RequireSecondFactor()') };
}

/**
 * Lets a request through only when its session passed Duo for the current user
 * (recently enough for step-up routes, in the way a factor rule demands).
 * Otherwise starts Duo: browsers get a 303 to the prompt, API clients a 401
 * (403 `factor_rule_not_met` when the session's login does not meet the
 * route's factor rule) saying where to go. Bound by
 * `@RequireSecondFactor()`, or globally with APP_GUARD (`@SkipSecondFactor()`
 * for public routes). Override the protected hooks to change a decision.
 */
@Injectable()
export class SecondFactorGuard implements CanActivate {
  /** Injected by property, so that subclasses keep the two-argument constructor. */
  @Inject(HttpAdapterHost) protected readonly adapterHost!: HttpAdapterHost;
  @Inject(DuoFlow) private readonly defaultFlow!: DuoFlow;
  @Inject(DuoApplications) private readonly applications!: DuoApplications;

  constructor(
    protected readonly reflector: Reflector,
    protected readonly duo: DuoService,
  ) {}

  /**
   * Synchronous for a session that already passed (the common case: no promise,
   * no microtask); a promise when Duo must be started or the application
   * resolved (`resolveApplication`), or when a subclass overrides `check()`.
   */
  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    const requirement = this.requirement(context);
    if (requirement === 'skip') return true;
    const type = context.getType<string>();
    if (type !== 'http' && type !== 'graphql') {
      // Duo needs a browser session. A globally bound guard leaves RPC and websocket handlers
      // alone; one bound to the handler (by decorator or @UseGuards) could never pass Duo there,
      // so it refuses. Any other context type is refused.
      return (type === 'rpc' || type === 'ws') && requirement === 'global' && !this.#boundToHandler(context);
    }
    const request = this.getRequest(context);
    if (!request || typeof request !== 'object' || !request.headers) return false;
    if (this.#passesNow(request, requirement)) return true;
    return this.#decide(context, type, request, requirement);
  }

  /**
   * The verified session's way through, decided without a promise: the same
   * reads as `check()` (session, user, marker, factor rule), and only when
   * nothing would be overridden by it: a subclass's `check()` or `flowOf()` is
   * always called, and a route whose application comes from `resolveApplication`
   * waits for it. Anything else (no marker, a bypass, an error) goes the
   * asynchronous way, which decides it again from the start.
   */
  #passesNow(request: DuoRequest, requirement: RequireSecondFactorOptions | 'global'): boolean {
    if (this.check !== SecondFactorGuard.prototype.check || this.flowOf !== SecondFactorGuard.prototype.flowOf) return false;
    try {
      const { named, maxAge, rule } = routeOf(requirement);
      const flow = named === undefined ? this.applications.resolveNow() : this.applications.flow(named);
      if (!flow || request.session === null || typeof request.session !== 'object') return false;
      flow.checkSessionCookie(request);
      const marker = flow.verification(request, maxAge);
      if (!marker) return false;
      if (rule !== undefined && !checkFactorEvidence(marker, rule).ok) return false;
      // No requestFlows entry: only check() and flowOf() read it, and neither runs for this request.
      return true;
    } catch {
      return false;
    }
  }

  async #decide(context: ExecutionContext, type: string, request: DuoRequest, requirement: RequireSecondFactorOptions | 'global'): Promise<boolean> {
    // GraphQL travels over HTTP with the same session: it is checked like an API client.
    const json = type === 'graphql' || wantsJson(request);
    try {
      const { named, maxAge, rule } = routeOf(requirement);
      // The route's application, else the request's (resolveApplication), else the default; check() reads it from the request.
      const flow = named === undefined ? await this.applications.resolve(request) : this.applications.flow(named);
      if (!flow) throw new DuoError<DuoErrorCode>('config_invalid', `The route names the Duo application "${named}", which is not registered.`);
      requestFlows.set(request, flow);
      return await this.check(request, maxAge, json, rule);
    } catch (error) {
      // A subclass's own refusal (a 403 of its check(), say) is its answer: passed on as it is.
      if (error instanceof HttpException && !(error instanceof DuoHttpException)) throw error;
      const answer =
        error instanceof DuoHttpException
          ? error
          : new DuoHttpException(isDuoError(error) ? error : new DuoError<DuoErrorCode>('duo_unavailable', 'The second factor could not be checked.'), {
              retryPath: this.#retryPath(request),
            });
      // The guard's own answers (a 303 to Duo or to the login page, a 401 that says where to go) are
      // written here, so that an app's catch-all exception filter cannot turn them into something else.
      if (type === 'http' && (answer.redirectTo !== undefined || (answer.getResponse() as { location?: string }).location !== undefined)) {
        writeDuoAnswer(this.adapterHost.httpAdapter, request, context.switchToHttp().getResponse<unknown>(), answer);
        return answeredHere();
      }
      throw answer;
    }
  }

  /**
   * The request to check. HTTP handlers get the platform's request; GraphQL
   * resolvers the `req` of their context (as @nestjs/graphql puts it there).
   * Override it for other contexts that carry an HTTP request and its session.
   */
  protected getRequest(context: ExecutionContext): DuoRequest | undefined {
    if (context.getType<string>() === 'graphql') return (context.getArgByIndex(2) as { req?: DuoRequest } | undefined)?.req;
    // What switchToHttp().getRequest() returns, without the three closures switchToHttp() makes per call.
    return context.getArgByIndex<DuoRequest>(0);
  }

  /**
   * What this handler demands. The handler's own decorator is laid over its
   * controller's, key by key (`combinedRequirement`), and a requirement wins over
   * a skip at the same level (fail closed): a `@RequireSecondFactor()` handler
   * inside a `@SkipSecondFactor()` controller is protected.
   */
  protected requirement(context: ExecutionContext): RequireSecondFactorOptions | 'skip' | 'global' {
    const handler = context.getHandler();
    const controller = context.getClass();
    // Decorators are applied when the classes are defined: the answer for a handler of a controller never changes.
    let byController = requirements.get(handler);
    const known = byController?.get(controller);
    if (known !== undefined) return known;
    const found = this.#requirementOf(handler, controller);
    if (!byController) requirements.set(handler, (byController = new WeakMap()));
    byController.set(controller, found);
    return found;
  }

  #requirementOf(handler: Function, controller: Type<unknown>): RequireSecondFactorOptions | 'skip' | 'global' {
    const name = handler.name;
    const onHandler = this.reflector.get<RequireSecondFactorOptions | undefined>(REQUIRE_SECOND_FACTOR, handler);
    const onController = this.reflector.get<RequireSecondFactorOptions | undefined>(REQUIRE_SECOND_FACTOR, controller);
    // Both: the handler's options over the controller's, key by key (its application and rule stay).
    if (onHandler !== undefined) return combinedRequirement(onHandler, onController, `${controller.name}.${name}`);
    if (this.reflector.get<boolean | undefined>(SKIP_SECOND_FACTOR, handler)) return 'skip';
    if (onController !== undefined) return onController;
    if (this.reflector.get<boolean | undefined>(SKIP_SECOND_FACTOR, controller)) return 'skip';
    return 'global';
  }

  /**
   * The decision for one request. `rule` is the route's resolved factor rule:
   * the session's login must meet it (else a new login with `prompt=login`),
   * and a fail-open bypass never counts for it.
   */
  protected async check(request: DuoRequest, maxAge: number | undefined, json = wantsJson(request), rule?: ResolvedFactorRule): Promise<boolean> {
    const flow = this.flowOf(request);
    SecondFactorSession.of(request);
    flow.checkSessionCookie(request);
    const username = flow.usernameOf(request);
    if (!username) return this.noPrimaryUser(request);
    const marker = flow.verification(request, maxAge);
    let unmet: Extract<FactorRuleOutcome, { ok: false }> | undefined;
    if (marker) {
      if (rule === undefined) return true;
      const outcome = checkFactorEvidence(marker, rule);
      if (outcome.ok) return true;
      unmet = outcome;
    }
    if (maxAge === undefined && rule === undefined && flow.bypass(request)) return true;

    if (request.method === 'HEAD') {
      // A HEAD (a link checker's, a prefetcher's) must not start a Duo login: it would store a pending
      // login and count against the user's prompt limits. It learns the status, nothing more.
      throw new DuoHttpException(
        new DuoError<DuoErrorCode>(maxAge === undefined ? 'second_factor_required' : 'step_up_required', 'This page needs a Duo second factor; open it with GET to be sent to Duo.'),
      );
    }
    const returnTo = json ? safeReturnPath(request.headers[RETURN_TO_HEADER]) : safeReturnPath(requestPath(request));
    const start = await flow.start(request, username, returnTo, maxAge, rule);
    if (start.kind === 'bypass') return true;
    const open = 'Open `location` in the browser (a full-page navigation) to pass it.';
    // The way to Duo is an answer, not a failure: no stack trace is captured for it (canActivate writes it).
    throw withoutStack(() => {
      const required = unmet
        ? new DuoError<DuoErrorCode>('factor_rule_not_met', `${unmet.message} Open \`location\` in the browser (a full-page navigation) to sign in with Duo again.`)
        : new DuoError<DuoErrorCode>(
            maxAge === undefined ? 'second_factor_required' : 'step_up_required',
            maxAge === undefined ? `This page needs a Duo second factor. ${open}` : `This page needs a Duo second factor from the last ${maxAge} seconds. ${open}`,
          );
      return new DuoHttpException(required, json ? { location: start.url } : { redirectTo: start.url });
    });
  }

  /** The flow of the request's Duo application, as canActivate chose it (the default's for a request it did not see). */
  protected flowOf(request: DuoRequest): DuoFlow {
    return requestFlows.get(request) ?? this.defaultFlow;
  }

  /** No primary login: 401, or a 303 to `loginPath` for browsers when it is set. */
  protected noPrimaryUser(request: DuoRequest): never {
    const error = new DuoError<DuoErrorCode>('primary_auth_required', 'Sign in first: this page needs a logged-in user before the Duo second factor.');
    const loginPath = this.defaultFlow.context.settings.loginPath;
    if (loginPath && !wantsJson(request)) {
      const target = `${loginPath}${loginPath.includes('?') ? '&' : '?'}returnTo=${encodeURIComponent(safeReturnPath(requestPath(request)))}`;
      throw new DuoHttpException(error, { redirectTo: target });
    }
    throw new DuoHttpException(error, { retryPath: loginPath ?? '/' });
  }

  /** Whether this guard class is in the handler's or controller's own `@UseGuards()`, not only bound globally. */
  #boundToHandler(context: ExecutionContext): boolean {
    const bound = [
      ...(this.reflector.get<unknown[] | undefined>(GUARDS_METADATA, context.getHandler()) ?? []),
      ...(this.reflector.get<unknown[] | undefined>(GUARDS_METADATA, context.getClass()) ?? []),
    ];
    return bound.some(
      (guard) =>
        (typeof guard === 'function' && (guard === SecondFactorGuard || guard.prototype instanceof SecondFactorGuard)) ||
        guard instanceof SecondFactorGuard,
    );
  }

  #retryPath(request: DuoRequest): string {
    return wantsJson(request) ? '/' : safeReturnPath(requestPath(request));
  }
}
