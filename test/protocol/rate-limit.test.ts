/**
 * HTTP 429 from Duo: "Duo is up but refusing for now". It is duo_rate_limited
 * (503) on every endpoint, with Duo's Retry-After when it sends one, and never
 * duo_request_rejected nor duo_unavailable.
 */
import { inspect } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoClient, DuoError } from '../../src/protocol/index.js';
import { parseRetryAfter } from '../../src/protocol/http.js';
import { expectDuoError, localOptions, nowSeconds, sendJson, startServer, type TestServer } from './helpers.js';
import { DUO_ERROR_STATUS, statusOf } from '../../src/duo.errors.js';

const CODE = 'duoCode-rate-limited-0123456789';
const NONCE = 'nonce-rate-limited-0123456789ab';
const TOO_MANY = { stat: 'FAIL', code: 42901, message: 'Too Many Requests' };

let server: TestServer;
let client: DuoClient;
/** What the crafted Duo answers next: [status, body, headers]. */
let answer: () => [number, unknown, Record<string, string>];

beforeAll(async () => {
  server = await startServer((_req, res) => {
    const [status, body, headers] = answer();
    sendJson(res, status, body, headers);
  });
  client = new DuoClient(localOptions(server.url));
});
afterAll(async () => {
  await client.close();
  await server.close();
});
beforeEach(() => {
  server.requests.length = 0;
  answer = () => [429, TOO_MANY, { 'retry-after': '30' }];
});

describe('DuoError: duo_rate_limited and retryAfterSeconds', () => {
  it('duo_rate_limited is HTTP 503', () => {
    expect(DUO_ERROR_STATUS.duo_rate_limited).toBe(503);
  });

  it('carries retryAfterSeconds read-only, in toJSON and inspect', () => {
    const error = new DuoError('duo_rate_limited', 'Duo is rate-limiting us.', { retryAfterSeconds: 42 });
    expect(error.retryAfterSeconds).toBe(42);
    expect(() => {
      (error as { retryAfterSeconds?: number }).retryAfterSeconds = 1;
    }).toThrow(TypeError);
    expect(error.retryAfterSeconds).toBe(42);
    expect(JSON.parse(JSON.stringify(error))).toEqual({ name: 'DuoError', code: 'duo_rate_limited', message: 'Duo is rate-limiting us.', retryAfterSeconds: 42 });
    expect(inspect(error)).toBe('DuoError [duo_rate_limited]: Duo is rate-limiting us. (retry after 42 s)');
  });

  it('leaves retryAfterSeconds out entirely when it is not set', () => {
    const error = new DuoError('duo_rate_limited', 'Duo is rate-limiting us.');
    expect(error.retryAfterSeconds).toBeUndefined();
    expect(Object.keys(JSON.parse(JSON.stringify(error))).sort()).toEqual(['code', 'message', 'name']);
  });

  it.each<[unknown, number | undefined]>([
    [0, 1],
    [0.2, 1],
    [12.1, 13],
    [7200, 3600],
    [Number.POSITIVE_INFINITY, undefined],
    [Number.NaN, undefined],
    [-5, 1],
    ['30', undefined],
  ])('clamps a constructor value %s to %s', (value, expected) => {
    const error = new DuoError('duo_rate_limited', 'Duo is rate-limiting us.', { retryAfterSeconds: value as number });
    expect(error.retryAfterSeconds).toBe(expected);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 15, 12, 0, 0);
  it.each<[string, unknown, number | undefined]>([
    ['delta-seconds', '120', 120],
    ['delta-seconds with white space around', ' 45 ', 45],
    ['0, clamped up to 1', '0', 1],
    ['a day, clamped down to 3600', '86400', 3600],
    ['a huge number', '99999999999999999999999', 3600],
    ['an HTTP date 90 s ahead', new Date(now + 90_000).toUTCString(), 90],
    ['an HTTP date two days ahead', new Date(now + 2 * 86_400_000).toUTCString(), 3600],
    ['an HTTP date in the past', new Date(now - 60_000).toUTCString(), 1],
    ['absent', undefined, undefined],
    ['empty', '', undefined],
    ['a word', 'soon', undefined],
    ['a negative number', '-5', undefined],
    ['a decimal', '1.5', undefined],
    ['a number with a unit', '30s', undefined],
    ['a date in another format', '2026-01-15T12:01:30Z', undefined],
    ['an obsolete RFC 850 date', 'Thursday, 15-Jan-26 12:01:30 GMT', undefined],
    ['a repeated header', ['30', '60'], undefined],
    ['a number value', 30, undefined],
  ])('%s: %j -> %s', (_name, value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });

  it('rounds a date up to whole seconds (89.5 s away is 90)', () => {
    expect(parseRetryAfter(new Date(now + 90_000).toUTCString(), now + 500)).toBe(90);
  });
});

describe('HTTP 429 from Duo', () => {
  it('in the health check: duo_rate_limited with Retry-After, never duo_request_rejected', async () => {
    const error = await expectDuoError(client.healthCheck(), 'duo_rate_limited');
    expect(statusOf(error.code)).toBe(503);
    expect(error.retryAfterSeconds).toBe(30);
    expect(error.message).toMatch(/429/);
    expect(error.message).toMatch(/health check/);
    expect(error.message).toMatch(/30 s/);
    expect(JSON.parse(JSON.stringify(error))).toMatchObject({ code: 'duo_rate_limited', retryAfterSeconds: 30 });
  });

  it('in the token exchange: duo_rate_limited with Retry-After (today it was duo_request_rejected)', async () => {
    answer = () => [429, { error: 'slow_down', error_description: 'Too many requests' }, { 'retry-after': '120' }];
    const error = await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), 'duo_rate_limited', [CODE, NONCE]);
    expect(error.retryAfterSeconds).toBe(120);
    expect(error.message).toMatch(/token exchange/);
  });

  it('an HTTP-date Retry-After is turned into seconds', async () => {
    answer = () => [429, TOO_MANY, { 'retry-after': new Date(Date.now() + 600_000).toUTCString() }];
    const error = await expectDuoError(client.healthCheck(), 'duo_rate_limited');
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(595);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(600);
  });

  it('without a Retry-After (or an unreadable one): retryAfterSeconds is absent', async () => {
    answer = () => [429, TOO_MANY, {}];
    const bare = await expectDuoError(client.healthCheck(), 'duo_rate_limited');
    expect(bare.retryAfterSeconds).toBeUndefined();
    expect(JSON.parse(JSON.stringify(bare))).not.toHaveProperty('retryAfterSeconds');
    answer = () => [429, TOO_MANY, { 'retry-after': 'later, maybe' }];
    expect((await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), 'duo_rate_limited')).retryAfterSeconds).toBeUndefined();
  });

  it('a 429 with a body that is not JSON is still duo_rate_limited', async () => {
    answer = () => [429, '<html>Too Many Requests</html>', { 'retry-after': '5' }];
    expect((await expectDuoError(client.healthCheck(), 'duo_rate_limited')).retryAfterSeconds).toBe(5);
  });

  it("Duo's rate-limit FAIL code 42901 in a non-429 answer is duo_rate_limited too", async () => {
    answer = () => [200, TOO_MANY, {}];
    await expectDuoError(client.healthCheck(), 'duo_rate_limited');
    answer = () => [400, TOO_MANY, {}];
    await expectDuoError(client.exchangeAuthorizationCode(CODE, 'alice', NONCE), 'duo_rate_limited');
  });

  it('the connection stays usable after a 429', async () => {
    const before = server.connections;
    await expectDuoError(client.healthCheck(), 'duo_rate_limited');
    answer = () => [200, { stat: 'OK', response: { timestamp: nowSeconds() } }, {}];
    await expect(client.healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    expect(server.connections - before).toBeLessThanOrEqual(1);
  });
});
