import { createHmac, createSecretKey, webcrypto, type KeyObject } from 'node:crypto';
import { isProxy } from 'node:util/types';
import { decodeProtectedHeader, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';

export const DUO_JWT_ALG = 'HS512';

/** HMAC-SHA-512 of `input` under `key`, base64url (set by HsKey's static block, which alone sees the key). */
let macOf!: (key: HsKey, input: string) => string;

/**
 * The client secret as an HS512 key, made once: a node:crypto KeyObject for
 * signing what we send (one synchronous HMAC per JWT) and a WebCrypto key for
 * jose, which verifies everything we receive.
 */
export class HsKey {
  readonly #key: Promise<webcrypto.CryptoKey>;
  readonly #hmacKey: KeyObject;
  constructor(secret: string) {
    // An empty key would sign (HMAC allows it) where jose's WebCrypto key refuses to exist: refuse it here, for both.
    if (typeof secret !== 'string' || secret.length === 0) throw new TypeError('An HS512 key needs a non-empty secret string.');
    const bytes = Buffer.from(secret, 'utf8');
    this.#hmacKey = createSecretKey(bytes);
    // A WebCrypto key: jose uses it as it is, where a KeyObject or raw bytes are converted per call.
    this.#key = webcrypto.subtle.importKey('raw', bytes, { name: 'HMAC', hash: 'SHA-512' }, false, ['sign', 'verify']);
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
  static {
    macOf = (key, input) => createHmac('sha512', key.#hmacKey).update(input, 'utf8').digest('base64url');
  }
}

const base64url = (text: string): string => Buffer.from(text, 'utf8').toString('base64url');
/** The two headers we send, encoded once: exactly the bytes jose makes of them (JSON.stringify, base64url). */
const HEADER = base64url(JSON.stringify({ alg: DUO_JWT_ALG }));
const HEADER_JWT = base64url(JSON.stringify({ alg: DUO_JWT_ALG, typ: 'JWT' }));
/** An array index as Object.keys writes it. */
const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/**
 * Objects JSON.stringify and jose (structuredClone, then JSON.stringify) turn
 * into the same text: prototype Object.prototype or none. Class instances,
 * Dates, Maps and the like are refused, as structuredClone would drop their
 * prototypes (and any toJSON) where JSON.stringify alone would not.
 */
function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value) as unknown;
  return (prototype === Object.prototype || prototype === null) && !isProxy(value);
}

/**
 * Why `value` cannot be signed as it is, or undefined when it can: only JSON
 * data (plain objects, arrays, strings, finite numbers, booleans, null, and
 * undefined, which JSON.stringify leaves out of objects and makes null in
 * arrays, as jose does). The path is built only on failure.
 */
function unsignable(value: unknown, ancestors: object[]): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return undefined;
    case 'number':
      // jose would write NaN and Infinity as null (and refuses them in iat, nbf and exp): we refuse them everywhere.
      return Number.isFinite(value) ? undefined : `: ${String(value)} is not a finite number`;
    case 'object': {
      if (value === null) return undefined;
      if (ancestors.includes(value)) return ': refers back to an enclosing value (a cycle)';
      ancestors.push(value);
      try {
        if (Array.isArray(value)) {
          if (isProxy(value)) return ': is a Proxy';
          // Properties beyond the elements: JSON.stringify skips them, structuredClone (jose) copies them, and
          // refuses a function among them. Index keys come first in Object.keys, so the last one tells.
          const keys = Object.keys(value);
          const last = keys.length === 0 ? undefined : keys[keys.length - 1]!;
          if (last !== undefined && !(ARRAY_INDEX.test(last) && Number(last) < value.length)) return ': is an array with properties besides its elements';
          for (let i = 0; i < value.length; i++) {
            const problem = unsignable(value[i], ancestors);
            if (problem !== undefined) return `[${i}]${problem}`;
          }
          return undefined;
        }
        if (!isPlainObject(value)) return `: is ${isProxy(value) ? 'a Proxy' : `a ${Object.prototype.toString.call(value).slice(8, -1)} that is not a plain object`}`;
        for (const name of Object.keys(value)) {
          const problem = unsignable((value as Record<string, unknown>)[name], ancestors);
          if (problem !== undefined) return `.${name}${problem}`;
        }
        return undefined;
      } finally {
        ancestors.pop();
      }
    }
    default:
      return `: is a ${typeof value}`;
  }
}

/**
 * Signs `claims` as an HS512 JWT, header `{"alg":"HS512"}` (and `"typ"` when
 * given): byte for byte what jose's SignJWT / CompactSign make of the same
 * claims, header and key (test/protocol/jwt-sign.test.ts proves it), as one
 * synchronous HMAC instead of a WebCrypto job. Only what we produce is signed
 * here; whatever we receive is verified by jose (verifyJwt).
 * Throws a TypeError, naming the claim, for anything that is not JSON data.
 */
export function signJwtSync(key: HsKey, claims: JWTPayload, typ?: string): string {
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims) || !isPlainObject(claims)) {
    throw new TypeError('JWT claims must be a plain object.');
  }
  const problem = unsignable(claims, []);
  if (problem !== undefined) throw new TypeError(`JWT claim ${problem.replace(/^\./, '')}; only JSON data can be signed.`);
  if (typ !== undefined && typeof typ !== 'string') throw new TypeError('The JWT "typ" header must be a string.');
  const header = !typ ? HEADER : typ === 'JWT' ? HEADER_JWT : base64url(JSON.stringify({ alg: DUO_JWT_ALG, typ }));
  const input = `${header}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${macOf(key, input)}`;
}

/** signJwtSync() for callers that await (the signature is computed at once). */
export async function signJwt(key: HsKey, claims: JWTPayload, typ?: string): Promise<string> {
  return signJwtSync(key, claims, typ);
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
