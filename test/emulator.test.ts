/**
 * The Duo emulator (nestjs-duo/testing): spoken to over real HTTP, raw and
 * through our own DuoClient, for every endpoint, check and failure it offers.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { inspect } from 'node:util';
import type { JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoClient, DuoError, type DuoClientOptions, type DuoErrorCode } from '../src/protocol/index.js';
import { HsKey, signJwt } from '../src/protocol/jwt.js';
import { DuoEmulator, type DuoEmulatorFailure } from '../src/testing/index.js';
import { selfSignedCertificate } from './support/tls.js';

const REDIRECT = 'http://127.0.0.1:3000/duo/callback';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const INVALID_GRANT = {
  error: 'invalid_grant',
  error_description: 'The provided authorization grant or refresh token is invalid, expired, revoked, does not match the redirection URI.',
};
const now = (): number => Math.floor(Date.now() / 1000);

let emulator: DuoEmulator;
const logLines: string[] = [];
const clients: DuoClient[] = [];

function client(overrides: Partial<DuoClientOptions> = {}, target: DuoEmulator = emulator): DuoClient {
  const created = new DuoClient({ ...target.clientOptions(REDIRECT), timeoutMs: 3000, ...overrides });
  clients.push(created);
  return created;
}

async function expectDuoError(promise: Promise<unknown>, code: DuoErrorCode): Promise<DuoError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `expected DuoError ${code}`).toBeInstanceOf(DuoError);
  expect((error as DuoError).code).toBe(code);
  return error as DuoError;
}

/** A client assertion as Duo's SDKs sign it, with claims overridden or omitted. */
async function assertion(
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
function compactJwt(header: object, claims: JWTPayload, sign: (input: string) => Buffer): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${sign(input).toString('base64url')}`;
}

function postForm(path: string, form: Record<string, string> | string, target: DuoEmulator = emulator): Promise<Response> {
  return fetch(`${target.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: typeof form === 'string' ? form : new URLSearchParams(form).toString(),
    redirect: 'manual',
  });
}

async function rawHealth(clientAssertion: string, clientId = emulator.clientId): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await postForm('/oauth/v1/health_check', { client_id: clientId, client_assertion: clientAssertion });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function rawToken(form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await postForm('/oauth/v1/token', form);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function tokenForm(code: string, overrides: Record<string, string> = {}): Promise<Record<string, string>> {
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
async function requestJwt(overrides: JWTPayload = {}, omit: string[] = [], secret = emulator.clientSecret): Promise<string> {
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

function authorizeUrl(request: string, extra: Record<string, string> = {}): string {
  const query = new URLSearchParams({ response_type: 'code', client_id: emulator.clientId, request, redirect_uri: REDIRECT, scope: 'openid', ...extra });
  return `${emulator.baseUrl}/oauth/v1/authorize?${query.toString()}`;
}

/** Starts a login with our client and lets the emulator approve it: the code, state and nonce. */
async function approvedLogin(duo: DuoClient, username = 'alice'): Promise<{ code: string; state: string; nonce: string; location: URL }> {
  const start = await duo.startAuthorization(username);
  const location = new URL(await emulator.authorize(start.url));
  expect(location.searchParams.get('state')).toBe(start.state);
  const code = location.searchParams.get('duo_code');
  expect(code).toBeTruthy();
  return { code: code!, state: start.state, nonce: start.nonce, location };
}

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

describe('DuoEmulator basics', () => {
  it('listens on 127.0.0.1 with Duo-shaped credentials and hands out client options', () => {
    expect(emulator.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(emulator.clientId).toBe('DIEMULATOR0000000001');
    expect(emulator.clientSecret).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(emulator.apiHost).toMatch(/^api-[a-z0-9-]+\.duosecurity\.com$/);
    expect(emulator.clientOptions(REDIRECT)).toEqual({
      clientId: emulator.clientId,
      clientSecret: emulator.clientSecret,
      apiBaseUrl: emulator.baseUrl,
      redirectUri: REDIRECT,
    });
  });

  it('makes a fresh secret per instance and takes given credentials', async () => {
    const other = await DuoEmulator.start({ clientId: 'DIOTHER0000000000002', clientSecret: 'x'.repeat(40) });
    const third = await DuoEmulator.start();
    try {
      expect(other.clientId).toBe('DIOTHER0000000000002');
      expect(other.clientSecret).toBe('x'.repeat(40));
      expect(third.clientSecret).not.toBe(emulator.clientSecret);
      expect(third.baseUrl).not.toBe(emulator.baseUrl);
    } finally {
      await Promise.all([other.close(), third.close()]);
    }
  });

  it('never shows its secret in JSON or inspect output', () => {
    expect(JSON.stringify(emulator)).not.toContain(emulator.clientSecret);
    expect(inspect(emulator, { depth: 5 })).not.toContain(emulator.clientSecret);
    expect(JSON.stringify(emulator)).toContain(emulator.baseUrl);
  });

  it('refuses unknown modes, failures and bad options', async () => {
    expect(() => emulator.setMode('maybe' as never)).toThrow(TypeError);
    expect(() => emulator.setFailure('explode' as never)).toThrow(TypeError);
    expect(() => emulator.setFailure('http_500', { endpoints: ['userinfo' as never] })).toThrow(TypeError);
    expect(() => emulator.setClockOffset(Number.NaN)).toThrow(TypeError);
    await expect(DuoEmulator.start({ codeTtlSeconds: 0 })).rejects.toThrow(TypeError);
    await expect(DuoEmulator.start({ port: 70000 })).rejects.toThrow(TypeError);
  });
});

describe('health check', () => {
  it('answers stat OK with Duo’s timestamp to a valid assertion', async () => {
    const result = await client().healthCheck();
    expect(Math.abs(result.timestamp - now())).toBeLessThanOrEqual(2);
    expect(Math.abs(result.clockOffsetSeconds)).toBeLessThan(2);
    expect(result.clockSkewWarning).toBeUndefined();
    expect(emulator.stats.healthChecks).toBe(1);

    const raw = await rawHealth(await assertion('/oauth/v1/health_check'));
    expect(raw.status).toBe(200);
    expect(raw.body).toEqual({ stat: 'OK', response: { timestamp: expect.any(Number) } });
  });

  it('health_fail: HTTP 200 with stat FAIL, which the client reports as Duo unavailable', async () => {
    emulator.setFailure('health_fail');
    const raw = await rawHealth(await assertion('/oauth/v1/health_check'));
    expect(raw.status).toBe(200);
    expect(raw.body).toMatchObject({ stat: 'FAIL', code: expect.any(Number), message: expect.any(String), timestamp: expect.any(Number) });
    await expectDuoError(client().healthCheck(), 'duo_unavailable');
    // health_fail is about the health check only: a login still goes through.
    const duo = client();
    const login = await approvedLogin(duo);
    await expect(duo.exchangeAuthorizationCode(login.code, 'alice', login.nonce)).resolves.toBeTruthy();
  });

  it('http_500: every endpoint answers 500 (by default)', async () => {
    emulator.setFailure('http_500');
    await expectDuoError(client().healthCheck(), 'duo_unavailable');
    expect((await postForm('/oauth/v1/token', await tokenForm('x'))).status).toBe(500);
    const auth = await fetch(authorizeUrl(await requestJwt()), { redirect: 'manual' });
    expect(auth.status).toBe(500);
    expect(auth.headers.get('location')).toBeNull();
  });

  it('rate_limited: HTTP 429 with the Retry-After given, on the chosen endpoint only; our client reports duo_rate_limited', async () => {
    emulator.setFailure('rate_limited', { endpoints: ['token'], retryAfter: 30 });
    // The health check is not rate-limited, so a login starts and is approved.
    await expect(client().healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    const duo = client();
    const login = await approvedLogin(duo);
    const raw = await postForm('/oauth/v1/token', await tokenForm('any-code-0123456789'));
    expect(raw.status).toBe(429);
    expect(raw.headers.get('retry-after')).toBe('30');
    expect(await raw.json()).toMatchObject({ stat: 'FAIL', code: 42901, message: 'Too Many Requests' });
    const error = await expectDuoError(duo.exchangeAuthorizationCode(login.code, 'alice', login.nonce), 'duo_rate_limited');
    expect(error.retryAfterSeconds).toBe(30);
    expect(emulator.stats.tokenExchangesOk).toBe(0);
    // Rate limiting refuses the call before the code is looked at: the code still works afterwards.
    emulator.setFailure('none');
    await expect(duo.exchangeAuthorizationCode(login.code, 'alice', login.nonce)).resolves.toMatchObject({ preferred_username: 'alice' });
  });

  it('rate_limited: by default every endpoint, without Retry-After; an HTTP date is sent verbatim', async () => {
    emulator.setFailure('rate_limited');
    const health = await expectDuoError(client().healthCheck(), 'duo_rate_limited');
    expect(health.retryAfterSeconds).toBeUndefined();
    const auth = await fetch(authorizeUrl(await requestJwt()), { redirect: 'manual' });
    expect(auth.status).toBe(429);
    expect(auth.headers.get('location')).toBeNull();
    expect(auth.headers.get('retry-after')).toBeNull();
    expect((await postForm('/oauth/v1/token', await tokenForm('x'))).status).toBe(429);
    const date = new Date(Date.now() + 120_000).toUTCString();
    emulator.setFailure('rate_limited', { endpoints: ['health'], retryAfter: date });
    const raw = await postForm('/oauth/v1/health_check', { client_id: emulator.clientId, client_assertion: await assertion('/oauth/v1/health_check') });
    expect(raw.headers.get('retry-after')).toBe(date);
    const error = await expectDuoError(client().healthCheck(), 'duo_rate_limited');
    expect(error.retryAfterSeconds).toBeGreaterThan(100);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(120);
    // reset() clears it.
    emulator.reset();
    await expect(client().healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
  });

  it('refuses a retryAfter that is not a whole number of seconds or a printable header value', () => {
    for (const retryAfter of [0, 30, 86_400, 'Thu, 15 Jan 2026 12:01:30 GMT', 'soon']) {
      expect(() => emulator.setFailure('rate_limited', { retryAfter }), String(retryAfter)).not.toThrow();
    }
    for (const retryAfter of [-1, 1.5, Number.NaN, '', 'a\r\nset-cookie: x=1', 'x'.repeat(300)]) {
      expect(() => emulator.setFailure('rate_limited', { retryAfter: retryAfter as never }), String(retryAfter)).toThrow(TypeError);
    }
  });

  it('a failure can be limited to some endpoints', async () => {
    emulator.setFailure('http_500', { endpoints: ['token'] });
    await expect(client().healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    expect((await postForm('/oauth/v1/token', await tokenForm('x'))).status).toBe(500);
  });

  it('malformed: HTTP 200 with a body that is not JSON', async () => {
    emulator.setFailure('malformed');
    const res = await postForm('/oauth/v1/health_check', { client_id: emulator.clientId, client_assertion: await assertion('/oauth/v1/health_check') });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.length).toBeGreaterThan(0);
    expect(() => JSON.parse(text)).toThrow();
    await expectDuoError(client().healthCheck(), 'duo_upstream_invalid');
  });

  it('no_answer: accepts the connection and never answers, so the client times out', async () => {
    emulator.setFailure('no_answer');
    const started = Date.now();
    await expectDuoError(client({ timeoutMs: 300 }).healthCheck(), 'duo_timeout');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(emulator.stats.healthChecks).toBe(1);
  });

  it('slow: answers normally after slowMs', async () => {
    emulator.setFailure('slow', { slowMs: 400 });
    const started = Date.now();
    await expect(client().healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(380);
    emulator.setFailure('slow', { slowMs: 800 });
    await expectDuoError(client({ timeoutMs: 300 }).healthCheck(), 'duo_timeout');
  });

  it('a clock offset shows in the timestamp, clockOffsetSeconds and clockSkewWarning', async () => {
    emulator.setClockOffset(120);
    const ahead = await client().healthCheck();
    expect(ahead.clockOffsetSeconds).toBeGreaterThan(118);
    expect(ahead.clockOffsetSeconds).toBeLessThan(122);
    expect(ahead.clockSkewWarning).toMatch(/behind/);
    emulator.setClockOffset(-120);
    const behind = await client().healthCheck();
    expect(behind.clockOffsetSeconds).toBeLessThan(-118);
    expect(behind.clockSkewWarning).toMatch(/ahead/);
  });

  it('checks assertions against Duo’s clock: far ahead, the assertion has expired for Duo', async () => {
    emulator.setClockOffset(400);
    await expectDuoError(client().healthCheck(), 'duo_invalid_client');
  });

  it('a wrong client secret is invalid_client, with Duo’s exact FAIL answer', async () => {
    await expectDuoError(client({ clientSecret: 'y'.repeat(40) }).healthCheck(), 'duo_invalid_client');
    const raw = await rawHealth(await assertion('/oauth/v1/health_check', {}, [], 'y'.repeat(40)));
    expect(raw.status).toBe(400);
    expect(raw.body).toEqual({
      stat: 'FAIL',
      code: 40002,
      message: 'invalid_client',
      message_detail: 'The provided client_assertion was invalid.',
      timestamp: expect.any(Number),
    });
  });
});

describe('client assertion checks', () => {
  const t = now();
  const cases: Array<[string, () => Promise<{ assertion: string; clientId?: string }>]> = [
    ['signed with another secret', async () => ({ assertion: await assertion('/oauth/v1/health_check', {}, [], 'z'.repeat(40)) })],
    [
      'HS256 instead of HS512',
      async () => ({
        assertion: compactJwt(
          { alg: 'HS256', typ: 'JWT' },
          { iss: emulator.clientId, sub: emulator.clientId, aud: `${emulator.baseUrl}/oauth/v1/health_check`, jti: randomBytes(27).toString('base64url'), exp: t + 300 },
          (input) => createHmac('sha256', emulator.clientSecret).update(input).digest(),
        ),
      }),
    ],
    [
      'alg none',
      async () => ({
        assertion: compactJwt(
          { alg: 'none' },
          { iss: emulator.clientId, sub: emulator.clientId, aud: `${emulator.baseUrl}/oauth/v1/health_check`, jti: randomBytes(27).toString('base64url'), exp: t + 300 },
          () => Buffer.alloc(0),
        ),
      }),
    ],
    ['wrong iss', async () => ({ assertion: await assertion('/oauth/v1/health_check', { iss: 'DIOTHER0000000000002' }) })],
    ['wrong sub', async () => ({ assertion: await assertion('/oauth/v1/health_check', { sub: 'DIOTHER0000000000002' }) })],
    ['aud of the token endpoint', async () => ({ assertion: await assertion('/oauth/v1/token') })],
    ['aud = base URL only', async () => ({ assertion: await assertion('/oauth/v1/health_check', { aud: emulator.baseUrl }) })],
    ['no exp', async () => ({ assertion: await assertion('/oauth/v1/health_check', {}, ['exp']) })],
    ['expired', async () => ({ assertion: await assertion('/oauth/v1/health_check', { iat: now() - 400, exp: now() - 100 }) })],
    ['no jti', async () => ({ assertion: await assertion('/oauth/v1/health_check', {}, ['jti']) })],
    ['form client_id differs', async () => ({ assertion: await assertion('/oauth/v1/health_check'), clientId: 'DIOTHER0000000000002' })],
    ['not a JWT', async () => ({ assertion: 'not.a.jwt' })],
  ];

  it.each(cases)('refuses an assertion %s with 400 invalid_client', async (_name, make) => {
    const made = await make();
    const raw = await rawHealth(made.assertion, made.clientId);
    expect(raw.status).toBe(400);
    expect(raw.body).toMatchObject({ stat: 'FAIL', code: 40002, message: 'invalid_client' });
  });

  it('accepts an assertion once: the same jti again is refused (replay)', async () => {
    const once = await assertion('/oauth/v1/health_check');
    expect((await rawHealth(once)).status).toBe(200);
    const again = await rawHealth(once);
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ code: 40002, message: 'invalid_client' });
    // A new jti with otherwise equal claims passes.
    expect((await rawHealth(await assertion('/oauth/v1/health_check'))).status).toBe(200);
  });

  it('refuses a replayed token-call assertion too', async () => {
    const once = await assertion('/oauth/v1/token');
    const first = await rawToken(await tokenForm('no-such-code', { client_assertion: once }));
    expect(first.body).toEqual(INVALID_GRANT);
    const second = await rawToken(await tokenForm('no-such-code', { client_assertion: once }));
    expect(second.status).toBe(400);
    expect(second.body).toEqual({ error: 'invalid_client', error_description: 'The provided client_assertion was invalid.' });
  });

  it('a missing client_assertion is a 400 FAIL', async () => {
    const res = await postForm('/oauth/v1/health_check', { client_id: emulator.clientId });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ stat: 'FAIL' });
  });
});

describe('authorize', () => {
  it('approve: 302 to the redirect URI with a fresh duo_code and the state', async () => {
    const duo = client();
    const start = await duo.startAuthorization('alice');
    const res = await fetch(start.url, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(location.searchParams.get('state')).toBe(start.state);
    expect(location.searchParams.get('duo_code')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const again = new URL(await emulator.authorize(start.url));
    expect(again.searchParams.get('duo_code')).not.toBe(location.searchParams.get('duo_code'));
    expect(emulator.stats).toMatchObject({ authorizations: 2, codesIssued: 2 });
  });

  it('sends "code" instead of "duo_code" when use_duo_code_attribute is false', async () => {
    const location = new URL(await emulator.authorize(authorizeUrl(await requestJwt({ use_duo_code_attribute: false }))));
    expect(location.searchParams.get('code')).toBeTruthy();
    expect(location.searchParams.get('duo_code')).toBeNull();
  });

  it('deny: 302 to the redirect URI with error=access_denied and the state, no code', async () => {
    emulator.setMode('deny');
    const start = await client().startAuthorization('alice');
    const location = new URL(await emulator.authorize(start.url));
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('error_description')).toBeTruthy();
    expect(location.searchParams.get('state')).toBe(start.state);
    expect(location.searchParams.get('duo_code')).toBeNull();
    expect(emulator.stats.codesIssued).toBe(0);
  });

  it('remembers the optional parameters of the request', async () => {
    const duo = client();
    const url = await duo.createAuthUrl('alice', 'T'.repeat(32), {
      nonce: 'N'.repeat(32),
      destAppName: 'Payroll',
      displayUsername: 'Alice A.',
      maxAge: 0,
      promptLogin: true,
    });
    await emulator.authorize(url);
    expect(emulator.lastAuthorizeRequest).toEqual({
      username: 'alice',
      redirectUri: REDIRECT,
      useDuoCodeAttribute: true,
      nonce: 'N'.repeat(32),
      destAppName: 'Payroll',
      displayUsername: 'Alice A.',
      maxAge: 0,
      prompt: 'login',
    });
  });

  it.each<[string, { jwt?: string; query?: string }, string]>([
    ['in the query alone (as Python and Java send it)', { query: 'Q'.repeat(32) }, 'Q'.repeat(32)],
    ['in the request JWT alone (as Node and PHP send it)', { jwt: 'J'.repeat(32) }, 'J'.repeat(32)],
    ['in both, the same value (as nestjs-duo sends it)', { jwt: 'B'.repeat(32), query: 'B'.repeat(32) }, 'B'.repeat(32)],
  ])('a nonce %s is taken and echoed in the id_token', async (_name, where, echoed) => {
    const duo = client();
    const request = await requestJwt(where.jwt === undefined ? {} : { nonce: where.jwt });
    const location = new URL(await emulator.authorize(authorizeUrl(request, where.query === undefined ? {} : { nonce: where.query })));
    expect(emulator.lastAuthorizeRequest?.nonce).toBe(echoed);
    const claims = await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'alice', echoed);
    expect(claims.nonce).toBe(echoed);
  });

  it('a query nonce that differs from the request JWT\'s is a bad request: 400, no code', async () => {
    const res = await fetch(authorizeUrl(await requestJwt({ nonce: 'J'.repeat(32) }), { nonce: 'Q'.repeat(32) }), { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toMatch(/nonce differs between the query and the request JWT/);
    expect(emulator.stats.codesIssued).toBe(0);
  });

  const bad: Array<[string, () => Promise<string>]> = [
    ['request signed with another secret', async () => authorizeUrl(await requestJwt({}, [], 'z'.repeat(40)))],
    ['request with alg none', async () => authorizeUrl(compactJwt({ alg: 'none' }, { client_id: emulator.clientId }, () => Buffer.alloc(0)))],
    ['request aud wrong', async () => authorizeUrl(await requestJwt({ aud: 'https://api-other.duosecurity.com' }))],
    ['request iss wrong', async () => authorizeUrl(await requestJwt({ iss: 'DIOTHER0000000000002' }))],
    ['request expired', async () => authorizeUrl(await requestJwt({ iat: now() - 600, exp: now() - 300 }))],
    ['request without exp', async () => authorizeUrl(await requestJwt({}, ['exp']))],
    ['state too short', async () => authorizeUrl(await requestJwt({ state: 'short' }))],
    ['state too long', async () => authorizeUrl(await requestJwt({ state: 'L'.repeat(1025) }))],
    ['no duo_uname', async () => authorizeUrl(await requestJwt({}, ['duo_uname']))],
    ['response_type token', async () => authorizeUrl(await requestJwt({ response_type: 'token' }))],
    ['scope not openid', async () => authorizeUrl(await requestJwt({ scope: 'profile' }))],
    ['client_id claim wrong', async () => authorizeUrl(await requestJwt({ client_id: 'DIOTHER0000000000002' }))],
    ['redirect_uri differs from the query', async () => authorizeUrl(await requestJwt({ redirect_uri: 'https://evil.example.com/cb' }))],
    ['use_duo_code_attribute not a boolean', async () => authorizeUrl(await requestJwt({ use_duo_code_attribute: 'yes' }))],
    ['prompt other than login', async () => authorizeUrl(await requestJwt({ prompt: 'none' }))],
    ['unknown client_id in the query', async () => authorizeUrl(await requestJwt(), { client_id: 'DIOTHER0000000000002' })],
    ['response_type token in the query', async () => authorizeUrl(await requestJwt(), { response_type: 'token' })],
    ['no request', async () => `${emulator.baseUrl}/oauth/v1/authorize?response_type=code&client_id=${emulator.clientId}`],
    ['repeated parameters', async () => `${authorizeUrl(await requestJwt())}&redirect_uri=${encodeURIComponent(REDIRECT)}`],
  ];

  it.each(bad)('refuses %s with a 400 page and no redirect', async (_name, make) => {
    const res = await fetch(await make(), { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toContain('Duo emulator');
    expect(emulator.stats.codesIssued).toBe(0);
  });

  it('authorize() throws on a refused request and on a URL of another server', async () => {
    await expect(emulator.authorize(authorizeUrl(await requestJwt({ state: 'short' })))).rejects.toThrow(/HTTP 400.*state/);
    await expect(emulator.authorize('https://api-1234.duosecurity.com/oauth/v1/authorize?x=1')).rejects.toThrow(/not this emulator/);
  });
});

describe('prompt mode', () => {
  it('shows a labelled, escaped page with Approve and Deny; the decision redirects with a code', async () => {
    emulator.setMode('prompt');
    const duo = client();
    const state = 'P'.repeat(40);
    const url = await duo.createAuthUrl('alice', state, { nonce: 'n'.repeat(32), displayUsername: '<b>Alice</b> & "co"', destAppName: "Bob's <App>" });
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const page = await res.text();
    expect(page).toContain('Duo emulator — not real Duo');
    expect(page).toMatch(/<button[^>]*value="approve"[^>]*>Approve<\/button>/);
    expect(page).toMatch(/<button[^>]*value="deny"[^>]*>Deny<\/button>/);
    expect(page).toContain('&lt;b&gt;Alice&lt;/b&gt; &amp; &quot;co&quot;');
    expect(page).toContain('Bob&#39;s &lt;App&gt;');
    expect(page).not.toContain('<b>Alice</b>');
    expect(page).not.toContain(state);
    expect(page).toContain('action="/emulator/decision"');
    expect(emulator.stats.codesIssued).toBe(0);

    const txn = /name="txn" value="([^"]+)"/.exec(page)![1]!;
    const decided = await postForm('/emulator/decision', { txn, decision: 'approve' });
    expect([302, 303]).toContain(decided.status);
    const location = new URL(decided.headers.get('location')!);
    expect(location.searchParams.get('state')).toBe(state);
    const claims = await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'alice', 'n'.repeat(32));
    expect(claims.auth_result.status).toBe('allow');

    // The transaction is single-use.
    const replay = await postForm('/emulator/decision', { txn, decision: 'approve' });
    expect(replay.status).toBe(400);
    expect(replay.headers.get('location')).toBeNull();
    expect((await postForm('/emulator/decision', { txn: 'forged', decision: 'approve' })).status).toBe(400);
  });

  it('authorize() posts the decision: deny gives access_denied, no decision is an error', async () => {
    emulator.setMode('prompt');
    const start = await client().startAuthorization('alice');
    const denied = new URL(await emulator.authorize(start.url, 'deny'));
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('state')).toBe(start.state);
    const approved = new URL(await emulator.authorize(start.url, 'approve'));
    expect(approved.searchParams.get('duo_code')).toBeTruthy();
    await expect(emulator.authorize(start.url)).rejects.toThrow(/decision/);
  });
});

describe('token exchange', () => {
  it('a full flow returns verified claims: allow, the nonce, the user, Duo’s context', async () => {
    const duo = client();
    const { code, nonce } = await approvedLogin(duo);
    const claims = await duo.exchangeAuthorizationCode(code, 'alice', nonce);
    expect(claims.auth_result).toEqual({ result: 'allow', status: 'allow', status_msg: 'Login Successful' });
    expect(claims.nonce).toBe(nonce);
    expect(claims.preferred_username).toBe('alice');
    expect(claims.sub).toBe('alice');
    expect(claims.iss).toBe(`${emulator.baseUrl}/oauth/v1/token`);
    expect(claims.aud).toBe(emulator.clientId);
    expect(claims.exp - claims.iat).toBe(3600);
    expect(Math.abs(claims.iat - now())).toBeLessThanOrEqual(2);
    expect(claims.auth_time).toBeLessThanOrEqual(claims.iat);
    expect(claims.amr).toContain('mfa');
    expect(claims.auth_context).toMatchObject({
      txid: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
      timestamp: claims.auth_time,
      factor: 'duo_push',
      reason: 'user_approved',
      result: 'success',
      user: { name: 'alice', key: expect.stringMatching(/^DU[A-Z0-9]{18}$/) },
      application: { name: expect.any(String), key: emulator.clientId },
      auth_device: { ip: expect.any(String), name: expect.any(String), location: expect.any(Object) },
      access_device: { ip: '127.0.0.1', browser: 'Chrome', os: 'Linux', location: expect.any(Object) },
    });
    expect(emulator.stats).toEqual({ healthChecks: 0, authorizations: 1, tokenExchanges: 1, tokenExchangesOk: 1, codesIssued: 1 });
  });

  it('answers Duo’s four keys, and omits the nonce when none was sent', async () => {
    const location = new URL(await emulator.authorize(authorizeUrl(await requestJwt())));
    const raw = await rawToken(await tokenForm(location.searchParams.get('duo_code')!));
    expect(raw.status).toBe(200);
    expect(Object.keys(raw.body).sort()).toEqual(['access_token', 'expires_in', 'id_token', 'token_type']);
    expect(raw.body).toMatchObject({ expires_in: 3600, token_type: 'Bearer', access_token: expect.any(String) });
    const [header, payload] = String(raw.body.id_token)
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>);
    expect(header!.alg).toBe('HS512');
    expect(payload).not.toHaveProperty('nonce');
  });

  it('a code is single-use: the second exchange is invalid_grant (code_invalid)', async () => {
    const duo = client();
    const { code, nonce } = await approvedLogin(duo);
    await duo.exchangeAuthorizationCode(code, 'alice', nonce);
    await expectDuoError(duo.exchangeAuthorizationCode(code, 'alice', nonce), 'code_invalid');
    const raw = await rawToken(await tokenForm(code));
    expect(raw.status).toBe(400);
    expect(raw.body).toEqual(INVALID_GRANT);
    expect(emulator.stats).toMatchObject({ tokenExchanges: 3, tokenExchangesOk: 1 });
  });

  it('a redirect_uri other than the authorized one is invalid_grant, and it burns the code', async () => {
    const duo = client();
    const { code, nonce } = await approvedLogin(duo);
    const elsewhere = client({ redirectUri: 'http://127.0.0.1:3000/other/callback' });
    await expectDuoError(elsewhere.exchangeAuthorizationCode(code, 'alice', nonce), 'code_invalid');
    await expectDuoError(duo.exchangeAuthorizationCode(code, 'alice', nonce), 'code_invalid');
  });

  it('an unknown code is invalid_grant', async () => {
    await expectDuoError(client().exchangeAuthorizationCode('no-such-code-1234', 'alice', 'n0nce-0123456789abcdef'), 'code_invalid');
  });

  it('codes expire after codeTtlSeconds', async () => {
    const short = await DuoEmulator.start({ codeTtlSeconds: 0.2 });
    try {
      const duo = client({}, short);
      const start = await duo.startAuthorization('alice');
      const code = new URL(await short.authorize(start.url)).searchParams.get('duo_code')!;
      await new Promise((resolve) => setTimeout(resolve, 300));
      await expectDuoError(duo.exchangeAuthorizationCode(code, 'alice', start.nonce), 'code_invalid');
      const fresh = new URL(await short.authorize(start.url)).searchParams.get('duo_code')!;
      await expect(duo.exchangeAuthorizationCode(fresh, 'alice', start.nonce)).resolves.toBeTruthy();
    } finally {
      await short.close();
    }
  });

  it('a wrong client secret is invalid_client (duo_invalid_client), and does not burn the code', async () => {
    const duo = client();
    const { code, nonce } = await approvedLogin(duo);
    await expectDuoError(client({ clientSecret: 'y'.repeat(40) }).exchangeAuthorizationCode(code, 'alice', nonce), 'duo_invalid_client');
    await expect(duo.exchangeAuthorizationCode(code, 'alice', nonce)).resolves.toBeTruthy();
  });

  it('takes a token call without client_id (optional at Duo), but refuses another client_id', async () => {
    const first = new URL(await emulator.authorize(authorizeUrl(await requestJwt())));
    const form = await tokenForm(first.searchParams.get('duo_code')!);
    delete form.client_id;
    expect((await rawToken(form)).status).toBe(200);
    const second = new URL(await emulator.authorize(authorizeUrl(await requestJwt())));
    const other = await rawToken(await tokenForm(second.searchParams.get('duo_code')!, { client_id: 'DIOTHER0000000000002' }));
    expect(other).toMatchObject({ status: 400, body: { error: 'invalid_client' } });
  });

  it('checks grant_type, the assertion type and the required fields', async () => {
    expect(await rawToken(await tokenForm('c', { grant_type: 'refresh_token' }))).toMatchObject({ status: 400, body: { error: 'unsupported_grant_type' } });
    expect(await rawToken(await tokenForm('c', { grant_type: '' }))).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await rawToken(await tokenForm('c', { client_assertion_type: 'urn:other' }))).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await rawToken(await tokenForm('', {}))).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await rawToken(await tokenForm('c', { redirect_uri: '' }))).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
  });

  it('a clock offset shows in the id_token times; beyond the leeway our client refuses the token', async () => {
    emulator.setClockOffset(45);
    const duo = client();
    const first = await approvedLogin(duo);
    const claims = await duo.exchangeAuthorizationCode(first.code, 'alice', first.nonce);
    expect(claims.iat - now()).toBeGreaterThanOrEqual(43);
    expect(claims.iat - now()).toBeLessThanOrEqual(46);
    expect(claims.auth_time! - now()).toBeGreaterThanOrEqual(43);

    emulator.setClockOffset(150);
    const second = await approvedLogin(duo);
    const error = await expectDuoError(duo.exchangeAuthorizationCode(second.code, 'alice', second.nonce), 'token_invalid');
    expect(error.message).toMatch(/clock/);
  });

  const defects: Array<[DuoEmulatorFailure, DuoErrorCode]> = [
    ['token_bad_signature', 'token_invalid'],
    ['token_alg_none', 'token_invalid'],
    ['token_alg_hs256', 'token_invalid'],
    ['token_wrong_iss', 'token_invalid'],
    ['token_wrong_aud', 'token_invalid'],
    ['token_multi_aud', 'token_invalid'],
    ['token_expired', 'token_invalid'],
    ['token_iat_future', 'token_invalid'],
    ['token_nbf_future', 'token_invalid'],
    ['token_no_exp', 'token_invalid'],
    ['token_no_iat', 'token_invalid'],
    ['token_wrong_username', 'username_mismatch'],
    ['token_wrong_nonce', 'nonce_mismatch'],
    ['token_no_nonce', 'nonce_mismatch'],
    ['token_status_deny', 'second_factor_denied'],
    ['token_response_not_object', 'duo_upstream_invalid'],
    ['token_response_no_id_token', 'duo_upstream_invalid'],
    ['token_type_not_bearer', 'duo_upstream_invalid'],
  ];

  it.each(defects)('%s makes our client throw %s (and the same flow passes without it)', async (failure, code) => {
    const duo = client();
    const good = await approvedLogin(duo);
    await expect(duo.exchangeAuthorizationCode(good.code, 'alice', good.nonce)).resolves.toBeTruthy();
    emulator.setFailure(failure);
    const login = await approvedLogin(duo);
    await expectDuoError(duo.exchangeAuthorizationCode(login.code, 'alice', login.nonce), code);
    expect(emulator.stats.tokenExchangesOk).toBe(2);
  });

  it('the token defects change exactly the claim they name', async () => {
    const decode = async (failure: DuoEmulatorFailure): Promise<{ header: Record<string, unknown>; claims: Record<string, unknown> }> => {
      emulator.setFailure(failure);
      const location = new URL(await emulator.authorize(authorizeUrl(await requestJwt({ nonce: 'm'.repeat(32) }))));
      const raw = await rawToken(await tokenForm(location.searchParams.get('duo_code')!));
      const [header, claims] = String(raw.body.id_token)
        .split('.')
        .slice(0, 2)
        .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>);
      return { header: header!, claims: claims! };
    };
    const t = now();
    expect((await decode('token_alg_none')).header.alg).toBe('none');
    expect((await decode('token_alg_hs256')).header.alg).toBe('HS256');
    expect((await decode('token_multi_aud')).claims.aud).toEqual([emulator.clientId, expect.any(String)]);
    expect((await decode('token_expired')).claims.exp).toBeLessThan(t - 60);
    expect((await decode('token_iat_future')).claims.iat).toBeGreaterThanOrEqual(t + 3600);
    expect((await decode('token_nbf_future')).claims.nbf).toBeGreaterThanOrEqual(t + 3600);
    expect((await decode('token_no_exp')).claims).not.toHaveProperty('exp');
    expect((await decode('token_no_iat')).claims).not.toHaveProperty('iat');
    expect((await decode('token_no_nonce')).claims).not.toHaveProperty('nonce');
    const wrongUser = (await decode('token_wrong_username')).claims;
    expect(wrongUser.preferred_username).not.toBe('alice');
    expect(wrongUser.sub).toBe('alice');
    const none = await decode('none');
    expect(none.claims.nonce).toBe('m'.repeat(32));
    expect(none.header.alg).toBe('HS512');
  });
});

describe('HTTP behaviour', () => {
  it('unknown paths are 404 JSON, wrong methods 405 with Allow', async () => {
    const missing = await fetch(`${emulator.baseUrl}/oauth/v1/userinfo`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ stat: 'FAIL' });
    const wrong = await fetch(`${emulator.baseUrl}/oauth/v1/token`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    const wrongAuthorize = await postForm('/oauth/v1/authorize', 'a=b');
    expect(wrongAuthorize.status).toBe(405);
    expect(wrongAuthorize.headers.get('allow')).toBe('GET');
  });

  it('refuses bodies over 16 KiB with 413', async () => {
    const res = await postForm('/oauth/v1/token', `grant_type=${'a'.repeat(20 * 1024)}`);
    expect(res.status).toBe(413);
    await res.arrayBuffer();
    // Without a Content-Length (chunked), the cap holds while reading.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${emulator.baseUrl}/oauth/v1/health_check`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (answer) => {
        answer.resume();
        resolve(answer.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write(`client_id=${'c'.repeat(1024)}&`);
      req.end();
    });
    expect(chunked).toBe(413);
    await expect(client().healthCheck()).resolves.toBeTruthy();
  });

  it('survives malformed input and keeps answering', async () => {
    const inputs = [
      'client_id=%%%&client_assertion=%E0%A4%A',
      'client_id=a&client_id=b&client_assertion=x',
      Buffer.from([0xff, 0xfe, 0x3d, 0x00]).toString('latin1'),
      '&&&===',
      `client_id=${emulator.clientId}&client_assertion=${'a.b.c'}`,
      `client_id=${emulator.clientId}&client_assertion=${Buffer.from('{"alg":"HS512"}').toString('base64url')}.W10.AAAA`,
    ];
    for (const body of inputs) {
      for (const path of ['/oauth/v1/health_check', '/oauth/v1/token', '/emulator/decision']) {
        const res = await postForm(path, body);
        expect(res.status, `${path} ${body}`).toBe(400);
        await res.arrayBuffer();
      }
    }
    // Invalid UTF-8 bytes in the body.
    const binary = await fetch(`${emulator.baseUrl}/oauth/v1/token`, { method: 'POST', body: new Uint8Array([0x63, 0x3d, 0xc3, 0x28]) });
    expect(binary.status).toBe(400);
    await expect(client().healthCheck()).resolves.toBeTruthy();
  });

  it('keeps connections alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (): Promise<{ reused: boolean; status: number }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(`${emulator.baseUrl}/oauth/v1/nothing`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ reused: req.reusedSocket, status: res.statusCode ?? 0 }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await get()).toEqual({ reused: false, status: 404 });
      expect(await get()).toEqual({ reused: true, status: 404 });
      expect(await get()).toEqual({ reused: true, status: 404 });
    } finally {
      agent.destroy();
    }
  });

  it('logs one line per request without secrets, codes, tokens, assertions or states', async () => {
    logLines.length = 0;
    const request = await requestJwt({ nonce: 'k'.repeat(32), state: 'Z'.repeat(40) });
    const location = new URL(await emulator.authorize(authorizeUrl(request)));
    const code = location.searchParams.get('duo_code')!;
    const form = await tokenForm(code);
    const raw = await rawToken(form);
    await rawToken(form); // replayed: refused, still logged
    const sensitive = [emulator.clientSecret, request, code, 'Z'.repeat(40), 'k'.repeat(32), form.client_assertion!, String(raw.body.id_token), String(raw.body.access_token)];
    expect(logLines.length).toBe(3);
    for (const line of logLines) {
      for (const secret of sensitive) expect(line).not.toContain(secret);
    }
    expect(logLines.join('\n')).toMatch(/GET \/oauth\/v1\/authorize -> 302/);
    expect(logLines.join('\n')).toMatch(/POST \/oauth\/v1\/token -> 400 invalid_client/);
  });

  it('close() ends hung connections (no_answer) and refuses new ones', async () => {
    const hanging = await DuoEmulator.start();
    hanging.setFailure('no_answer');
    const pending = fetch(`${hanging.baseUrl}/oauth/v1/health_check`, { method: 'POST', body: 'a=b' }).then(
      () => 'answered',
      () => 'failed',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await hanging.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await pending).toBe('failed');
    await expect(fetch(`${hanging.baseUrl}/oauth/v1/health_check`, { method: 'POST' })).rejects.toThrow();
    await hanging.close(); // idempotent
  });
});

describe('HTTPS', () => {
  let key: string;
  let cert: string;
  let secure: DuoEmulator;

  beforeAll(async () => {
    ({ key, cert } = selfSignedCertificate());
    secure = await DuoEmulator.start({ tls: { key, cert } });
  });

  afterAll(async () => {
    await secure?.close();
  });

  it('serves https; our client trusts it with the ca option and completes a login', async () => {
    expect(secure.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const duo = client({ ca: cert }, secure);
    await expect(duo.healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    const start = await duo.startAuthorization('bob');
    const location = new URL(await secure.authorize(start.url));
    const claims = await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'bob', start.nonce);
    expect(claims.iss).toBe(`${secure.baseUrl}/oauth/v1/token`);
    expect(claims.preferred_username).toBe('bob');
  });

  it('a client without the ca refuses the self-signed certificate', async () => {
    await expectDuoError(client({}, secure).healthCheck(), 'duo_tls_failed');
  });
});

describe('reset()', () => {
  it('restores the starting mode, clears failure and clock offset, and zeroes the stats', async () => {
    const fresh = await DuoEmulator.start({ mode: 'deny' });
    try {
      fresh.setMode('approve');
      fresh.setFailure('http_500');
      fresh.setClockOffset(120);
      await fetch(`${fresh.baseUrl}/oauth/v1/health_check`, { method: 'POST' });
      expect(fresh.stats.healthChecks).toBe(1);
      fresh.reset();
      expect(fresh.mode).toBe('deny');
      expect(fresh.failure).toBe('none');
      expect(fresh.stats.healthChecks).toBe(0);
      const duo = new DuoClient(fresh.clientOptions('http://localhost/duo/callback'));
      const health = await duo.healthCheck();
      expect(Math.abs(health.clockOffsetSeconds)).toBeLessThan(5);
      await duo.close();
    } finally {
      await fresh.close();
    }
  });
});
