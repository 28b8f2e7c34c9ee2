import { randomBytes } from 'node:crypto';

/** 32 bytes (256 bits) from the CSPRNG, base64url: 43 characters, URL-safe, no padding. */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export const generateState = (): string => randomToken(32);
export const generateNonce = (): string => randomToken(32);
/** Duo's SDKs use 36-character jtis; 27 random bytes give exactly 36 base64url characters. */
export const generateJti = (): string => randomToken(27);
