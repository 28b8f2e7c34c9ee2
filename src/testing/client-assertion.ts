/** Duo's checks of a client assertion (RFC 7523), shared by the health check and the token call. */
import { decodeJwt, type JWTPayload } from 'jose';
import { JwtVerifyError, verifyJwt } from '../protocol/jwt.js';
import type { EmulatorApplication, EmulatorState } from './emulator.state.js';

/** True when `aud` is `expected`, alone or as the one member of a list. */
export function audienceIs(aud: unknown, expected: string): boolean {
  return aud === expected || (Array.isArray(aud) && aud.length === 1 && aud[0] === expected);
}

/**
 * Checks an assertion sent to `audience` and spends its jti; returns what is
 * wrong (safe to log), or the application it authenticates. Without
 * `client_id` (optional at the token endpoint) the assertion's `iss` names
 * the application whose secret must have signed it.
 */
export async function checkClientAssertion(
  state: EmulatorState,
  clientId: string | undefined,
  assertion: string,
  audience: string,
): Promise<{ problem: string } | { application: EmulatorApplication }> {
  let named = clientId;
  if (named === undefined) {
    try {
      const iss = decodeJwt(assertion).iss;
      named = typeof iss === 'string' ? iss : undefined;
    } catch {
      return { problem: 'assertion malformed' };
    }
  }
  const application = named === undefined ? undefined : state.applications.get(named);
  if (application === undefined) return { problem: clientId === undefined ? 'assertion iss' : 'unknown client_id' };
  let claims: JWTPayload;
  try {
    claims = await verifyJwt(application.key, assertion, 0, state.now());
  } catch (error) {
    return { problem: error instanceof JwtVerifyError ? `assertion ${error.failure}` : 'assertion malformed' };
  }
  const problem = assertionProblem(state, application, claims, audience);
  return problem === undefined ? { application } : { problem };
}

function assertionProblem(state: EmulatorState, application: EmulatorApplication, claims: JWTPayload, audience: string): string | undefined {
  if (claims.iss !== application.clientId) return 'assertion iss';
  if (claims.sub !== application.clientId) return 'assertion sub';
  if (!audienceIs(claims.aud, audience)) return 'assertion aud';
  if (typeof claims.exp !== 'number') return 'assertion without exp';
  const jti = claims.jti;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) return 'assertion without jti';
  if (!state.rememberJti(jti, claims.exp)) return 'jti replayed';
  return undefined;
}
