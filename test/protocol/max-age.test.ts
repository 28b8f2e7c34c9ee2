/**
 * Step-up: an id_token for a login started with max_age must show an
 * authentication (auth_time) no older than max_age. Duo's clock is compared, so
 * the measured clock offset is applied, and nothing else: no fixed leeway that
 * would make `maxAge: 120` accept a Duo login 179 s old.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoClient } from '../../src/protocol/index.js';
import { expectDuoError, goodClaims, localOptions, sendJson, signToken, startServer, type TestServer } from './helpers.js';

const NONCE = 'n0nce-Of-This.Login_~0123456789';
const CODE = 'duoCode-max-age-tests-0123456789';

let server: TestServer;
let client: DuoClient;
let authTime = 0;

beforeAll(async () => {
  server = await startServer(async (_req, res) => {
    const id_token = await signToken({ ...goodClaims(server.url, 'alice', NONCE), auth_time: authTime });
    sendJson(res, 200, { id_token, access_token: 'access-token-not-used-0123', expires_in: 3600, token_type: 'Bearer' });
  });
  client = new DuoClient(localOptions(server.url));
});
afterAll(async () => {
  await client.close();
  await server.close();
});

const now = (): number => Math.floor(Date.now() / 1000);

describe('the max_age check', () => {
  it('refuses an authentication older than max_age by more than auth_time rounding (179 s old for maxAge 120)', async () => {
    authTime = now() - 179;
    const error = await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE, { maxAge: 120 }), 'second_factor_denied', [CODE, NONCE]);
    // The structured detail says which check failed, without a claim's value.
    expect(error.check).toBe('auth_time');
    expect(JSON.stringify(error)).not.toContain(String(authTime));
    authTime = now() - 125;
    await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE, { maxAge: 120 }), 'second_factor_denied', [CODE, NONCE]);
  });

  it('accepts one within max_age', async () => {
    authTime = now() - 110;
    await expect(client.exchangeAuthorizationCode(CODE, 'alice', NONCE, { maxAge: 120 })).resolves.toMatchObject({ preferred_username: 'alice' });
  });

  it("reads auth_time in Duo's clock: the measured offset decides, in both directions", async () => {
    // Duo's clock 100 s behind ours: an auth_time 150 s back by our clock is 50 s old at Duo.
    authTime = now() - 150;
    await expect(client.exchangeAuthorizationCode(CODE, 'alice', NONCE, { maxAge: 120, clockOffsetSeconds: -100 })).resolves.toBeDefined();
    // Duo's clock 100 s ahead: an auth_time 30 s back by our clock is 130 s old at Duo.
    authTime = now() - 30;
    await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE, { maxAge: 120, clockOffsetSeconds: 100 }), 'second_factor_denied', [CODE]);
  });
});

describe('which id_token check failed, as structured detail', () => {
  it('names the check (iss, aud, nonce) on the error, in toJSON and inspect', async () => {
    const { signToken: sign, goodClaims: good } = await import('./helpers.js');
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ iss: 'https://elsewhere.example/oauth/v1/token' }, 'token_invalid', 'iss'],
      [{ aud: 'DIOTHERCLIENT0000001' }, 'token_invalid', 'aud'],
      [{ nonce: 'n0nce-of-another-login-0123456789' }, 'nonce_mismatch', 'nonce'],
    ];
    for (const [patch, code, check] of cases) {
      const local = await startServer(async (_req, res) => {
        const id_token = await sign({ ...good(local.url, 'alice', NONCE), ...patch });
        sendJson(res, 200, { id_token, access_token: 'access-token-not-used-0123', expires_in: 3600, token_type: 'Bearer' });
      });
      const c = new DuoClient(localOptions(local.url));
      try {
        const error = await expectDuoError(c.exchangeAuthorizationCode(CODE, 'alice', NONCE), code as never, [CODE, NONCE]);
        expect(error.check).toBe(check);
        expect(JSON.parse(JSON.stringify(error)).check).toBe(check);
      } finally {
        await c.close();
        await local.close();
      }
    }
  });
});
