/**
 * Names shared across the Nest layer (metadata keys, the strategy's name,
 * header and session keys), in one file that imports nothing at run time, so
 * that a decorator and the guard it binds never import each other.
 */
import type { DuoFactor } from './factor-rules.js';

/** Metadata of `@RequireSecondFactor()`: its options. */
export const REQUIRE_SECOND_FACTOR = 'nestjs-duo:require-second-factor';
/** Metadata of `@SkipSecondFactor()` (and of `@DuoCallback()`, which a global guard must not guard). */
export const SKIP_SECOND_FACTOR = 'nestjs-duo:skip-second-factor';
/** Marks the handlers of `@DuoCallback()`, so that the module can check at bootstrap that one serves the redirect URI. */
export const DUO_CALLBACK_ROUTE = 'nestjs-duo:callback-route';
/** The shortest step-up window `@RequireSecondFactor({ maxAge })` accepts. */
export const MIN_STEP_UP_SECONDS = 1;
/** The Passport strategy's name: `AuthGuard('duo')`. */
export const DUO_STRATEGY = 'duo';
/** The request header an API client may set to say where the browser returns after Duo. */
export const RETURN_TO_HEADER = 'x-duo-return-to';
/** The key of the module's data inside the session. */
export const DUO_SESSION_KEY = 'duo';

export interface RequireSecondFactorOptions {
  /**
   * The Duo application (a name of DuoModule's `applications`) whose second
   * factor this route needs; a marker of another application does not count.
   * Default: `resolveApplication(request)`, else `defaultApplication`. A name
   * that is not registered stops the app at startup.
   */
  application?: string;
  /**
   * Step-up: a second factor older than this many seconds does not count for
   * this route, and Duo is asked (with `max_age`) to authenticate again.
   */
  maxAge?: number;
  /**
   * Factor rule: only a login in which the user used one of these factors at
   * Duo counts for this route (e.g. `['webauthn']` for phishing-resistant
   * factors on admin routes). Implies `requireInteraction`. Checked against
   * the id_token's `auth_context` when the login comes back and on each
   * request; a value the module does not know never matches.
   */
  factors?: readonly DuoFactor[];
  /**
   * Factor rule: refuse a login Duo let through without asking the user
   * (bypass status or code, remembered device, trusted network or location,
   * an unenrolled user allowed by policy). The route's logins send Duo
   * `prompt=login`.
   */
  requireInteraction?: boolean;
}
