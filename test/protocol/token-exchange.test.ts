import { SignJWT, UnsecuredJWT, decodeProtectedHeader, generateKeyPair, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoClient, expectNoNonce, type DuoClientOptions, type DuoNonce } from '../../src/protocol/index.js';
import {
  CLIENT_ID,
  CLIENT_SECRET,
  SECRET_BYTES,
  expectDuoError,
  expectNoLeak,
  goodClaims,
  localOptions,
  nowSeconds,
  sendJson,
  signToken,
  startServer,
  type TestServer,
} from './helpers.js';
import { statusOf, type DuoErrorCode } from '../../src/duo.errors.js';

const CODE = 'duoCode-4f1c2e9a7b3d-Authorization';
const NONCE = 'nonce-6d8a1f0e2c4b9a7e5d3c1b0a';
const REDIRECT = 'https://app.example.com/duo/callback?next=%2Fhome&x=1';

let server: TestServer;
let client: DuoClient;
const extraClients: DuoClient[] = [];
/** What the crafted Duo answers next: [HTTP status, body]. */
let answer: () => Promise<[number, unknown]> | [number, unknown];
/** Every id_token the server handed out: errors must never contain them. */
const tokens: string[] = [];

const tokenUrl = (): string => `${server.url}/oauth/v1/token`;

function tokenAnswer(idToken: string, extra: Record<string, unknown> = {}): [number, unknown] {
  tokens.push(idToken);
  return [200, { id_token: idToken, access_token: 'access-token-value-not-used-1234', expires_in: 3600, token_type: 'Bearer', ...extra }];
}

function clientWith(overrides: Partial<DuoClientOptions>): DuoClient {
  const made = new DuoClient(localOptions(server.url, { redirectUri: REDIRECT, ...overrides }));
  extraClients.push(made);
  return made;
}

/** The sensitive values of this test run: the code, the nonce, the tokens and every assertion sent. */
const sensitive = (): string[] => [CODE, NONCE, ...tokens, ...server.requests.map((r) => r.form.client_assertion ?? ''), 'access-token-value-not-used-1234'];

beforeAll(async () => {
  server = await startServer(async (_req, res) => {
    const [status, body] = await answer();
    sendJson(res, status, body);
  });
  client = new DuoClient(localOptions(server.url, { redirectUri: REDIRECT }));
});
afterAll(async () => {
  await Promise.all([client, ...extraClients].map((c) => c.close()));
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
  answer = async () => tokenAnswer(await signToken(goodClaims(server.url, 'alice', NONCE)));
});

describe('token exchange: the request', () => {
  it('posts the exact form to the token URL, with the very redirect URI of the configuration', async () => {
    const before = nowSeconds();
    await client.exchangeAuthorizationCode(CODE, 'alice', NONCE);
    expect(server.requests).toHaveLength(1);
    const request = server.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/oauth/v1/token');
    expect(request.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    expect(request.headers['user-agent']).toMatch(/^nestjs-duo\//);
    expect(Object.keys(request.form).sort()).toEqual(['client_assertion', 'client_assertion_type', 'client_id', 'code', 'grant_type', 'redirect_uri']);
    expect(request.form.grant_type).toBe('authorization_code');
    expect(request.form.code).toBe(CODE);
    expect(request.form.redirect_uri).toBe(REDIRECT);
    expect(request.form.redirect_uri).toBe(client.config.redirectUri);
    expect(request.form.client_id).toBe(CLIENT_ID);
    expect(request.form.client_assertion_type).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    // The nonce is never sent to the token endpoint: it is checked locally.
    expect(request.body).not.toContain(NONCE);

    const assertion = request.form.client_assertion ?? '';
    expect(decodeProtectedHeader(assertion).alg).toBe('HS512');
    const { payload } = await jwtVerify(assertion, SECRET_BYTES, { algorithms: ['HS512'], issuer: CLIENT_ID, subject: CLIENT_ID, audience: tokenUrl() });
    expect(payload.aud).toBe(tokenUrl());
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{36}$/);
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
    expect(payload.iat as number).toBeGreaterThanOrEqual(before);
    expect(request.body).not.toContain(CLIENT_SECRET);
  });

  it('returns the verified claims on success', async () => {
    const claims = await client.exchangeAuthorizationCode(CODE, 'alice', NONCE);
    expect(claims.preferred_username).toBe('alice');
    expect(claims.iss).toBe(tokenUrl());
    expect(claims.aud).toBe(CLIENT_ID);
    expect(claims.nonce).toBe(NONCE);
    expect(claims.auth_result).toEqual({ result: 'allow', status: 'allow', status_msg: 'Login Successful' });
    expect(claims.amr).toEqual(['mfa', 'push']);
    expect(claims.auth_context?.factor).toBe('duo_push');
    expect(claims.auth_context?.access_device?.browser).toBe('Firefox');
  });

  it('accepts expires_in as a string, and works through the SDK-named alias', async () => {
    answer = async () => tokenAnswer(await signToken(goodClaims(server.url, 'alice', NONCE)), { expires_in: '3600' });
    const claims = await client.exchangeAuthorizationCodeFor2FAResult(CODE, 'alice', NONCE);
    expect(claims.preferred_username).toBe('alice');
  });
});

describe('token exchange: Duo\'s error answers', () => {
  it.each<[string, number, unknown, DuoErrorCode]>([
    ['400 invalid_grant', 400, { error: 'invalid_grant', error_description: 'The provided authorization grant or refresh token is invalid, expired, revoked, does not match the redirection URI.' }, 'code_invalid'],
    ['401 invalid_grant', 401, { error: 'invalid_grant' }, 'code_invalid'],
    ['400 invalid_client', 400, { error: 'invalid_client', error_description: 'The provided client_assertion was invalid.' }, 'duo_invalid_client'],
    ['401 invalid_client (frameless)', 401, { error: 'invalid_client', error_description: 'Customer does not have frameless access enabled.' }, 'duo_invalid_client'],
    ['401 FAIL 40002', 401, { stat: 'FAIL', code: 40002, message: 'invalid_client', message_detail: 'The provided client_assertion was invalid.' }, 'duo_invalid_client'],
    ['400 invalid_request', 400, { error: 'invalid_request', error_description: 'Missing parameter' }, 'duo_request_rejected'],
    ['403 unauthorized_client', 403, { error: 'unauthorized_client' }, 'duo_request_rejected'],
    ['400 unsupported_grant_type', 400, { error: 'unsupported_grant_type' }, 'duo_request_rejected'],
    ['400 FAIL other', 400, { stat: 'FAIL', code: 40001, message: 'Missing required request parameters' }, 'duo_request_rejected'],
    ['400 without any error', 400, {}, 'duo_upstream_invalid'],
    ['500', 500, { error: 'server_error' }, 'duo_unavailable'],
    ['503', 503, { stat: 'FAIL', message: 'Service unavailable' }, 'duo_unavailable'],
  ])('%s', async (name, status, body, code) => {
    answer = () => [status, body];
    const error = await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), code, sensitive());
    if (name.includes('frameless')) expect(error.message).toContain('Customer does not have frameless access enabled.');
    if (code === 'duo_request_rejected') expect(error.message).toContain((body as { error?: string; message?: string }).error ?? (body as { message: string }).message);
    if (code === 'code_invalid') expect(statusOf(error.code)).toBe(401);
  });

  it('does not echo a 10 KB error_description whole, and strips control characters from it', async () => {
    const long = `line one\r\n\u001b[31mFORGED LOG LINE\u0000 ${'D'.repeat(10_240)}`;
    answer = () => [400, { error: 'invalid_request', error_description: long }];
    const error = await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), 'duo_request_rejected', sensitive());
    expect(error.message.length).toBeLessThan(400);
    expect(error.message).not.toContain('D'.repeat(200));
    expect(error.message).not.toMatch(/[\u0000-\u001f\u007f]/);
    expect(JSON.stringify(error).length).toBeLessThan(600);
    expect(error.message).toContain('line one');
  });

  it('does not echo a long error code whole either', async () => {
    answer = () => [400, { error: `x${'E'.repeat(5000)}` }];
    const error = await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), 'duo_request_rejected', sensitive());
    expect(error.message.length).toBeLessThan(400);
  });
});

describe('token exchange: malformed success answers', () => {
  it.each<[string, () => Promise<unknown> | unknown]>([
    ['an array', () => []],
    ['a string', () => JSON.stringify('id_token')],
    ['null', () => null],
    ['a number', () => 42],
    ['no id_token', () => ({ access_token: 'a', expires_in: 3600, token_type: 'Bearer' })],
    ['an id_token that is not a string', () => ({ id_token: { alg: 'none' }, access_token: 'a', expires_in: 3600, token_type: 'Bearer' })],
    ['no token_type', async () => ({ id_token: await signToken(goodClaims(server.url, 'alice', NONCE)), access_token: 'a', expires_in: 3600 })],
    ['token_type mac', async () => ({ id_token: await signToken(goodClaims(server.url, 'alice', NONCE)), access_token: 'a', expires_in: 3600, token_type: 'mac' })],
    ['token_type as a number', async () => ({ id_token: await signToken(goodClaims(server.url, 'alice', NONCE)), access_token: 'a', expires_in: 3600, token_type: 1 })],
  ])('%s: duo_upstream_invalid', async (_name, make) => {
    const body = await make();
    if (body && typeof body === 'object' && 'id_token' in body && typeof body.id_token === 'string') tokens.push(body.id_token);
    answer = () => [200, body];
    await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), 'duo_upstream_invalid', sensitive());
  });
});

// ---------------------------------------------------------------------------
// The id_token checks, one row each.

type Outcome = DuoErrorCode | 'ok';
interface Row {
  name: string;
  token: (base: string) => Promise<string> | string;
  expect: Outcome;
  username?: string;
  /** The nonce given to exchangeAuthorizationCode; default NONCE. */
  nonce?: DuoNonce;
  options?: Partial<DuoClientOptions>;
}

const claimsWith = (base: string, change: (claims: JWTPayload) => void, username = 'alice'): JWTPayload => {
  const claims = goodClaims(base, username, NONCE);
  change(claims);
  return claims;
};
const hs512 = (base: string, change: (claims: JWTPayload) => void): Promise<string> => signToken(claimsWith(base, change));

const rows: Row[] = [
  { name: 'a good token', token: (b) => hs512(b, () => undefined), expect: 'ok' },
  { name: 'alg none (unsigned)', token: (b) => new UnsecuredJWT(goodClaims(b, 'alice', NONCE)).encode(), expect: 'token_invalid' },
  {
    name: 'alg none with an HS512 signature kept',
    token: async (b) => {
      const [, payload, signature] = (await hs512(b, () => undefined)).split('.');
      return `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.${signature}`;
    },
    expect: 'token_invalid',
  },
  { name: 'HS256 with the right secret', token: (b) => signToken(goodClaims(b, 'alice', NONCE), { alg: 'HS256' }), expect: 'token_invalid' },
  { name: 'HS384 with the right secret', token: (b) => signToken(goodClaims(b, 'alice', NONCE), { alg: 'HS384' }), expect: 'token_invalid' },
  {
    name: 'RS256, validly signed with an RSA key',
    token: async (b) => {
      const { privateKey } = await generateKeyPair('RS256');
      return new SignJWT(goodClaims(b, 'alice', NONCE)).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    },
    expect: 'token_invalid',
  },
  {
    name: 'an RS256 header over an HMAC signature',
    token: async (b) => {
      const [, payload, signature] = (await hs512(b, () => undefined)).split('.');
      return `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${payload}.${signature}`;
    },
    expect: 'token_invalid',
  },
  { name: 'a wrong secret (signature)', token: (b) => signToken(goodClaims(b, 'alice', NONCE), { secret: `${CLIENT_SECRET.slice(0, 39)}!` }), expect: 'token_invalid' },
  {
    name: 'a tampered payload (signature)',
    token: async (b) => {
      const [header, , signature] = (await hs512(b, () => undefined)).split('.');
      const forged = Buffer.from(JSON.stringify(goodClaims(b, 'mallory', NONCE))).toString('base64url');
      return `${header}.${forged}.${signature}`;
    },
    username: 'mallory',
    expect: 'token_invalid',
  },
  { name: 'not a JWT', token: () => 'not-a-jwt-at-all-0123456789', expect: 'token_invalid' },
  { name: 'iss of another Duo host', token: (b) => hs512(b, (c) => void (c.iss = 'https://api-evil.duosecurity.com/oauth/v1/token')), expect: 'token_invalid' },
  { name: 'iss without the token path', token: (b) => hs512(b, (c) => void (c.iss = b)), expect: 'token_invalid' },
  { name: 'iss missing', token: (b) => hs512(b, (c) => void delete c.iss), expect: 'token_invalid' },
  { name: 'aud of another client', token: (b) => hs512(b, (c) => void (c.aud = 'DIOTHERCLIENT0000000')), expect: 'token_invalid' },
  { name: 'aud missing', token: (b) => hs512(b, (c) => void delete c.aud), expect: 'token_invalid' },
  { name: 'aud array with two entries', token: (b) => hs512(b, (c) => void (c.aud = [CLIENT_ID, 'DIOTHERCLIENT0000000'])), expect: 'token_invalid' },
  { name: 'aud array with only the right entry', token: (b) => hs512(b, (c) => void (c.aud = [CLIENT_ID])), expect: 'ok' },
  { name: 'exp missing', token: (b) => hs512(b, (c) => void delete c.exp), expect: 'token_invalid' },
  { name: 'exp not a number', token: (b) => hs512(b, (c) => void (c.exp = String(nowSeconds() + 300) as unknown as number)), expect: 'token_invalid' },
  { name: 'exp 90 s past (beyond the 60 s leeway)', token: (b) => hs512(b, (c) => void (c.exp = nowSeconds() - 90)), expect: 'token_invalid' },
  { name: 'exp 30 s past (within the leeway)', token: (b) => hs512(b, (c) => void (c.exp = nowSeconds() - 30)), expect: 'ok' },
  { name: 'iat missing', token: (b) => hs512(b, (c) => void delete c.iat), expect: 'token_invalid' },
  { name: 'iat 120 s in the future', token: (b) => hs512(b, (c) => void (c.iat = nowSeconds() + 120)), expect: 'token_invalid' },
  { name: 'iat 30 s in the future', token: (b) => hs512(b, (c) => void (c.iat = nowSeconds() + 30)), expect: 'ok' },
  { name: 'nbf 120 s in the future', token: (b) => hs512(b, (c) => void (c.nbf = nowSeconds() + 120)), expect: 'token_invalid' },
  { name: 'nbf 30 s in the future (within the leeway)', token: (b) => hs512(b, (c) => void (c.nbf = nowSeconds() + 30)), expect: 'ok' },
  { name: 'preferred_username of another user', token: (b) => hs512(b, (c) => void (c.preferred_username = 'mallory')), expect: 'username_mismatch' },
  {
    name: 'preferred_username of another user although sub is the username',
    token: (b) => hs512(b, (c) => {
      c.preferred_username = 'mallory';
      c.sub = 'alice';
    }),
    expect: 'username_mismatch',
  },
  {
    name: 'preferred_username missing although sub is the username',
    token: (b) => hs512(b, (c) => {
      delete c.preferred_username;
      c.sub = 'alice';
    }),
    expect: 'token_invalid',
  },
  { name: 'preferred_username not a string', token: (b) => hs512(b, (c) => void (c.preferred_username = ['alice'])), expect: 'token_invalid' },
  { name: 'preferred_username with a trailing space', token: (b) => hs512(b, (c) => void (c.preferred_username = 'alice ')), expect: 'username_mismatch' },
  { name: 'preferred_username differing only by case (exact, the default)', token: (b) => hs512(b, (c) => void (c.preferred_username = 'alice')), username: 'Alice', expect: 'username_mismatch' },
  {
    name: 'preferred_username differing only by case, usernameMatch case-insensitive',
    token: (b) => hs512(b, (c) => void (c.preferred_username = 'alice')),
    username: 'Alice',
    options: { usernameMatch: 'case-insensitive' },
    expect: 'ok',
  },
  {
    name: 'another user, usernameMatch case-insensitive',
    token: (b) => hs512(b, (c) => void (c.preferred_username = 'alicia')),
    username: 'Alice',
    options: { usernameMatch: 'case-insensitive' },
    expect: 'username_mismatch',
  },
  { name: 'nonce of another login', token: (b) => hs512(b, (c) => void (c.nonce = 'nonce-of-another-login-000000')), expect: 'nonce_mismatch' },
  { name: 'nonce missing when one was sent', token: (b) => hs512(b, (c) => void delete c.nonce), expect: 'nonce_mismatch' },
  { name: 'a nonce in the token when the login had none (expectNoNonce): another login\'s token', token: (b) => hs512(b, () => undefined), nonce: expectNoNonce, expect: 'nonce_mismatch' },
  { name: 'no nonce in the token, and the login had none (expectNoNonce)', token: (b) => hs512(b, (c) => void delete c.nonce), nonce: expectNoNonce, expect: 'ok' },
  { name: 'auth_result missing', token: (b) => hs512(b, (c) => void delete c.auth_result), expect: 'second_factor_denied' },
  { name: 'auth_result status deny', token: (b) => hs512(b, (c) => void (c.auth_result = { result: 'deny', status: 'deny', status_msg: 'Login denied' })), expect: 'second_factor_denied' },
  { name: 'auth_result status fraud', token: (b) => hs512(b, (c) => void (c.auth_result = { result: 'deny', status: 'fraud' })), expect: 'second_factor_denied' },
  { name: 'auth_result with result allow but no status', token: (b) => hs512(b, (c) => void (c.auth_result = { result: 'allow' })), expect: 'second_factor_denied' },
  { name: 'auth_result as the string "allow"', token: (b) => hs512(b, (c) => void (c.auth_result = 'allow')), expect: 'second_factor_denied' },
];

describe('token exchange: id_token checks', () => {
  it.each(rows.map((row) => [row.name, row] as const))('%s', async (_name, row) => {
    const idToken = await row.token(server.url);
    answer = () => tokenAnswer(idToken);
    const used = row.options ? clientWith(row.options) : client;
    const username = row.username ?? 'alice';
    const nonce = row.nonce ?? NONCE;
    const call = used.exchangeAuthorizationCode(CODE, username, nonce);
    if (row.expect === 'ok') {
      const claims = await call;
      expect(claims.auth_result.status).toBe('allow');
      expect(typeof claims.preferred_username).toBe('string');
    } else {
      const error = await expectDuoError(call, row.expect, sensitive());
      expectNoLeak(error, [idToken, ...idToken.split('.').filter((part) => part.length >= 16)]);
    }
    expect(server.requests).toHaveLength(1);
  });

  it('says to check the clock when the token has expired', async () => {
    const idToken = await hs512(server.url, (c) => void (c.exp = nowSeconds() - 600));
    answer = () => tokenAnswer(idToken);
    const error = await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), 'token_invalid', sensitive());
    expect(error.message).toMatch(/clock|NTP/);
  });

  it('verifyIdToken refuses a non-string token', async () => {
    await expectDuoError(client.verifyIdToken(undefined as unknown as string, 'alice', NONCE), 'token_invalid');
    await expectDuoError(client.verifyIdToken('', 'alice', NONCE), 'token_invalid');
  });

  it('verifyIdToken accepts a good token directly', async () => {
    const idToken = await hs512(server.url, () => undefined);
    expect((await client.verifyIdToken(idToken, 'alice', NONCE)).preferred_username).toBe('alice');
  });
});
