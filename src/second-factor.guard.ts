import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { DuoHttpException } from './duo.exception.js';
import type { DuoRequest } from './duo.options.js';
import { DuoService } from './duo.service.js';
import { DuoError, isDuoError } from './protocol/index.js';
import { REQUIRE_SECOND_FACTOR, SKIP_SECOND_FACTOR, type RequireSecondFactorOptions } from './require-second-factor.decorator.js';
import { requestPath, safeReturnTo, wantsJson } from './request.util.js';
import { SecondFactorSession } from './second-factor.session.js';

/** The request header an API client may set to say where the browser returns after Duo. */
export const RETURN_TO_HEADER = 'x-duo-return-to';

/**
 * Lets a request through only when its session passed Duo for the current user
 * (recently enough for step-up routes). Otherwise starts Duo: browsers get a
 * 303 to the prompt, API clients a 401 saying where to go. Bound by
 * `@RequireSecondFactor()`, or globally with APP_GUARD (`@SkipSecondFactor()`
 * for public routes). Override the protected hooks to change a decision.
 */
@Injectable()
export class SecondFactorGuard implements CanActivate {
  constructor(
    protected readonly reflector: Reflector,
    protected readonly duo: DuoService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const requirement = this.requirement(context);
    if (requirement === 'skip') return true;
    const type = context.getType<string>();
    let request: DuoRequest | undefined;
    let json = false;
    if (type === 'http') {
      request = context.switchToHttp().getRequest<DuoRequest>();
      json = wantsJson(request);
    } else if (type === 'graphql') {
      // GraphQL travels over HTTP with the same session: check it like an API client.
      request = (context.getArgByIndex(2) as { req?: DuoRequest } | undefined)?.req;
      json = true;
      if (!request || typeof request !== 'object' || !request.headers) return false;
    } else {
      // Duo needs a browser session: a globally bound guard leaves RPC and websocket
      // handlers alone, but one explicitly decorated could never pass Duo there, so it is refused.
      return (type === 'rpc' || type === 'ws') && requirement === 'global';
    }
    const maxAge = requirement === 'global' ? undefined : requirement.maxAge;
    try {
      return await this.check(request, maxAge, json);
    } catch (error) {
      if (error instanceof DuoHttpException) throw error;
      throw new DuoHttpException(isDuoError(error) ? error : new DuoError('duo_unavailable', 'The second factor could not be checked.'), {
        retryPath: this.#retryPath(request),
      });
    }
  }

  /**
   * What this handler demands. The handler's own decorator wins over its
   * controller's, and a requirement wins over a skip at the same level (fail
   * closed): a `@RequireSecondFactor()` handler inside a `@SkipSecondFactor()`
   * controller is protected.
   */
  protected requirement(context: ExecutionContext): RequireSecondFactorOptions | 'skip' | 'global' {
    for (const target of [context.getHandler(), context.getClass()]) {
      const required = this.reflector.get<RequireSecondFactorOptions | undefined>(REQUIRE_SECOND_FACTOR, target);
      if (required !== undefined) return required;
      if (this.reflector.get<boolean | undefined>(SKIP_SECOND_FACTOR, target)) return 'skip';
    }
    return 'global';
  }

  protected async check(request: DuoRequest, maxAge: number | undefined, json = wantsJson(request)): Promise<boolean> {
    const session = SecondFactorSession.of(request);
    this.duo.checkSessionCookie(request);
    const username = this.duo.usernameOf(request);
    if (!username) return this.noPrimaryUser(request);
    if (session.verifiedFor(username, maxAge)) return true;
    if (maxAge === undefined && session.bypassFor(username)) return true;

    const returnTo = json ? safeReturnTo(request.headers[RETURN_TO_HEADER]) : safeReturnTo(requestPath(request));
    const start = await this.duo.startSecondFactor(request, username, returnTo, maxAge);
    if (start.kind === 'bypass') return true;
    const required = new DuoError(
      maxAge === undefined ? 'second_factor_required' : 'step_up_required',
      maxAge === undefined
        ? 'This page needs a Duo second factor. Open `location` in the browser (a full-page navigation) to pass it.'
        : `This page needs a Duo second factor from the last ${maxAge} seconds. Open \`location\` in the browser (a full-page navigation) to pass it.`,
    );
    if (json) throw new DuoHttpException(required, { location: start.url });
    throw new DuoHttpException(required, { redirectTo: start.url });
  }

  /** No primary login: 401, or a 303 to `loginPath` for browsers when it is set. */
  protected noPrimaryUser(request: DuoRequest): never {
    const error = new DuoError('primary_auth_required', 'Sign in first: this page needs a logged-in user before the Duo second factor.');
    const loginPath = this.duo.settings.loginPath;
    if (loginPath && !wantsJson(request)) {
      const target = `${loginPath}${loginPath.includes('?') ? '&' : '?'}returnTo=${encodeURIComponent(safeReturnTo(requestPath(request)))}`;
      throw new DuoHttpException(error, { redirectTo: target });
    }
    throw new DuoHttpException(error, { retryPath: loginPath ?? '/' });
  }

  #retryPath(request: DuoRequest): string {
    return wantsJson(request) ? '/' : safeReturnTo(requestPath(request));
  }
}
