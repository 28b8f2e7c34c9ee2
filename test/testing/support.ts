/**
 * What the emulator's tests share: one emulator per test file (started with a
 * logger, reset before each test), our DuoClient pointed at it, and the raw
 * requests of Duo's wire protocol (assertions, request JWTs, forms).
 */
import type { JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import { DuoClient, DuoError, type DuoClientOptions } from '../../src/protocol/index.js';
import { HsKey, signJwt } from '../../src/protocol/jwt.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { randomBytes } from 'node:crypto';
import type { DuoErrorCode } from '../../src/duo.errors.js';

export const REDIRECT = 'http://127.0.0.1:3000/duo/callback';
export const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
export const INVALID_GRANT = {
  error: 'invalid_grant',
  error_description: 'The provided authorization grant or refresh token is invalid, expired, revoked, does not match the redirection URI.',
};
export const now = (): number => Math.floor(Date.now() / 1000);

/** The test file's emulator (a live binding: set by useEmulator()'s beforeAll). */
export let emulator: DuoEmulator;
/** The lines its logger received. */
export const logLines: string[] = [];
const clients: DuoClient[] = [];

/** Starts the file's emulator before its tests, resets it before each, and closes the clients each test made. */
export function useEmulator(): void {
  beforeAll(async () => {
    emulator = await DuoEmulator.start({ logger: (line) => logLines.push(line) });
  });

  afterAll(async () => {
    await emulator.close();
  });

  beforeEach(() => {
    emulator.reset();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
}

export function client(overrides: Partial<DuoClientOptions> = {}, target: DuoEmulator = emulator): DuoClient {
  const created = new DuoClient({ ...target.clientOptions(REDIRECT), timeoutMs: 3000, ...overrides });
  clients.push(created);
  return created;
}

export async function expectDuoError(promise: Promise<unknown>, code: DuoErrorCode): Promise<DuoError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `expected DuoError ${code}`).toBeInstanceOf(DuoError);
  expect((error as DuoError).code).toBe(code);
  return error as DuoError;
}

/** A client assertion as Duo's SDKs sign it, with claims overridden or omitted. */
export async function assertion(
  path: '/oauth/v1/health_check' | '/oauth/v1/token',
  overrides: JWTPayload = {},
  omit: string[] = [],
  secret = emulator.clientSecret,
): Promise<string> {
  const t = now();
  const claims: JWTPayload = {
    iss: emulator.clientId,
    sub: emulator.clientId,
    aud: `${emulator.baseUrl}${path}`,
    jti: randomBytes(27).toString('base64url'),
    iat: t,
    exp: t + 300,
    ...overrides,
  };
  for (const name of omit) delete claims[name];
  return signJwt(new HsKey(secret), claims, 'JWT');
}

/** A compact JWT with any header, signed by `sign` (for algorithms our signJwt never uses). */
export function compactJwt(header: object, claims: JWTPayload, sign: (input: string) => Buffer): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(input).toString('base64url')}`;
}

export function postForm(path: string, form: Record<string, string> | string, target: DuoEmulator = emulator): Promise<Response> {
  return fetch(`${target.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: typeof form === 'string' ? form : new URLSearchParams(form).toString(),
    redirect: 'manual',
  });
}

export async function rawHealth(clientAssertion: string, clientId = emulator.clientId): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await postForm('/oauth/v1/health_check', { client_id: clientId, client_assertion: clientAssertion });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function rawToken(form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await postForm('/oauth/v1/token', form);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function tokenForm(code: string, overrides: Record<string, string> = {}): Promise<Record<string, string>> {
  return {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT,
    client_id: emulator.clientId,
    client_assertion_type: ASSERTION_TYPE,
    client_assertion: await assertion('/oauth/v1/token'),
    ...overrides,
  };
}

/** A request JWT as our client signs it, with claims overridden or omitted. */
export async function requestJwt(overrides: JWTPayload = {}, omit: string[] = [], secret = emulator.clientSecret): Promise<string> {
  const t = now();
  const claims: JWTPayload = {
    response_type: 'code',
    scope: 'openid',
    client_id: emulator.clientId,
    redirect_uri: REDIRECT,
    state: 'S'.repeat(43),
    duo_uname: 'alice',
    use_duo_code_attribute: true,
    iss: emulator.clientId,
    aud: emulator.baseUrl,
    iat: t,
    exp: t + 300,
    ...overrides,
  };
  for (const name of omit) delete claims[name];
  return signJwt(new HsKey(secret), claims);
}

export function authorizeUrl(request: string, extra: Record<string, string> = {}): string {
  const query = new URLSearchParams({ response_type: 'code', client_id: emulator.clientId, request, redirect_uri: REDIRECT, scope: 'openid', ...extra });
  return `${emulator.baseUrl}/oauth/v1/authorize?${query.toString()}`;
}

/** Starts a login with our client and lets the emulator approve it: the code, state and nonce. */
export async function approvedLogin(duo: DuoClient, username = 'alice'): Promise<{ code: string; state: string; nonce: string; location: URL }> {
  const start = await duo.startAuthorization(username);
  const location = new URL(await emulator.authorize(start.url));
  expect(location.searchParams.get('state')).toBe(start.state);
  const code = location.searchParams.get('duo_code');
  expect(code).toBeTruthy();
  return { code: code!, state: start.state, nonce: start.nonce, location };
}
