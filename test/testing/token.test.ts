/**
 * POST /oauth/v1/token: the id_token Duo issues for a code, and how a code is
 * spent, refused or expired.
 */
import { describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { approvedLogin, authorizeUrl, client, emulator, expectDuoError, INVALID_GRANT, now, rawToken, requestJwt, tokenForm, useEmulator } from './support.js';

useEmulator();

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
});
