import { randomBytes } from 'node:crypto';

/** 32 bytes (256 bits) from the CSPRNG, base64url: 43 characters, URL-safe, no padding. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
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
