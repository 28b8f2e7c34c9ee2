import { Injectable } from '@nestjs/common';
import passport, { Strategy } from 'passport';
import { DUO_STRATEGY } from './duo.constants.js';
import type { DuoFlow } from './duo.flow.js';
import type { DuoRequest } from './duo.options.js';

/** What the callback guard passes to `passport.authenticate('duo', options)`. */
export interface DuoAuthenticateOptions {
  session: false;
  /** Where Passport puts the outcome on the request (read it with `@DuoCallbackResult()`). */
  property: string;
  /** The flow of the app whose callback this is. */
  flow: DuoFlow;
}

/**
 * The Passport strategy `duo`: consumes Duo's callback (`?duo_code&state`) in
 * `authenticate()`, as openid-client's strategy does: the state is taken once,
 * the code exchanged, the id_token checked and the session renewed. Its success
 * is the callback's outcome; its error the DuoHttpException to answer with.
 *
 * Passport keeps strategies by name in one process-wide registry, so two Nest
 * apps in one process (tests, several instances) would share the last one
 * registered. The strategy therefore holds no app state: each app's callback
 * guard passes its own flow in the authenticate options.
 */
@Injectable()
export class DuoStrategy extends Strategy {
  override name = DUO_STRATEGY;

  constructor() {
    super();
    // The registry AuthGuard('duo') reads (what @nestjs/passport's PassportStrategy does on construction).
    passport.use(DUO_STRATEGY, this);
  }

  override authenticate(request: Parameters<Strategy['authenticate']>[0], options?: Partial<DuoAuthenticateOptions>): void {
    const flow = options?.flow;
    if (!flow) {
      this.error(new Error('The duo strategy runs only behind DuoCallbackGuard (use @DuoCallback() on the route).'));
      return;
    }
    flow.complete(request as unknown as DuoRequest).then(
      (outcome) => this.success(outcome),
      (error: unknown) => this.error(error as Error),
    );
  }
}
