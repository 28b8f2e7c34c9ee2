import type { ServerResponse } from 'node:http';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { DuoClient } from '../../src/protocol/index.js';
import { DuoHttp, MAX_RESPONSE_BYTES, type DuoHttpOptions } from '../../src/protocol/http.js';
import { expectDuoError, localOptions, nowSeconds, sendJson, sleep, startServer, type Handler, type TestServer } from './helpers.js';
import { statusOf } from '../../src/duo.errors.js';

const FORM = { client_id: 'DIWJ8X6AEYOR5OMC6TQ1', client_assertion: 'assertion.value.sensitive-0123456789' };
const SENSITIVE = [FORM.client_assertion];

const servers: TestServer[] = [];
const closables: Array<{ close(): Promise<void> }> = [];

async function serve(handler: Handler): Promise<TestServer> {
  const server = await startServer(handler);
  servers.push(server);
  return server;
}

function http(options: Partial<DuoHttpOptions> = {}): DuoHttp {
  const made = new DuoHttp({ timeoutMs: 3000, maxConcurrentRequests: 8, userAgent: 'nestjs-duo/test', ...options });
  closables.push(made);
  return made;
}

function duo(baseUrl: string, options: Parameters<typeof localOptions>[1] = {}): DuoClient {
  const made = new DuoClient(localOptions(baseUrl, options));
  closables.push(made);
  return made;
}

/** Writes one byte every `everyMs` until the client goes away. */
function trickle(res: ServerResponse, everyMs: number): void {
  const timer = setInterval(() => res.write('a'), everyMs);
  res.on('close', () => clearInterval(timer));
}

const healthy: Handler = (_req, res) => sendJson(res, 200, { stat: 'OK', response: { timestamp: nowSeconds() } });

afterEach(async () => {
  await Promise.all(closables.splice(0).map((c) => c.close().catch(() => undefined)));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

describe('DuoHttp.postForm: the request and the answer', () => {
  it('posts form-urlencoded with the User-Agent and returns status and parsed body, whatever the 2xx/4xx status', async () => {
    const server = await serve((_req, res) => sendJson(res, 400, { error: 'invalid_grant' }));
    const result = await http().postForm(`${server.url}/oauth/v1/token`, { ...FORM, weird: 'a b&c=d+e' }, 'token exchange');
    expect(result).toEqual({ status: 400, body: { error: 'invalid_grant' } });
    const request = server.requests[0]!;
    expect(request.method).toBe('POST');
    expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(request.headers['user-agent']).toBe('nestjs-duo/test');
    expect(request.headers.accept).toBe('application/json');
    expect(request.form).toEqual({ ...FORM, weird: 'a b&c=d+e' });
  });
});

describe('DuoHttp.postForm: failures', () => {
  it.each([500, 502, 503, 504])('HTTP %i: duo_unavailable (503)', async (status) => {
    const server = await serve((_req, res) => sendJson(res, status, { stat: 'FAIL', message: 'internal' }));
    const error = await expectDuoError(http().postForm(`${server.url}/x`, FORM, 'health check'), 'duo_unavailable', SENSITIVE);
    expect(statusOf(error.code)).toBe(503);
    expect(error.message).toContain(String(status));
  });

  it('HTTP 500 with an HTML body is still duo_unavailable, through DuoClient too', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end('<html><body>Internal Server Error</body></html>');
    });
    await expectDuoError(duo(server.url).healthCheck(), 'duo_unavailable');
  });

  it('connection refused: duo_unavailable naming only the error code', async () => {
    const gone = await startServer(healthy);
    const url = `${gone.url}/oauth/v1/health_check`;
    await gone.close();
    const error = await expectDuoError(http().postForm(url, FORM, 'health check'), 'duo_unavailable', SENSITIVE);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.message).not.toContain(url);
    // Through DuoClient too.
    await expectDuoError(duo(gone.url).healthCheck(), 'duo_unavailable');
  });

  it('a server that never answers: duo_timeout (504) at timeoutMs', async () => {
    const server = await serve(() => {
      /* never answers */
    });
    const client = duo(server.url, { timeoutMs: 300 });
    const started = Date.now();
    const error = await expectDuoError(client.healthCheck(), 'duo_timeout');
    const elapsed = Date.now() - started;
    expect(statusOf(error.code)).toBe(504);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1000);
    expect(client.inFlight).toBe(0);
  });

  it('a server that sends headers, then a byte every 100 ms forever: cut off at the deadline', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"stat":"OK","response":{"timestamp":1,"pad":"');
      trickle(res, 100);
    });
    const client = duo(server.url, { timeoutMs: 300 });
    const started = Date.now();
    const error = await expectDuoError(client.healthCheck(), 'duo_timeout');
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1000);
    expect(error.message).toContain('300 ms');
  });

  it('a server that sends its headers a byte at a time: cut off at the deadline', async () => {
    const server = await serve((_req, res) => {
      const socket = res.socket!;
      const head = 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ' + 'a'.repeat(1000);
      let i = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        socket.write(head[i++ % head.length]!);
      }, 50);
      socket.on('close', () => clearInterval(timer));
    });
    const started = Date.now();
    await expectDuoError(http({ timeoutMs: 300 }).postForm(`${server.url}/x`, FORM, 'health check'), 'duo_timeout', SENSITIVE);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  describe('a body over 64 KiB: duo_upstream_invalid', () => {
    const big = JSON.stringify({ stat: 'OK', response: { timestamp: 1, pad: 'p'.repeat(MAX_RESPONSE_BYTES) } });

    it('with a content-length', async () => {
      expect(MAX_RESPONSE_BYTES).toBe(64 * 1024);
      const server = await serve((_req, res) => sendJson(res, 200, big));
      await expectDuoError(http().postForm(`${server.url}/x`, FORM, 'health check'), 'duo_upstream_invalid', SENSITIVE);
    });

    it('without a content-length (chunked)', async () => {
      const server = await serve((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        for (let i = 0; i < big.length; i += 4096) res.write(big.slice(i, i + 4096));
        res.end();
      });
      const error = await expectDuoError(http().postForm(`${server.url}/x`, FORM, 'health check'), 'duo_upstream_invalid', SENSITIVE);
      expect(error.message).toContain(String(MAX_RESPONSE_BYTES));
    });

    it('chunked and endless: refused as soon as the cap is passed, not at the deadline', async () => {
      const server = await serve((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const timer = setInterval(() => res.write('x'.repeat(16 * 1024)), 5);
        res.on('close', () => clearInterval(timer));
      });
      const started = Date.now();
      await expectDuoError(http({ timeoutMs: 5000 }).postForm(`${server.url}/x`, FORM, 'health check'), 'duo_upstream_invalid', SENSITIVE);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('a declared content-length over the cap is refused at once, without reading the body', async () => {
      const server = await serve((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) });
        res.write('{"stat":"OK"');
        // ...and then nothing more.
      });
      const started = Date.now();
      await expectDuoError(http({ timeoutMs: 2000 }).postForm(`${server.url}/x`, FORM, 'health check'), 'duo_upstream_invalid', SENSITIVE);
      expect(Date.now() - started).toBeLessThan(1000);
    });

    it('a body just under the cap is accepted', async () => {
      const body = JSON.stringify({ stat: 'OK', pad: 'p'.repeat(MAX_RESPONSE_BYTES - 100) });
      expect(body.length).toBeLessThanOrEqual(MAX_RESPONSE_BYTES);
      const server = await serve((_req, res) => sendJson(res, 200, body));
      const result = await http().postForm(`${server.url}/x`, FORM, 'health check');
      expect((result.body as { stat: string }).stat).toBe('OK');
    });

    it('honours a smaller maxResponseBytes', async () => {
      const server = await serve((_req, res) => sendJson(res, 200, { stat: 'OK', pad: 'p'.repeat(200) }));
      await expectDuoError(http({ maxResponseBytes: 100 }).postForm(`${server.url}/x`, FORM, 'health check'), 'duo_upstream_invalid', SENSITIVE);
    });
  });

  it.each([301, 302, 303, 307, 308])('a %i redirect: duo_upstream_invalid, and the target is never requested', async (status) => {
    const target = await serve(healthy);
    const server = await serve((req, res) => {
      if (req.url === '/moved') return healthy(req, res, server.requests.at(-1)!);
      res.writeHead(status, { location: status === 302 ? `${target.url}/oauth/v1/health_check` : '/moved', 'content-length': '0' });
      res.end();
    });
    const client = duo(server.url);
    const error = await expectDuoError(client.healthCheck(), 'duo_upstream_invalid');
    expect(error.message).toContain(String(status));
    await sleep(50);
    expect(target.requests).toHaveLength(0);
    expect(target.connections).toBe(0);
    expect(server.requests.map((r) => r.path)).toEqual(['/oauth/v1/health_check']);
  });

  // A refused answer must be discarded quietly. An undici body destroyed without
  // an 'error' listener emits RequestAbortedError on the stream with nobody to
  // hear it: an uncaught exception that ends the whole Node process.
  it.each<[string, Handler]>([
    [
      'a redirect',
      (_req, res) => {
        res.writeHead(302, { location: '/elsewhere', 'content-length': '0' });
        res.end();
      },
    ],
    ['a complete answer over the cap (content-length declared)', (_req, res) => sendJson(res, 200, { stat: 'OK', pad: 'p'.repeat(200) })],
  ])('refusing %s leaves no unhandled stream error behind (it would crash the process)', async (_name, handler) => {
    const server = await serve(handler);
    const transport = http({ maxResponseBytes: 100 });
    const uncaught: unknown[] = [];
    const listener = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', listener);
    try {
      await expectDuoError(transport.postForm(`${server.url}/x`, FORM, 'health check'), 'duo_upstream_invalid', SENSITIVE);
      await sleep(100);
    } finally {
      process.off('uncaughtException', listener);
    }
    expect(uncaught.map((error) => String(error))).toEqual([]);
  });

  it.each<[string, number, string, string]>([
    ['plain text', 200, 'text/plain', 'hello'],
    ['HTML', 200, 'text/html', '<html>oops</html>'],
    ['an HTML 404 page', 404, 'text/html', '<html>Not Found</html>'],
    ['an empty body', 200, 'application/json', ''],
    ['truncated JSON', 200, 'application/json', '{"stat":"OK","response":{'],
  ])('%s: duo_upstream_invalid', async (_name, status, type, body) => {
    const server = await serve((_req, res) => {
      res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
    const error = await expectDuoError(http().postForm(`${server.url}/x`, FORM, 'health check'), 'duo_upstream_invalid', SENSITIVE);
    if (body.length > 8) expect(error.message).not.toContain(body);
  });
});

describe('DuoHttp: connection reuse and the cap on calls in flight', () => {
  it('keeps the connection alive: sequential calls reuse their TCP connection', async () => {
    const server = await serve(healthy);
    const client = duo(server.url);
    for (let i = 0; i < 12; i++) await client.healthCheck();
    expect(server.requests).toHaveLength(12);
    // One connection; undici may open a second when a call is dispatched in the very tick the
    // previous one hands its socket back (seen once on Node 22 under load). Never one per call.
    expect(server.connections).toBeLessThanOrEqual(2);
  });

  it('keeps the connection alive across error answers too', async () => {
    let n = 0;
    const server = await serve((_req, res) => (n++ % 2 ? sendJson(res, 400, { error: 'invalid_client' }) : healthy(_req, res, server.requests.at(-1)!)));
    const client = duo(server.url);
    for (let i = 0; i < 6; i++) {
      await client.healthCheck();
      await expectDuoError(client.healthCheck(), 'duo_invalid_client');
    }
    expect(server.requests).toHaveLength(12);
    // undici hands a socket back to its pool one event-loop turn after the answer: a call made in
    // the same turn (signing is synchronous) may open a second connection. Never one per call.
    expect(server.connections).toBeLessThanOrEqual(2);
  });

  it('maxConcurrentRequests 1: a second concurrent call fails at once with duo_overloaded (503)', async () => {
    const server = await serve(async (req, res) => {
      if (req.url?.endsWith('/token')) {
        await sleep(400);
        sendJson(res, 400, { error: 'invalid_grant', error_description: 'used' });
        return;
      }
      healthy(req, res, undefined as never);
    });
    const client = duo(server.url, { maxConcurrentRequests: 1 });
    const first = client.exchangeAuthorizationCode('first-code', 'alice', 'n0nce-0123456789abcdef');
    await vi.waitFor(() => expect(client.inFlight).toBe(1), { timeout: 1000, interval: 5 });
    const started = Date.now();
    const error = await expectDuoError(client.exchangeAuthorizationCode('second-code', 'alice', 'n0nce-0123456789abcdef'), 'duo_overloaded');
    expect(Date.now() - started).toBeLessThan(100);
    expect(statusOf(error.code)).toBe(503);
    // A full cap is not "Duo is down": health checks have a lane of their own.
    await expect(client.healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    await expectDuoError(first, 'code_invalid');
    expect(client.inFlight).toBe(0);
    // Once the first call is done, the next one goes through.
    await expectDuoError(client.exchangeAuthorizationCode('third-code', 'alice', 'n0nce-0123456789abcdef'), 'code_invalid');
    expect(server.requests.filter((r) => r.path.endsWith('/token'))).toHaveLength(2);
  });

  it('health checks are capped in their own lane (4 at once)', async () => {
    const server = await serve(async (req, res, recorded) => {
      await sleep(300);
      healthy(req, res, recorded);
    });
    const client = duo(server.url, { maxConcurrentRequests: 1 });
    const four = Array.from({ length: 4 }, () => client.healthCheck());
    await vi.waitFor(() => expect(server.requests.length).toBeGreaterThanOrEqual(1), { timeout: 1000, interval: 5 });
    await expectDuoError(client.healthCheck(), 'duo_overloaded');
    await Promise.all(four);
  });

  it('DuoHttp counts a call in flight from the moment it starts, and frees it after any failure', async () => {
    const server = await serve(async (_req, res) => {
      await sleep(200);
      sendJson(res, 500, {});
    });
    const transport = http({ maxConcurrentRequests: 2 });
    const a = transport.postForm(`${server.url}/x`, FORM, 'health check');
    const b = transport.postForm(`${server.url}/x`, FORM, 'health check');
    expect(transport.inFlight).toBe(2);
    await expectDuoError(transport.postForm(`${server.url}/x`, FORM, 'health check'), 'duo_overloaded', SENSITIVE);
    await expectDuoError(a, 'duo_unavailable', SENSITIVE);
    await expectDuoError(b, 'duo_unavailable', SENSITIVE);
    expect(transport.inFlight).toBe(0);
  });
});
