import { inspect } from 'node:util';
import { SignJWT, UnsecuredJWT, decodeJwt, decodeProtectedHeader, generateKeyPair, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { DUO_JWT_ALG, HsKey, JwtVerifyError, epochSeconds, signJwt, verifyJwt, type JwtFailure } from '../../src/protocol/jwt.js';
import { CLIENT_SECRET, SECRET_BYTES, nowSeconds, signToken } from './helpers.js';

const key = new HsKey(CLIENT_SECRET);

async function failure(token: unknown, now?: number): Promise<JwtVerifyError> {
  try {
    await verifyJwt(key, token, 60, now);
  } catch (error) {
    expect(error).toBeInstanceOf(JwtVerifyError);
    const text = `${(error as Error).message} ${JSON.stringify(error)} ${inspect(error)}`;
    expect(text).not.toContain(CLIENT_SECRET);
    if (typeof token === 'string' && token.length > 20) expect(text).not.toContain(token);
    return error as JwtVerifyError;
  }
  throw new Error('verifyJwt accepted the token');
}

describe('HsKey', () => {
  it('never shows the secret', () => {
    expect(DUO_JWT_ALG).toBe('HS512');
    for (const text of [inspect(key), inspect(key, { showHidden: true, depth: 10 }), JSON.stringify(key), JSON.stringify({ key }), String(key)]) {
      expect(text).not.toContain(CLIENT_SECRET);
    }
    expect(JSON.stringify(key)).toBe('"[HsKey]"');
    expect(inspect(key)).toBe('[HsKey]');
    // The signing KeyObject and the CryptoKey are private fields: no property, no clone, no spread shows them.
    expect(Object.getOwnPropertyNames(key)).toEqual([]);
    expect(structuredClone(key)).toEqual({});
    expect({ ...key }).toEqual({});
  });

  it('is a non-extractable HMAC SHA-512 key', async () => {
    const cryptoKey = await key.key;
    expect(cryptoKey.extractable).toBe(false);
    expect(cryptoKey.algorithm).toMatchObject({ name: 'HMAC', hash: { name: 'SHA-512' } });
  });
});

describe('signJwt', () => {
  it('signs HS512 with the secret bytes, with typ only when asked', async () => {
    const plain = await signJwt(key, { a: 1 });
    expect(decodeProtectedHeader(plain)).toEqual({ alg: 'HS512' });
    const typed = await signJwt(key, { a: 1 }, 'JWT');
    expect(decodeProtectedHeader(typed)).toEqual({ alg: 'HS512', typ: 'JWT' });
    const { payload } = await jwtVerify(typed, SECRET_BYTES, { algorithms: ['HS512'] });
    expect(payload).toEqual({ a: 1 });
    await expect(jwtVerify(typed, new TextEncoder().encode(`${CLIENT_SECRET.slice(1)}x`), { algorithms: ['HS512'] })).rejects.toThrow();
  });
});

describe('verifyJwt', () => {
  it('accepts an HS512 token signed with the secret and returns its payload', async () => {
    const now = nowSeconds();
    const token = await signToken({ sub: 'alice', iat: now, exp: now + 60 });
    expect(await verifyJwt(key, token, 60)).toMatchObject({ sub: 'alice' });
    expect(epochSeconds()).toBeGreaterThanOrEqual(now);
  });

  it.each<[string, unknown, JwtFailure]>([
    ['undefined', undefined, 'malformed'],
    ['a number', 42, 'malformed'],
    ['an empty string', '', 'malformed'],
    ['a string over 16 KiB', `${'a'.repeat(16_385)}`, 'malformed'],
    ['not a JWT', 'not-a-jwt', 'malformed'],
    ['two parts', 'eyJhbGciOiJIUzUxMiJ9.e30', 'malformed'],
  ])('refuses %s as malformed', async (_name, token, expected) => {
    expect((await failure(token)).failure).toBe(expected);
  });

  it('refuses alg none, HS256, HS384, RS256 and a lower-case hs512 header as "algorithm"', async () => {
    const now = nowSeconds();
    const claims = { sub: 'alice', iat: now, exp: now + 60 };
    const none = new UnsecuredJWT(claims).encode();
    const hs256 = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(SECRET_BYTES);
    const hs384 = await new SignJWT(claims).setProtectedHeader({ alg: 'HS384' }).sign(SECRET_BYTES);
    const { privateKey } = await generateKeyPair('RS256');
    const rs256 = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    const hs512Body = (await signToken(claims)).split('.').slice(1).join('.');
    const lower = `${Buffer.from(JSON.stringify({ alg: 'hs512' })).toString('base64url')}.${hs512Body}`;
    const noAlg = `${Buffer.from(JSON.stringify({ typ: 'JWT' })).toString('base64url')}.${hs512Body}`;
    for (const token of [none, hs256, hs384, rs256, lower, noAlg]) {
      const error = await failure(token);
      expect(error.failure, decodeJwt(token).sub as string).toBe('algorithm');
      expect(error.message).toContain('HS512');
    }
  });

  it('refuses a wrong signature, a stripped signature and a tampered payload as "signature"', async () => {
    const now = nowSeconds();
    const good = await signToken({ sub: 'alice', iat: now, exp: now + 60 });
    const wrongSecret = await signToken({ sub: 'alice', iat: now, exp: now + 60 }, { secret: `${CLIENT_SECRET.slice(0, 39)}x` });
    const [header, , signature] = good.split('.');
    const tampered = `${header}.${Buffer.from(JSON.stringify({ sub: 'mallory', iat: now, exp: now + 60 })).toString('base64url')}.${signature}`;
    expect((await failure(wrongSecret)).failure).toBe('signature');
    expect((await failure(tampered)).failure).toBe('signature');
    expect((await failure(`${good.split('.').slice(0, 2).join('.')}.`)).failure).toBe('signature');
  });

  it('checks exp and nbf with the leeway, against the given clock', async () => {
    const now = nowSeconds();
    const expired = await signToken({ exp: now - 90 });
    expect((await failure(expired)).failure).toBe('expired');
    await expect(verifyJwt(key, await signToken({ exp: now - 30 }), 60)).resolves.toBeTruthy();
    const later = await signToken({ nbf: now + 90 });
    expect((await failure(later)).failure).toBe('not_yet_valid');
    await expect(verifyJwt(key, await signToken({ nbf: now + 30 }), 60)).resolves.toBeTruthy();
    // The `now` argument replaces the clock.
    const token = await signToken({ exp: now + 10 });
    await expect(verifyJwt(key, token, 0, now)).resolves.toBeTruthy();
    expect((await failure(token, now + 1000)).failure).toBe('expired');
  });

  it('refuses a non-numeric time claim as "claim"', async () => {
    const error = await failure(await signToken({ iat: 'yesterday' as unknown as number }));
    expect(error.failure).toBe('claim');
    expect(error.message).toContain('iat');
  });
});
