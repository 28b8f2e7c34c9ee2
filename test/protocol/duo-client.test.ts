import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoClient, expectNoNonce, type DuoAuthUrlOptions } from '../../src/protocol/index.js';
import {
  API_HOST,
  CLIENT_ID,
  REDIRECT_URI,
  SECRET_BYTES,
  expectDuoError,
  localOptions,
  nowSeconds,
  startServer,
  validOptions,
  type TestServer,
} from './helpers.js';

const BASE_URL = `https://${API_HOST}`;
const STATE = 'st4te-Of-This.Login_~0123456789';
const NONCE = 'n0nce-Of-This.Login_~0123456789';
/** The nonce option of the tests that are about something else. */
const WITH_NONCE = { nonce: NONCE } as const;

let client: DuoClient;
beforeAll(() => {
  client = new DuoClient(validOptions());
});
afterAll(async () => {
  await client.close();
});

/** Parses the authorize URL and verifies the request JWT with the secret. */
async function parseAuthUrl(url: string): Promise<{ url: URL; query: Record<string, string>; claims: JWTPayload; header: Record<string, unknown> }> {
  const parsed = new URL(url);
  const query = Object.fromEntries(parsed.searchParams);
  const request = query.request ?? '';
  const { payload } = await jwtVerify(request, SECRET_BYTES, { algorithms: ['HS512'], issuer: CLIENT_ID, audience: BASE_URL });
  // decodeJwt sees the same claims as the verified payload.
  expect(decodeJwt(request)).toEqual(payload);
  return { url: parsed, query, claims: payload, header: decodeProtectedHeader(request) as Record<string, unknown> };
}

describe('createAuthUrl', () => {
  it('points at the authorize endpoint with the Node SDK query plus the nonce (as the Python SDK sends it)', async () => {
    const { url, query, claims } = await parseAuthUrl(await client.createAuthUrl('alice', STATE, WITH_NONCE));
    expect(`${url.origin}${url.pathname}`).toBe(`${BASE_URL}/oauth/v1/authorize`);
    expect(url.hash).toBe('');
    expect(Object.keys(query).sort()).toEqual(['client_id', 'nonce', 'redirect_uri', 'request', 'response_type', 'scope']);
    expect(query.response_type).toBe('code');
    expect(query.client_id).toBe(CLIENT_ID);
    expect(query.redirect_uri).toBe(REDIRECT_URI);
    expect(query.scope).toBe('openid');
    // The nonce is the same in the query and in the JWT.
    expect(query.nonce).toBe(NONCE);
    expect(claims.nonce).toBe(NONCE);
    // No state or username travels outside the signed JWT.
    expect(url.search).not.toContain(STATE);
    expect(url.search).not.toContain('alice');
  });

  it('with expectNoNonce: exactly the Node SDK query, and no nonce claim', async () => {
    const { query, claims } = await parseAuthUrl(await client.createAuthUrl('alice', STATE, { nonce: expectNoNonce }));
    expect(Object.keys(query).sort()).toEqual(['client_id', 'redirect_uri', 'request', 'response_type', 'scope']);
    expect(claims).not.toHaveProperty('nonce');
  });

  it('URL-encodes the redirect_uri (a query string in it survives)', async () => {
    const redirectUri = 'https://app.example.com/duo/callback?next=%2Fhome&x=1';
    const other = new DuoClient(validOptions({ redirectUri }));
    try {
      const raw = await other.createAuthUrl('alice', STATE, WITH_NONCE);
      expect(raw).toContain(`redirect_uri=${encodeURIComponent(redirectUri)}`);
      const { query, claims } = await parseAuthUrl(raw);
      expect(query.redirect_uri).toBe(redirectUri);
      expect(claims.redirect_uri).toBe(redirectUri);
    } finally {
      await other.close();
    }
  });

  it('is byte for byte the URL URLSearchParams makes of its parameters (the fixed part is encoded once per client)', async () => {
    const redirectUris = [REDIRECT_URI, 'https://app.example.com/duo/callback?next=%2Fhome&x=1', "https://app.example.com/a/b;c=d/e'f(g)!*~$,@:+?q=a+b&r=%C3%A9"];
    const nonces: DuoAuthUrlOptions['nonce'][] = [NONCE, 'plain-nonce_0123456789.ABC', '~~~~~~~~~~~~~~~~', expectNoNonce];
    for (const redirectUri of redirectUris) {
      const other = new DuoClient(validOptions({ redirectUri }));
      try {
        for (const nonce of nonces) {
          for (let i = 0; i < 2; i++) {
            const raw = await other.createAuthUrl(`user${i}@example.com`, STATE, { nonce });
            const request = new URL(raw).searchParams.get('request') ?? '';
            const expected = new URLSearchParams({ response_type: 'code', client_id: CLIENT_ID, request, redirect_uri: other.config.redirectUri, scope: 'openid' });
            if (typeof nonce === 'string') expected.set('nonce', nonce);
            expect(raw).toBe(`${BASE_URL}/oauth/v1/authorize?${expected.toString()}`);
            const { query } = await parseAuthUrl(raw);
            expect(query.redirect_uri).toBe(other.config.redirectUri);
            if (typeof nonce === 'string') expect(query.nonce).toBe(nonce);
          }
        }
      } finally {
        await other.close();
      }
    }
  });

  it('signs an HS512 request JWT with every claim Duo needs', async () => {
    const before = nowSeconds();
    const { claims, header } = await parseAuthUrl(await client.createAuthUrl('alice', STATE, { nonce: expectNoNonce }));
    expect(header.alg).toBe('HS512');
    expect(claims).toMatchObject({
      response_type: 'code',
      scope: 'openid',
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT_URI,
      state: STATE,
      duo_uname: 'alice',
      use_duo_code_attribute: true,
      iss: CLIENT_ID,
      aud: BASE_URL,
    });
    expect(typeof claims.exp).toBe('number');
    expect(claims.exp as number).toBeGreaterThanOrEqual(before + 300);
    expect(claims.exp as number).toBeLessThanOrEqual(nowSeconds() + 301);
    for (const absent of ['nonce', 'dest_app_name', 'dest_app_id', 'display_username', 'max_age', 'prompt']) {
      expect(claims, absent).not.toHaveProperty(absent);
    }
  });

  it('uses apiBaseUrl as the audience when set', async () => {
    const local = new DuoClient(localOptions('http://127.0.0.1:4000'));
    try {
      const url = await local.createAuthUrl('alice', STATE, WITH_NONCE);
      expect(url.startsWith('http://127.0.0.1:4000/oauth/v1/authorize?')).toBe(true);
      const request = new URL(url).searchParams.get('request') ?? '';
      const { payload } = await jwtVerify(request, SECRET_BYTES, { algorithms: ['HS512'], audience: 'http://127.0.0.1:4000' });
      expect(payload.aud).toBe('http://127.0.0.1:4000');
    } finally {
      await local.close();
    }
  });

  it('puts the optional claims in only when given', async () => {
    const options: DuoAuthUrlOptions = { nonce: NONCE, destAppName: 'My App', displayUsername: 'Alice Smith', maxAge: 3600, promptLogin: true };
    const { claims } = await parseAuthUrl(await client.createAuthUrl('alice', STATE, options));
    expect(claims.nonce).toBe(NONCE);
    expect(claims.dest_app_name).toBe('My App');
    expect(claims.display_username).toBe('Alice Smith');
    expect(claims.max_age).toBe(3600);
    expect(claims.prompt).toBe('login');
  });

  it('sends max_age 0 (force re-authentication), and no prompt when promptLogin is false', async () => {
    const { claims } = await parseAuthUrl(await client.createAuthUrl('alice', STATE, { nonce: NONCE, maxAge: 0, promptLogin: false }));
    expect(claims.max_age).toBe(0);
    expect(claims).not.toHaveProperty('prompt');
  });

  it('keeps a username with spaces, @ and non-ASCII letters verbatim in duo_uname', async () => {
    for (const username of ['alice@example.com', 'DOMAIN\\alice', 'Zoë Müller', 'a b']) {
      const { claims } = await parseAuthUrl(await client.createAuthUrl(username, STATE, WITH_NONCE));
      expect(claims.duo_uname).toBe(username);
    }
  });

  it('accepts a state of 16 and of 1024 URL-safe characters', async () => {
    for (const state of ['a'.repeat(16), 'B'.repeat(1024), 'Az09-._~Az09-._~']) {
      const { claims } = await parseAuthUrl(await client.createAuthUrl('alice', state, WITH_NONCE));
      expect(claims.state).toBe(state);
    }
  });

  it.each<[string, unknown]>([
    ['15 characters (too short)', 'Qz9Qz9Qz9Qz9Qz9'],
    ['1025 characters (too long)', 'Q'.repeat(1025)],
    ['empty', ''],
    ['a number', 1234567890123456],
    ['undefined', undefined],
    ['an object', { state: 'Qz9Qz9Qz9Qz9Qz9Qz9' }],
    ['a "+"', 'Qz9Qz9Qz9+Qz9Qz9Qz9Qz9'],
    ['a space', 'Qz9Qz9Qz9 Qz9Qz9Qz9Qz9'],
    ['a "/"', 'Qz9Qz9Qz9/Qz9Qz9Qz9Qz9'],
    ['a "="', 'Qz9Qz9Qz9Qz9Qz9Qz9Qz9='],
    ['a "&"', 'Qz9Qz9Qz9&Qz9Qz9Qz9Qz9'],
    ['a newline', 'Qz9Qz9Qz9\nQz9Qz9Qz9Qz9'],
    ['non-ASCII letters', 'Qz9Qz9Qz9éQz9Qz9Qz9Qz9'],
  ])('refuses a state with %s', async (_name, state) => {
    await expectDuoError(() => client.createAuthUrl('alice', state as string, WITH_NONCE), 'state_invalid', [typeof state === 'string' ? state : undefined]);
  });

  it.each<[string, unknown]>([
    ['empty', ''],
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['a newline', 'alice\nadmin'],
    ['a NUL', 'alice\u0000'],
    ['a DEL', 'alice\u007f'],
    ['a carriage return', 'alice\r'],
    ['a tab', 'alice\tbob'],
    ['more than 512 characters', 'u'.repeat(513)],
  ])('refuses a username that is %s', async (_name, username) => {
    await expectDuoError(() => client.createAuthUrl(username as string, STATE, WITH_NONCE), 'input_invalid', [STATE]);
  });

  it.each<[string, unknown]>([
    ['-1', -1],
    ['1.5', 1.5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['a string', '60'],
  ])('refuses maxAge %s', async (_name, maxAge) => {
    await expectDuoError(() => client.createAuthUrl('alice', STATE, { nonce: NONCE, maxAge: maxAge as number }), 'input_invalid', [STATE]);
  });

  it.each<[string, DuoAuthUrlOptions]>([
    ['a nonce of 15 characters', { nonce: 'n'.repeat(15) }],
    ['a nonce of 1025 characters', { nonce: 'n'.repeat(1025) }],
    ['a nonce with a "+"', { nonce: 'nnnnnnnn+nnnnnnnnnn' }],
    ['a non-string nonce', { nonce: 12 as unknown as string }],
    ['an empty destAppName', { nonce: NONCE, destAppName: '' }],
    ['a destAppName of 257 characters', { nonce: NONCE, destAppName: 'd'.repeat(257) }],
    ['a non-string displayUsername', { nonce: NONCE, displayUsername: 5 as unknown as string }],
  ])('refuses %s', async (_name, options) => {
    await expectDuoError(() => client.createAuthUrl('alice', STATE, options), 'input_invalid', [STATE]);
  });

  it('signs a fresh JWT each time (exp moves with the clock, never reused)', async () => {
    const first = await client.createAuthUrl('alice', STATE, WITH_NONCE);
    const second = await client.createAuthUrl('bob', STATE, WITH_NONCE);
    expect(first).not.toBe(second);
  });
});

describe('startAuthorization', () => {
  it('returns a distinct fresh state and nonce, both inside the signed request JWT', async () => {
    const one = await client.startAuthorization('alice');
    const two = await client.startAuthorization('alice');
    for (const { url, state, nonce } of [one, two]) {
      expect(state).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(state).not.toBe(nonce);
      const { claims } = await parseAuthUrl(url);
      expect(claims.state).toBe(state);
      expect(claims.nonce).toBe(nonce);
      expect(claims.duo_uname).toBe('alice');
    }
    expect(one.state).not.toBe(two.state);
    expect(one.nonce).not.toBe(two.nonce);
  });

  it('passes the optional claims through', async () => {
    const { url } = await client.startAuthorization('alice', { destAppName: 'My App', maxAge: 0, promptLogin: true });
    const { claims } = await parseAuthUrl(url);
    expect(claims).toMatchObject({ dest_app_name: 'My App', max_age: 0, prompt: 'login' });
  });

  it('refuses a bad username', async () => {
    await expectDuoError(() => client.startAuthorization(''), 'input_invalid');
  });
});

describe('exchangeAuthorizationCode: bad inputs are refused before any call to Duo', () => {
  let server: TestServer;
  let local: DuoClient;
  beforeAll(async () => {
    server = await startServer((_req, res) => {
      res.writeHead(500).end();
    });
    local = new DuoClient(localOptions(server.url));
  });
  afterAll(async () => {
    await local.close();
    await server.close();
  });

  it.each<[string, unknown, unknown, unknown]>([
    ['an empty code', '', 'alice', NONCE],
    ['a non-string code', 12345678, 'alice', NONCE],
    ['a null code', null, 'alice', NONCE],
    ['a code over 1024 characters', 'c'.repeat(1025), 'alice', NONCE],
    ['a code with a space', 'code with space 123', 'alice', NONCE],
    ['a code with a newline', 'codeABCDEFGH\nX', 'alice', NONCE],
    ['a code with non-ASCII', 'codeABCDEFGHé', 'alice', NONCE],
    ['an empty username', 'goodCode12345678', '', NONCE],
    ['a non-string username', 'goodCode12345678', 7, NONCE],
    ['a username with a control character', 'goodCode12345678', 'alice\u0000', NONCE],
    ['a short nonce', 'goodCode12345678', 'alice', 'short'],
    ['a nonce with a space', 'goodCode12345678', 'alice', 'nonce with a space 1234'],
  ])('refuses %s with input_invalid', async (_name, code, username, nonce) => {
    await expectDuoError(
      () => local.exchangeAuthorizationCode(code as string, username as string, nonce as string),
      'input_invalid',
      [typeof code === 'string' ? code : undefined],
    );
    expect(server.requests).toHaveLength(0);
    expect(server.connections).toBe(0);
  });
});
