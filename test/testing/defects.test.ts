/**
 * The failures setFailure() switches on: what each does to the endpoints it
 * hits, and what our DuoClient makes of it.
 */
import { describe, expect, it } from 'vitest';
import { DuoError, type DuoClient } from '../../src/protocol/index.js';
import { DEFECTS } from '../../src/testing/emulator.defects.js';
import type { DuoEmulatorEndpoint, DuoEmulatorFailure } from '../../src/testing/index.js';
import { approvedLogin, assertion, authorizeUrl, client, emulator, expectDuoError, now, postForm, rawHealth, rawToken, requestJwt, tokenForm, useEmulator } from './support.js';
import type { DuoErrorCode } from '../../src/duo.errors.js';

useEmulator();

/** Every name of the table, in its order. */
const FAILURES = Object.keys(DEFECTS) as DuoEmulatorFailure[];
const ENDPOINTS: DuoEmulatorEndpoint[] = ['health', 'authorize', 'token'];

describe('failures', () => {
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
});

describe('token defects', () => {
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

  it('the list above names every defect of the table that hits the token call alone', () => {
    const tokenOnly = FAILURES.filter((failure) => DEFECTS[failure].endpoints.join() === 'token');
    expect(defects.map(([failure]) => failure).sort()).toEqual(tokenOnly.sort());
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

describe('every defect of the table', () => {
  type Outcome = 'normal' | 'failed';
  const failed = (promise: Promise<unknown>): Promise<Outcome> =>
    promise.then(
      () => 'normal',
      (error: unknown) => {
        if (error instanceof DuoError) return 'failed';
        throw error;
      },
    );

  /** One call to each of Duo's endpoints: health and token through our client, authorize as the browser. */
  async function probe(duo: DuoClient, login: { code: string; nonce: string }): Promise<Record<DuoEmulatorEndpoint, Outcome>> {
    const health = await failed(duo.healthCheck());
    const authorize = await fetch(authorizeUrl(await requestJwt()), { redirect: 'manual', signal: AbortSignal.timeout(250) }).then(
      async (res): Promise<Outcome> => {
        await res.arrayBuffer();
        return res.status === 302 && new URL(res.headers.get('location')!).searchParams.has('duo_code') ? 'normal' : 'failed';
      },
      (): Outcome => 'failed',
    );
    const token = await failed(duo.exchangeAuthorizationCode(login.code, 'alice', login.nonce));
    return { health, authorize, token };
  }

  it.each(FAILURES)('%s fails the endpoints its entry names, only those, and none when given no endpoints', async (failure) => {
    const duo = client({ timeoutMs: 250 });
    const first = await approvedLogin(duo);
    emulator.setFailure(failure, { slowMs: 600 });
    expect(emulator.failure).toBe(failure);
    expect(JSON.stringify(emulator)).toContain(`"failure":"${failure}"`);
    const expected = Object.fromEntries(ENDPOINTS.map((endpoint) => [endpoint, DEFECTS[failure].endpoints.includes(endpoint) ? 'failed' : 'normal']));
    expect(await probe(duo, first)).toEqual(expected);

    emulator.setFailure('none');
    const second = await approvedLogin(duo);
    emulator.setFailure(failure, { endpoints: [], slowMs: 600 });
    expect(await probe(duo, second)).toEqual({ health: 'normal', authorize: 'normal', token: 'normal' });
  });

  it('the table has the names DuoEmulatorFailure allows, and setFailure refuses others, inherited ones included', () => {
    expect(FAILURES).toContain('none');
    for (const name of ['toString', '__proto__', 'constructor', 'hasOwnProperty', 'token_']) {
      expect(() => emulator.setFailure(name as never), name).toThrow(new TypeError(`Unknown Duo emulator failure ${JSON.stringify(name)}.`));
    }
  });
});
