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
import { DuoExceptionFilter, answeredHere } from './duo-exception.filter.js';
import { DuoHttpException } from './duo.exception.js';
import type { DuoRequest } from './duo.options.js';
import { DUO_RETRY_PATH, DuoService, type SecondFactorResult } from './duo.service.js';
import { DUO_CALLBACK_SERVICE } from './duo.strategy.js';
import { DuoError, isDuoError } from './protocol/index.js';
import { singleQueryValue } from './request.util.js';
import { SecondFactorSession } from './second-factor.session.js';

/** Where the callback guard leaves its outcome on the request (read it with `@DuoCallbackResult()`). */
export const DUO_CALLBACK_RESULT = 'duoCallbackResult';

export interface DuoCallbackOutcome {
  /** The path the user was going to; the callback ends in a 303 there unless the handler returns `{ url }`. */
  returnTo: string;
  /** True when this was a reload of a callback that had already succeeded: nothing was sent to Duo. */
  reload: boolean;
  /** The verified second factor (absent on a reload). */
  result?: SecondFactorResult;
}

/**
 * Guards Duo's callback route: runs the `duo` Passport strategy (state taken
 * once, code exchanged, id_token checked), then marks the session verified
 * under a new session id. Every failure becomes a DuoHttpException with the
 * right status; responses carry `Cache-Control: no-store` and `Referrer-Policy: no-referrer`.
 */
@Injectable()
export class DuoCallbackGuard extends AuthGuard(DUO_STRATEGY) {
  constructor(
    private readonly duo: DuoService,
    private readonly adapterHost: HttpAdapterHost,
  ) {
    super();
  }

  override getAuthenticateOptions(): { session: boolean; property: string } {
    // Never touch req.user (the primary login) nor Passport's own session login.
    return { session: false, property: DUO_CALLBACK_RESULT };
  }

  override async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<DuoRequest>();
    const adapter = this.adapterHost.httpAdapter;
    const response = http.getResponse<unknown>();
    adapter.setHeader(response, 'Cache-Control', 'no-store');
    adapter.setHeader(response, 'Referrer-Policy', 'no-referrer');
    // GET routes answer HEAD too (Express, and Fastify's exposeHeadRoutes). Only a browser's GET may
    // spend the code: a link scanner's or prefetcher's HEAD must not complete someone's login.
    if (adapter.getRequestMethod(request) !== 'GET') {
      adapter.setHeader(response, 'Allow', 'GET');
      adapter.reply(response, undefined, 405);
      return answeredHere();
    }
    try {
      const state = singleQueryValue(request, 'state').value;
      // A reload of a callback that already succeeded lands where the first one did, without calling Duo.
      if (state !== undefined && request.session && typeof request.session === 'object') {
        const returnTo = SecondFactorSession.of(request).completed(state);
        if (returnTo !== undefined && this.duo.verification(request)) {
          const outcome: DuoCallbackOutcome = { returnTo, reload: true };
          request[DUO_CALLBACK_RESULT] = outcome;
          return true;
        }
      }
      request[DUO_CALLBACK_SERVICE as unknown as string] = this.duo;
      await super.canActivate(context);
      const result = request[DUO_CALLBACK_RESULT] as SecondFactorResult;
      await this.duo.recordSuccess(request, result, state!);
      const outcome: DuoCallbackOutcome = { returnTo: result.returnTo, reload: false, result };
      request[DUO_CALLBACK_RESULT] = outcome;
      return true;
    } catch (error) {
      // A failed callback leaves the session as it found it (no write, no cookie change).
      if (request.session && typeof request.session === 'object') SecondFactorSession.of(request).discardChanges();
      if (error instanceof DuoHttpException) throw error;
      const duoError = isDuoError(error) ? error : new DuoError('duo_upstream_invalid', 'The Duo callback could not be completed.');
      const retryPath = request[DUO_RETRY_PATH];
      throw new DuoHttpException(duoError, { retryPath: typeof retryPath === 'string' ? retryPath : '/' });
    }
  }

  override handleRequest<TUser = SecondFactorResult>(error: unknown, user: unknown): TUser {
    if (error) throw error;
    if (!user) throw new DuoError('second_factor_denied', 'The second factor was not passed.');
    return user as TUser;
  }
}

/** Ends the callback in a 303 to the return target, unless the handler returned its own `{ url }`. */
@Injectable()
export class DuoCallbackInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const outcome = context.switchToHttp().getRequest<DuoRequest>()[DUO_CALLBACK_RESULT] as DuoCallbackOutcome | undefined;
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
    UseGuards(DuoCallbackGuard), UseFilters(DuoExceptionFilter), UseInterceptors(DuoCallbackInterceptor),
    Redirect('/', 303),
  );

/** The callback's outcome (`DuoCallbackOutcome`) in a `@DuoCallback()` handler. */
export const DuoCallbackResult = createParamDecorator(
  (_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<DuoRequest>()[DUO_CALLBACK_RESULT] as DuoCallbackOutcome,
);
