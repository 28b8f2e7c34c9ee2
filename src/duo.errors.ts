import type { DuoProtocolErrorCode } from './protocol/index.js';

/**
 * Every code nestjs-duo answers with, and its HTTP status: the protocol's
 * codes and the Nest layer's own. The one place a code meets a status.
 */
export const DUO_ERROR_STATUS = {
  config_invalid: 500,
  input_invalid: 400,
  state_invalid: 400,
  duo_unavailable: 503,
  duo_overloaded: 503,
  duo_rate_limited: 503,
  duo_timeout: 504,
  duo_tls_failed: 502,
  duo_tls_pinning_failed: 502,
  duo_upstream_invalid: 502,
  duo_invalid_client: 502,
  duo_request_rejected: 502,
  code_invalid: 401,
  token_invalid: 502,
  username_mismatch: 401,
  nonce_mismatch: 401,
  second_factor_denied: 401,
  // The Nest layer's own.
  state_unknown: 400,
  transaction_expired: 401,
  access_denied: 401,
  duo_error: 401,
  primary_auth_required: 401,
  second_factor_required: 401,
  step_up_required: 401,
  session_unavailable: 503,
  session_changed: 401,
  store_unavailable: 503,
  prompt_rate_limited: 429,
  // Duo passed the user, but not in the way the route's factor rule demands (a known user: forbidden, not unauthenticated).
  factor_rule_not_met: 403,
  // resolveApplication named a Duo application this module does not have (a request for an unknown tenant or host).
  application_unknown: 400,
  // resolveApplication threw or rejected (a config store that is down): nothing is let through.
  application_unavailable: 503,
} as const satisfies Record<DuoProtocolErrorCode, number> & Record<string, number>;

/** Every code of nestjs-duo's errors: the protocol's and the Nest layer's. */
export type DuoErrorCode = keyof typeof DUO_ERROR_STATUS;

/** The HTTP status of a code; an unknown code (a store's own error) is 500. */
export function statusOf(code: string): number {
  return Object.hasOwn(DUO_ERROR_STATUS, code) ? DUO_ERROR_STATUS[code as DuoErrorCode] : 500;
}
