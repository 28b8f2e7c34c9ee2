import { randomFillSync } from 'node:crypto';

/**
 * Random bytes come from a small pool filled by the CSPRNG and handed out once
 * each, as Node's own `randomUUID()` does: one call into the CSPRNG for about
 * ten logins (state, nonce and the two jtis each) instead of four per login.
 * A value larger than a quarter of the pool is drawn on its own.
 */
const POOL_BYTES = 1024;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/** `bytes` bytes (256 bits by default) from the CSPRNG, base64url: 43 characters for 32, URL-safe, no padding. */
export function randomToken(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes <= 0) throw new RangeError(`randomToken needs a positive whole number of bytes, not ${bytes}.`);
  if (bytes > POOL_BYTES / 4) return randomFillSync(Buffer.alloc(bytes)).toString('base64url');
  if (offset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const token = pool.toString('base64url', offset, offset + bytes);
  offset += bytes;
  return token;
}

export const generateState = (): string => randomToken(32);
export const generateNonce = (): string => randomToken(32);
/** Duo's SDKs use 36-character jtis; 27 random bytes give exactly 36 base64url characters. */
export const generateJti = (): string => randomToken(27);

/** The bounds Duo accepts for a state or nonce. */
export const MIN_STATE_LENGTH = 16;
export const MAX_STATE_LENGTH = 1024;
const URL_SAFE = /^[A-Za-z0-9._~-]+$/;

/** A state or nonce of Duo's length, in URL-safe characters only (a '+' would come back as a space). */
export function isWellFormedState(value: unknown): value is string {
  return typeof value === 'string' && value.length >= MIN_STATE_LENGTH && value.length <= MAX_STATE_LENGTH && URL_SAFE.test(value);
}
