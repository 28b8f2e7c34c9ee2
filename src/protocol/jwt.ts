import { webcrypto } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';

export const DUO_JWT_ALG = 'HS512';

/**
 * The client secret as an HS512 key, imported once: jose would import a raw
 * secret again on every call, which is most of the cost of signing.
 */
export class HsKey {
  readonly #key: Promise<webcrypto.CryptoKey>;
  constructor(secret: string) {
    // A WebCrypto key: jose uses it as it is, where a KeyObject or raw bytes are converted per call.
    this.#key = webcrypto.subtle.importKey('raw', Buffer.from(secret, 'utf8'), { name: 'HMAC', hash: 'SHA-512' }, false, [
      'sign',
      'verify',
    ]);
    this.#key.catch(() => undefined);
  }
  get key(): Promise<webcrypto.CryptoKey> {
    return this.#key;
  }
  /** Keys hold secrets: never show them. */
  toJSON(): string {
    return '[HsKey]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[HsKey]';
  }
}

export async function signJwt(key: HsKey, claims: JWTPayload, typ?: string): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(typ ? { alg: DUO_JWT_ALG, typ } : { alg: DUO_JWT_ALG }).sign(await key.key);
}

export type JwtFailure =
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'expired'
  | 'not_yet_valid'
  | 'claim';

export class JwtVerifyError extends Error {
  constructor(
    readonly failure: JwtFailure,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Verifies an HS512 JWT's signature, `exp` and `nbf` (with `leeway` seconds).
 * The claim checks that depend on the caller are left to it, so each can name
 * what failed.
 */
export async function verifyJwt(key: HsKey, token: unknown, leeway: number, now?: number): Promise<JWTPayload> {
  if (typeof token !== 'string' || token.length === 0 || token.length > 16384) {
    throw new JwtVerifyError('malformed', 'is missing, not a string, or too long');
  }
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw new JwtVerifyError('malformed', 'is not a JWT');
  }
  if (alg !== DUO_JWT_ALG) {
    throw new JwtVerifyError('algorithm', `is signed with ${typeof alg === 'string' ? JSON.stringify(alg.slice(0, 16)) : 'no algorithm'}; only HS512 is accepted`);
  }
  try {
    const { payload } = await jwtVerify(token, await key.key, {
      algorithms: [DUO_JWT_ALG],
      clockTolerance: leeway,
      ...(now === undefined ? {} : { currentDate: new Date(now * 1000) }),
    });
    return payload;
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired) throw new JwtVerifyError('expired', 'has expired');
    if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw new JwtVerifyError('signature', 'has an invalid signature');
    }
    if (error instanceof joseErrors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf') throw new JwtVerifyError('not_yet_valid', 'is not valid yet (nbf is in the future)');
      throw new JwtVerifyError('claim', `has an invalid "${error.claim}" claim`);
    }
    throw new JwtVerifyError('malformed', 'could not be decoded');
  }
}

export const epochSeconds = (): number => Math.floor(Date.now() / 1000);
