/** Duo's checks of a client assertion (RFC 7523), shared by the health check and the token call. */
import type { JWTPayload } from 'jose';
import { JwtVerifyError, verifyJwt } from '../protocol/jwt.js';
import type { EmulatorState } from './emulator.state.js';

/** True when `aud` is `expected`, alone or as the one member of a list. */
export function audienceIs(aud: unknown, expected: string): boolean {
  return aud === expected || (Array.isArray(aud) && aud.length === 1 && aud[0] === expected);
}

/** Checks an assertion sent to `audience` and spends its jti; returns what is wrong (safe to log), or undefined. */
export async function checkClientAssertion(
  state: EmulatorState,
  clientId: string | undefined,
  assertion: string,
  audience: string,
): Promise<string | undefined> {
  if (clientId !== undefined && clientId !== state.clientId) return 'unknown client_id';
  let claims: JWTPayload;
  try {
    claims = await verifyJwt(state.key, assertion, 0, state.now());
  } catch (error) {
    return error instanceof JwtVerifyError ? `assertion ${error.failure}` : 'assertion malformed';
  }
  if (claims.iss !== state.clientId) return 'assertion iss';
  if (claims.sub !== state.clientId) return 'assertion sub';
  if (!audienceIs(claims.aud, audience)) return 'assertion aud';
  if (typeof claims.exp !== 'number') return 'assertion without exp';
  const jti = claims.jti;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) return 'assertion without jti';
  if (!state.rememberJti(jti, claims.exp)) return 'jti replayed';
  return undefined;
}
