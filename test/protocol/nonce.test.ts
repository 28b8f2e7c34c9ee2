/**
 * A nonce by default. A login without one is an explicit choice (`expectNoNonce`,
 * as oauth4webapi names it): omitting the nonce is a compile error for
 * TypeScript callers (the `@ts-expect-error` lines below fail `tsc` if it ever
 * compiles) and an input_invalid DuoError, before any call to Duo, for
 * JavaScript callers. The nonce travels where Duo's SDKs send it: in the request
 * JWT (Node, PHP) and as the `nonce` query parameter (Python, Java), one value.
 */
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoClient, expectNoNonce, type DuoAuthUrlOptions } from '../../src/protocol/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import {
  SECRET_BYTES,
  expectDuoError,
  goodClaims,
  localOptions,
  sendJson,
  signToken,
  startServer,
  validOptions,
  type TestServer,
} from './helpers.js';

const STATE = 'st4te-Of-This.Login_~0123456789';
const NONCE = 'n0nce-Of-This.Login_~0123456789';
const CODE = 'duoCode-nonce-tests-0123456789';

let client: DuoClient;
let server: TestServer;
let local: DuoClient;
/** The id_token the crafted Duo hands out next. */
let idToken: () => Promise<string>;

beforeAll(async () => {
  client = new DuoClient(validOptions());
  server = await startServer(async (_req, res) => {
    sendJson(res, 200, { id_token: await idToken(), access_token: 'access-token-not-used-0123', expires_in: 3600, token_type: 'Bearer' });
  });
  local = new DuoClient(localOptions(server.url));
});
afterAll(async () => {
  await Promise.all([client.close(), local.close()]);
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
  idToken = () => signToken(goodClaims(server.url, 'alice', NONCE));
});

async function requestClaims(url: string): Promise<Record<string, unknown>> {
  const request = new URL(url).searchParams.get('request') ?? '';
  return (await jwtVerify(request, SECRET_BYTES, { algorithms: ['HS512'] })).payload;
}

describe('createAuthUrl: the nonce is required, the opt-out explicit', () => {
  it('sends the nonce in the request JWT and as the nonce query parameter: the same value', async () => {
    const url = await client.createAuthUrl('alice', STATE, { nonce: NONCE });
    const query = new URL(url).searchParams;
    expect(query.getAll('nonce')).toEqual([NONCE]);
    expect((await requestClaims(url)).nonce).toBe(NONCE);
  });

  it('with expectNoNonce: no nonce anywhere, neither in the JWT nor in the query', async () => {
    const url = await client.createAuthUrl('alice', STATE, { nonce: expectNoNonce });
    expect(new URL(url).searchParams.has('nonce')).toBe(false);
    expect(await requestClaims(url)).not.toHaveProperty('nonce');
  });

  it('omitting the options is a compile error, and input_invalid for JavaScript', async () => {
    // @ts-expect-error the nonce (or expectNoNonce) is required
    const error = await expectDuoError(() => client.createAuthUrl('alice', STATE), 'input_invalid', [STATE]);
    expect(error.message).toMatch(/nonce/);
    expect(error.message).toMatch(/expectNoNonce/);
  });

  it('options without a nonce are a compile error, and input_invalid for JavaScript', async () => {
    // @ts-expect-error the nonce (or expectNoNonce) is required
    await expectDuoError(() => client.createAuthUrl('alice', STATE, {}), 'input_invalid', [STATE]);
    // @ts-expect-error the nonce (or expectNoNonce) is required
    await expectDuoError(() => client.createAuthUrl('alice', STATE, { destAppName: 'My App' }), 'input_invalid', [STATE]);
    // @ts-expect-error undefined is not a nonce
    await expectDuoError(() => client.createAuthUrl('alice', STATE, { nonce: undefined }), 'input_invalid', [STATE]);
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['false', false],
    ['a look-alike symbol', Symbol('nestjs-duo.expectNoNonce')],
    ['the string "expectNoNonce"', 'expectNoNonce'],
  ])('refuses a nonce that is %s', async (_name, nonce) => {
    await expectDuoError(() => client.createAuthUrl('alice', STATE, { nonce } as unknown as DuoAuthUrlOptions), 'input_invalid', [STATE]);
  });

  it('startAuthorization() still makes and sends a fresh nonce itself', async () => {
    const { url, nonce } = await client.startAuthorization('alice', { destAppName: 'My App' });
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(new URL(url).searchParams.get('nonce')).toBe(nonce);
    expect((await requestClaims(url)).nonce).toBe(nonce);
  });
});

describe('exchangeAuthorizationCode: the nonce is required, the opt-out explicit', () => {
  it('omitting the nonce is a compile error, and input_invalid before any call to Duo', async () => {
    // @ts-expect-error the nonce (or expectNoNonce) is required
    const error = await expectDuoError(() => local.exchangeAuthorizationCode(CODE, 'alice'), 'input_invalid', [CODE]);
    expect(error.message).toMatch(/nonce/);
    expect(error.message).toMatch(/expectNoNonce/);
    // @ts-expect-error undefined is not a nonce
    await expectDuoError(() => local.exchangeAuthorizationCode(CODE, 'alice', undefined, {}), 'input_invalid', [CODE]);
    // @ts-expect-error Duo's SDK name takes the same nonce
    await expectDuoError(() => local.exchangeAuthorizationCodeFor2FAResult(CODE, 'alice'), 'input_invalid', [CODE]);
    await expectDuoError(() => local.exchangeAuthorizationCode(CODE, 'alice', Symbol('nestjs-duo.expectNoNonce') as never), 'input_invalid', [CODE]);
    expect(server.requests).toHaveLength(0);
  });

  it('verifyIdToken: the same rule', async () => {
    const token = await idToken();
    // @ts-expect-error the nonce (or expectNoNonce) is required
    await expectDuoError(() => local.verifyIdToken(token, 'alice'), 'input_invalid', [token]);
    await expect(local.verifyIdToken(token, 'alice', NONCE)).resolves.toMatchObject({ nonce: NONCE });
  });

  it('with the nonce: the token must carry exactly it', async () => {
    await expect(local.exchangeAuthorizationCode(CODE, 'alice', NONCE)).resolves.toMatchObject({ nonce: NONCE });
    await expect(local.exchangeAuthorizationCodeFor2FAResult(CODE, 'alice', NONCE)).resolves.toMatchObject({ nonce: NONCE });
    await expectDuoError(local.exchangeAuthorizationCode(CODE, 'alice', 'n0nce-of-another-login-0123'), 'nonce_mismatch', [CODE, NONCE]);
  });

  it('with expectNoNonce: a token without a nonce passes', async () => {
    idToken = () => signToken(goodClaims(server.url, 'alice'));
    const claims = await local.exchangeAuthorizationCode(CODE, 'alice', expectNoNonce);
    expect(claims.preferred_username).toBe('alice');
    expect(claims).not.toHaveProperty('nonce');
  });

  it('with expectNoNonce: a token that carries a nonce belongs to a login that had one, and is refused', async () => {
    const error = await expectDuoError(local.exchangeAuthorizationCode(CODE, 'alice', expectNoNonce), 'nonce_mismatch', [CODE, NONCE]);
    expect(error.message).toMatch(/expectNoNonce|without (a|one)/);
  });

  it('the maxAge check still runs through the SDK name', async () => {
    const old = Math.floor(Date.now() / 1000) - 3600;
    idToken = () => signToken({ ...goodClaims(server.url, 'alice', NONCE), auth_time: old });
    await expectDuoError(local.exchangeAuthorizationCodeFor2FAResult(CODE, 'alice', NONCE, { maxAge: 60 }), 'second_factor_denied', [CODE, NONCE]);
  });
});

describe('end to end with the emulator: Duo echoes the nonce whichever place it reads', () => {
  let emulator: DuoEmulator;
  let duo: DuoClient;
  beforeAll(async () => {
    emulator = await DuoEmulator.start();
    duo = new DuoClient(emulator.clientOptions('http://127.0.0.1:3000/duo/callback'));
  });
  afterAll(async () => {
    await duo.close();
    await emulator.close();
  });

  it('a login with a nonce passes, and the emulator saw that nonce', async () => {
    const url = await duo.createAuthUrl('alice', STATE, { nonce: NONCE });
    const code = new URL(await emulator.authorize(url)).searchParams.get('duo_code')!;
    expect(emulator.lastAuthorizeRequest?.nonce).toBe(NONCE);
    await expect(duo.exchangeAuthorizationCode(code, 'alice', NONCE)).resolves.toMatchObject({ nonce: NONCE });
  });

  it('a login without one passes only with expectNoNonce at both ends', async () => {
    const url = await duo.createAuthUrl('alice', STATE, { nonce: expectNoNonce });
    const code = new URL(await emulator.authorize(url)).searchParams.get('duo_code')!;
    expect(emulator.lastAuthorizeRequest).not.toHaveProperty('nonce');
    await expect(duo.exchangeAuthorizationCode(code, 'alice', expectNoNonce)).resolves.not.toHaveProperty('nonce');
  });

  it('a code of a login with a nonce is refused when exchanged with expectNoNonce', async () => {
    const { url } = await duo.startAuthorization('alice');
    const code = new URL(await emulator.authorize(url)).searchParams.get('duo_code')!;
    await expectDuoError(duo.exchangeAuthorizationCode(code, 'alice', expectNoNonce), 'nonce_mismatch', [code]);
  });
});
