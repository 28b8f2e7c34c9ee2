import {
  Injectable,
  Redirect,
  SetMetadata,
  UseFilters,
  UseGuards,
  UseInterceptors,
  applyDecorators,
  createParamDecorator,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { map, type Observable } from 'rxjs';
import { DUO_CALLBACK_ROUTE, DUO_STRATEGY, SKIP_SECOND_FACTOR } from './duo.constants.js';
import { DuoExceptionFilter, answeredHere, noStore } from './duo-exception.filter.js';
import { DuoHttpException } from './duo.exception.js';
import { DuoFlow, type DuoCallbackOutcome } from './duo.flow.js';
import type { DuoRequest } from './duo.options.js';
import type { DuoAuthenticateOptions } from './duo.strategy.js';
import { DuoError } from './protocol/index.js';
import { SecondFactorSession } from './second-factor.session.js';
import type { DuoErrorCode } from './duo.errors.js';

/** Where Passport puts the callback's outcome on the request: read it with `@DuoCallbackResult()`. */
const OUTCOME = 'duoCallbackOutcome';

/** The callback's outcome on this request, if the callback guard passed. */
function outcomeOf(request: DuoRequest): DuoCallbackOutcome | undefined {
  return request[OUTCOME] as DuoCallbackOutcome | undefined;
}

/**
 * Guards Duo's callback route: runs the `duo` Passport strategy, which takes the
 * pending login once, exchanges the code, checks the id_token and renews the
 * session. Every failure is a DuoHttpException with the right status and, once
 * the login is known, its page's "start again" link; responses carry
 * `Cache-Control: no-store` and `Referrer-Policy: no-referrer`.
 */
@Injectable()
export class DuoCallbackGuard extends AuthGuard(DUO_STRATEGY) {
  constructor(
    private readonly flow: DuoFlow,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    super();
  }

  override getAuthenticateOptions(): DuoAuthenticateOptions {
    // Never touch req.user (the primary login) nor Passport's own session login.
    return { session: false, property: OUTCOME, flow: this.flow };
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<DuoRequest>();
    const adapter = this.adapterHost.httpAdapter;
    const response = http.getResponse<unknown>();
    noStore(adapter, response);
    // GET routes answer HEAD too (Express, and Fastify's exposeHeadRoutes). Only a browser's GET may
    // spend the code: a link scanner's or prefetcher's HEAD must not complete someone's login.
    if (adapter.getRequestMethod(request) !== 'GET') {
      adapter.setHeader(response, 'Allow', 'GET');
      adapter.reply(response, undefined, 405);
      return answeredHere();
    }
    // A reload of a callback that already succeeded lands where the first one did, without calling Duo.
    const reload = this.flow.reloaded(request);
    if (reload) {
      request[OUTCOME] = reload;
      return true;
    }
    try {
      return (await super.canActivate(context)) as boolean;
    } catch (error) {
      // A failed callback leaves the session as it found it (no write, no cookie change).
      if (request.session && typeof request.session === 'object') SecondFactorSession.of(request).discardChanges();
      if (error instanceof DuoHttpException) throw error;
      throw new DuoHttpException(new DuoError<DuoErrorCode>('duo_upstream_invalid', 'The Duo callback could not be completed.'));
    }
  }

  override handleRequest<TUser = DuoCallbackOutcome>(error: unknown, outcome: unknown): TUser {
    if (error) throw error;
    if (!outcome) throw new DuoHttpException(new DuoError<DuoErrorCode>('second_factor_denied', 'The second factor was not passed.'));
    return outcome as TUser;
  }
}

/** Ends the callback in a 303 to the return target, unless the handler returned its own `{ url }`. */
@Injectable()
export class DuoCallbackInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const outcome = outcomeOf(context.switchToHttp().getRequest<DuoRequest>());
    return next.handle().pipe(
      map((value: unknown) => {
        if (value && typeof value === 'object' && typeof (value as { url?: unknown }).url === 'string') return value;
        return { url: outcome?.returnTo ?? '/', statusCode: 303 };
      }),
    );
  }
}

/**
 * Put this on the route at your redirect URI's path. The handler runs only
 * after a passed second factor; it may return `{ url }` to send the user
 * elsewhere, otherwise the user returns to the page that started the login.
 */
export const DuoCallback = (): MethodDecorator =>
  applyDecorators(
    // With the guard bound globally, the callback itself must not demand the second factor it completes.
    SetMetadata(SKIP_SECOND_FACTOR, true),
    SetMetadata(DUO_CALLBACK_ROUTE, true),
    UseGuards(DuoCallbackGuard),
    UseFilters(DuoExceptionFilter),
    UseInterceptors(DuoCallbackInterceptor),
    Redirect('/', 303),
  );

/** The callback's outcome (`DuoCallbackOutcome`) in a `@DuoCallback()` handler. */
export const DuoCallbackResult = createParamDecorator((_data: unknown, context: ExecutionContext) => outcomeOf(context.switchToHttp().getRequest<DuoRequest>()));
