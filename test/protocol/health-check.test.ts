import { readFileSync } from 'node:fs';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoClient, NESTJS_DUO_VERSION } from '../../src/protocol/index.js';
import { CLIENT_ID, SECRET_BYTES, expectDuoError, localOptions, nowSeconds, sendJson, startServer, type TestServer } from './helpers.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

let server: TestServer;
let client: DuoClient;
/** What the crafted Duo answers next: [HTTP status, body]. */
let answer: () => [number, unknown];

beforeAll(async () => {
  server = await startServer((_req, res) => {
    const [status, body] = answer();
    sendJson(res, status, body);
  });
  client = new DuoClient(localOptions(server.url));
});
afterAll(async () => {
  await client.close();
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
  answer = () => [200, { stat: 'OK', response: { timestamp: nowSeconds() } }];
});

/** The client assertions seen so far: errors must never contain them. */
const assertions = (): string[] => server.requests.map((r) => r.form.client_assertion ?? '');

describe('healthCheck: answers', () => {
  it('OK with Duo\'s timestamp: clock offset close to 0 and no warning', async () => {
    const result = await client.healthCheck();
    expect(Math.abs(result.clockOffsetSeconds)).toBeLessThan(2);
    expect(result.timestamp).toBeGreaterThan(1_700_000_000);
    expect(result.clockSkewWarning).toBeUndefined();
  });

  it('Duo 120 s ahead: a clock-skew warning that says to fix the clock with NTP', async () => {
    answer = () => [200, { stat: 'OK', response: { timestamp: nowSeconds() + 120 } }];
    const result = await client.healthCheck();
    expect(result.clockOffsetSeconds).toBeGreaterThan(118);
    expect(result.clockOffsetSeconds).toBeLessThan(122);
    expect(result.clockSkewWarning).toMatch(/NTP/);
    expect(result.clockSkewWarning).toMatch(/behind/);
    expect(result.clockSkewWarning).toMatch(/1(19|20|21) s/);
  });

  it('Duo 120 s behind: a warning that our clock is ahead', async () => {
    answer = () => [200, { stat: 'OK', response: { timestamp: nowSeconds() - 120 } }];
    const result = await client.healthCheck();
    expect(result.clockOffsetSeconds).toBeLessThan(-118);
    expect(result.clockSkewWarning).toMatch(/ahead/);
    expect(result.clockSkewWarning).toMatch(/NTP/);
  });

  it('warns from clockSkewWarningSeconds on', async () => {
    const strict = new DuoClient(localOptions(server.url, { clockSkewWarningSeconds: 5 }));
    try {
      answer = () => [200, { stat: 'OK', response: { timestamp: nowSeconds() + 15 } }];
      expect((await strict.healthCheck()).clockSkewWarning).toMatch(/NTP/);
      // The default threshold (30 s) does not warn for 15 s.
      expect((await client.healthCheck()).clockSkewWarning).toBeUndefined();
    } finally {
      await strict.close();
    }
  });

  it('FAIL with message invalid_client and code 40002: duo_invalid_client', async () => {
    answer = () => [
      401,
      { stat: 'FAIL', code: 40002, message: 'invalid_client', message_detail: 'The provided client_assertion was invalid.', timestamp: nowSeconds() },
    ];
    const error = await expectDuoError(client.healthCheck(), 'duo_invalid_client', assertions());
    expect(error.message).toContain('The provided client_assertion was invalid.');
    expectNoAssertionLeak(error);
  });

  it('FAIL with code 40002 alone is still duo_invalid_client', async () => {
    answer = () => [400, { stat: 'FAIL', code: 40002, message: 'Invalid request' }];
    await expectDuoError(client.healthCheck(), 'duo_invalid_client', assertions());
  });

  it('FAIL for any other reason: duo_unavailable, with Duo\'s message and detail', async () => {
    answer = () => [200, { stat: 'FAIL', code: 50001, message: 'Service unavailable', message_detail: 'Try again later' }];
    const error = await expectDuoError(client.healthCheck(), 'duo_unavailable', assertions());
    expect(error.message).toContain('Service unavailable: Try again later');
  });

  it('OAuth-style invalid_client: duo_invalid_client', async () => {
    answer = () => [400, { error: 'invalid_client', error_description: 'The provided client_assertion was invalid.' }];
    const error = await expectDuoError(client.healthCheck(), 'duo_invalid_client', assertions());
    expect(error.message).toContain('The provided client_assertion was invalid.');
  });

  it('OAuth-style other error (Duo reachable, refusing): duo_request_rejected naming the error, never duo_unavailable', async () => {
    answer = () => [400, { error: 'invalid_request', error_description: 'Missing client_id' }];
    const error = await expectDuoError(client.healthCheck(), 'duo_request_rejected', assertions());
    expect(error.message).toContain('invalid_request: Missing client_id');
  });

  it.each<[string, number, Record<string, unknown>]>([
    ['HTTP 403 with a FAIL 40301', 403, { stat: 'FAIL', code: 40301, message: 'Access forbidden' }],
    ['HTTP 404 with a FAIL 40401', 404, { stat: 'FAIL', code: 40401, message: 'Resource not found' }],
    ['HTTP 200 with a FAIL 40301', 200, { stat: 'FAIL', code: 40301, message: 'Access forbidden' }],
  ])('a refusal (%s) is duo_request_rejected: it must not open fail mode "open"', async (_name, status, body) => {
    answer = () => [status, body];
    await expectDuoError(client.healthCheck(), 'duo_request_rejected', assertions());
  });

  it.each<[string, unknown]>([
    ['stat OK without response', { stat: 'OK' }],
    ['stat OK without timestamp', { stat: 'OK', response: {} }],
    ['stat OK with a string timestamp', { stat: 'OK', response: { timestamp: '1573068322' } }],
    ['stat OK with a null response', { stat: 'OK', response: null }],
    ['an empty object', {}],
    ['an array', [{ stat: 'OK' }]],
    ['a JSON string', 'OK'],
    ['JSON null', null],
    ['FAIL without any message', { stat: 'FAIL' }],
  ])('missing data (%s): duo_upstream_invalid', async (_name, body) => {
    answer = () => [200, body];
    if (typeof body === 'string') answer = () => [200, JSON.stringify(body)];
    await expectDuoError(client.healthCheck(), 'duo_upstream_invalid', assertions());
  });

  it('truncates and cleans a huge, hostile message_detail', async () => {
    const hostile = `\u001b[2J\r\nFAKE LOG LINE ${'A'.repeat(10_000)}`;
    answer = () => [200, { stat: 'FAIL', message: 'Service unavailable', message_detail: hostile }];
    const error = await expectDuoError(client.healthCheck(), 'duo_unavailable', assertions());
    expect(error.message.length).toBeLessThan(400);
    expect(error.message).not.toMatch(/[\u0000-\u001f\u007f]/);
    expect(error.message).not.toContain('A'.repeat(200));
  });
});

describe('healthCheck: what Duo receives', () => {
  it('a form with client_id and an HS512 client assertion for the health check URL', async () => {
    const before = nowSeconds();
    await client.healthCheck();
    expect(server.requests).toHaveLength(1);
    const request = server.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/oauth/v1/health_check');
    expect(request.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    expect(Object.keys(request.form).sort()).toEqual(['client_assertion', 'client_id']);
    expect(request.form.client_id).toBe(CLIENT_ID);

    const assertion = request.form.client_assertion ?? '';
    expect(decodeProtectedHeader(assertion).alg).toBe('HS512');
    const { payload } = await jwtVerify(assertion, SECRET_BYTES, {
      algorithms: ['HS512'],
      issuer: CLIENT_ID,
      subject: CLIENT_ID,
      audience: `${server.url}/oauth/v1/health_check`,
    });
    expect(payload.aud).toBe(`${server.url}/oauth/v1/health_check`);
    expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{36}$/);
    expect(typeof payload.iat).toBe('number');
    expect(typeof payload.exp).toBe('number');
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
    expect(payload.iat as number).toBeGreaterThanOrEqual(before);
    expect(payload.iat as number).toBeLessThanOrEqual(nowSeconds());
  });

  it('a fresh jti on every call', async () => {
    await client.healthCheck();
    await client.healthCheck();
    const [a, b] = server.requests.map((r) => r.form.client_assertion ?? '');
    expect(a).not.toBe(b);
    const jtiA = (await jwtVerify(a!, SECRET_BYTES)).payload.jti;
    const jtiB = (await jwtVerify(b!, SECRET_BYTES)).payload.jti;
    expect(jtiA).not.toBe(jtiB);
  });

  it('a User-Agent nestjs-duo/<package.json version>', async () => {
    await client.healthCheck();
    const userAgent = String(server.requests[0]!.headers['user-agent']);
    expect(NESTJS_DUO_VERSION).toBe(pkg.version);
    expect(userAgent.startsWith(`nestjs-duo/${pkg.version} `)).toBe(true);
    expect(userAgent).toContain(`node/${process.versions.node}`);
    expect(server.requests[0]!.headers.accept).toBe('application/json');
  });

  it('never the secret, anywhere in the request', async () => {
    await client.healthCheck();
    const request = server.requests[0]!;
    expect(request.body).not.toContain('Zq7sEcReT');
    expect(JSON.stringify(request.headers)).not.toContain('Zq7sEcReT');
    expect(request.path).not.toContain('Zq7sEcReT');
  });
});

function expectNoAssertionLeak(error: Error): void {
  for (const assertion of assertions()) {
    // Not even the signature part.
    const signature = assertion.split('.')[2] ?? '';
    expect(error.message).not.toContain(signature);
    expect(JSON.stringify(error)).not.toContain(signature);
  }
}
