import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy as PassportBaseStrategy } from 'passport';
import { DUO_STRATEGY } from './duo.constants.js';
import type { DuoRequest } from './duo.options.js';
import type { DuoService, SecondFactorResult } from './duo.service.js';
import { DuoError } from './protocol/index.js';

/** The request property through which the callback guard hands this app's DuoService to the strategy. */
export const DUO_CALLBACK_SERVICE = Symbol.for('nestjs-duo:callback-service');

type Verify = (request: DuoRequest, done: (error: unknown, user?: unknown, info?: unknown) => void) => void;

/** A minimal Passport strategy: hands the request to a verify function and reports its outcome. */
class DuoCallbackPassportStrategy extends PassportBaseStrategy {
  override name = DUO_STRATEGY;
  constructor(private readonly verify: Verify) {
    super();
  }
  override authenticate(request: Parameters<PassportBaseStrategy['authenticate']>[0]): void {
    this.verify(request as unknown as DuoRequest, (error, user, info) => {
      if (error) return this.error(error as Error);
      if (!user) return this.fail(401);
      return this.success(user, info as object | undefined);
    });
  }
}

/**
 * The Passport strategy `duo`: consumes Duo's callback (`?duo_code&state`),
 * takes the pending login once, exchanges the code and checks the id_token.
 *
 * Passport keeps strategies by name in one process-wide registry, so two Nest
 * apps in one process (tests, several instances) would share the last one
 * registered. The strategy therefore holds no app state: the callback guard
 * puts its own app's DuoService on the request, and the strategy refuses when
 * it is missing.
 */
@Injectable()
export class DuoStrategy extends PassportStrategy(DuoCallbackPassportStrategy, DUO_STRATEGY) {
  constructor() {
    super();
  }

  async validate(request: DuoRequest): Promise<SecondFactorResult> {
    const service = request[DUO_CALLBACK_SERVICE as unknown as string] as DuoService | undefined;
    if (!service) {
      throw new DuoError('session_unavailable', 'The Duo callback must be handled by DuoCallbackGuard (use @DuoCallback() on the route).');
    }
    return service.completeCallback(request);
  }
}
