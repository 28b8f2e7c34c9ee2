/**
 * POST /oauth/v1/health_check and the client assertion checks it shares with
 * the token call: Duo's answers, its clock, and every way an assertion is refused.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { assertion, client, compactJwt, emulator, expectDuoError, INVALID_GRANT, now, postForm, rawHealth, rawToken, tokenForm, useEmulator } from './support.js';

useEmulator();

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
