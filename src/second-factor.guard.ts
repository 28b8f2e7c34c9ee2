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
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(SKIP_SECOND_FACTOR, targets)) return true;
    const required = this.reflector.getAllAndOverride<RequireSecondFactorOptions | undefined>(REQUIRE_SECOND_FACTOR, targets);
    // Duo needs a browser session: a globally bound guard leaves RPC and websocket handlers alone,
    // but one that was explicitly decorated can never be satisfied there, so it is refused.
    if (context.getType() !== 'http') return required === undefined;
    const options = required ?? {};
    const request = context.switchToHttp().getRequest<DuoRequest>();
    try {
      return await this.check(request, options.maxAge);
    } catch (error) {
      if (error instanceof DuoHttpException) throw error;
      throw new DuoHttpException(isDuoError(error) ? error : new DuoError('duo_unavailable', 'The second factor could not be checked.'), {
        retryPath: this.#retryPath(request),
      });
    }
  }

  protected async check(request: DuoRequest, maxAge: number | undefined): Promise<boolean> {
    const session = SecondFactorSession.of(request);
    this.duo.checkSessionCookie(request);
    const username = this.duo.usernameOf(request);
    if (!username) return this.noPrimaryUser(request);
    if (session.verifiedFor(username, maxAge)) return true;
    if (maxAge === undefined && session.bypassFor(username)) return true;

    const json = wantsJson(request);
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
