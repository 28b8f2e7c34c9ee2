import 'reflect-metadata';
import { Controller, Get, Module, Post, Req, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import session from 'express-session';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { guardSessionStore } from '../../src/session-store.middleware.js';
import { RedisServer } from '../support/redis-server.js';
import { CLIENT_PAIRS, type NodeClient } from './clients.js';
import { CookieJar } from './instances.js';

type Req = Record<string, any>;

let beforeReply: (() => Promise<void>) | undefined;
const seenRequests: Req[] = [];

@Controller()
class VisitController {
  @Post('visit')
  async visit(@Req() req: Req): Promise<{ visits: number }> {
    req.session.visits = (req.session.visits ?? 0) + 1;
    await beforeReply?.();
    return { visits: req.session.visits };
  }

  @Get('peek')
  peek(@Req() req: Req): { hasSession: boolean; visits: number | null } {
    seenRequests.push(req);
    return { hasSession: req.session !== undefined, visits: req.session?.visits ?? null };
  }
}

@Module({ controllers: [VisitController] })
class AppModule {}

let server: RedisServer;
let redis: NodeClient;
let app: INestApplication;
let baseUrl: string;
const reported: unknown[] = [];
/** How many times the routes after the session middleware ran, per request id. */
const runs = new Map<string, number>();

beforeAll(async () => {
  server = await RedisServer.start();
});

afterAll(async () => {
  await server?.close();
});

beforeEach(async () => {
  beforeReply = undefined;
  reported.length = 0;
  seenRequests.length = 0;
  if (!server.running) await server.restart();
  await expect.poll(() => redis.isReady, { timeout: 3000, interval: 20 }).toBe(true);
});

let nextId = 0;
async function call(jar: CookieJar, method: 'GET' | 'POST', path: string): Promise<{ status: number; body: string; id: string; ms: number }> {
  const id = String(++nextId);
  const started = performance.now();
  const response = await fetch(`${baseUrl}${path}`, { method, headers: { cookie: jar.header(), 'x-request-id': id }, signal: AbortSignal.timeout(5000) });
  jar.update(response);
  return { status: response.status, body: await response.text(), id, ms: performance.now() - started };
}

async function sessionWithOneVisit(): Promise<CookieJar> {
  const jar = new CookieJar();
  const first = await call(jar, 'POST', '/visit');
  expect(first).toMatchObject({ status: 201, body: '{"visits":1}' });
  expect(jar.header()).toMatch(/^connect\.sid=/);
  return jar;
}

describe.each(CLIENT_PAIRS.map((pair) => [pair.name, pair] as const))('guardSessionStore (%s)', (_name, pair) => {
  beforeAll(async () => {
    if (!server.running) await server.restart();
    redis = await pair.redis.connect({ url: server.url });
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.use(
      guardSessionStore(
        session({ store: new pair.sessions.RedisStore({ client: redis }), secret: 'a-session-secret-for-this-test', resave: false, saveUninitialized: false }),
        { timeoutMs: 400, onError: (error) => reported.push(error) },
      ),
    );
    app.use((req: Req, _res: unknown, next: () => void) => {
      const id = String(req.headers['x-request-id']);
      runs.set(id, (runs.get(id) ?? 0) + 1);
      next();
    });
    await app.listen(0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
  });

  afterAll(async () => {
    await app?.close();
    redis?.destroy();
  });

  it('passes a working session through untouched', async () => {
    const jar = await sessionWithOneVisit();
    expect((await call(jar, 'POST', '/visit')).body).toBe('{"visits":2}');
    expect(JSON.parse((await call(jar, 'GET', '/peek')).body)).toEqual({ hasSession: true, visits: 2 });
    expect(reported).toEqual([]);
  });

  it('store down while loading: the request goes on once, without a session, instead of an Express 500', async () => {
    const jar = await sessionWithOneVisit();
    await server.stop();
    const peek = await call(jar, 'GET', '/peek');
    expect(peek.status).toBe(200);
    expect(JSON.parse(peek.body)).toEqual({ hasSession: false, visits: null });
    expect(runs.get(peek.id)).toBe(1);
    expect(reported).toHaveLength(1);
  });

  it('a save that fails after the response was written goes to onError; the response arrives whole', async () => {
    const jar = await sessionWithOneVisit();
    beforeReply = () => server.stop(); // Redis dies between loading the session and saving it
    const visit = await call(jar, 'POST', '/visit');
    expect(visit).toMatchObject({ status: 201, body: '{"visits":2}' });
    await new Promise((resolve) => setTimeout(resolve, 50)); // express-session reports the failed save on a later tick
    expect(reported).toHaveLength(1);
    expect(runs.get(visit.id)).toBe(1);
  });

  it('store hung: the request goes on without a session after timeoutMs, and a late answer attaches nothing', async () => {
    const jar = await sessionWithOneVisit();
    server.pause();
    let peek;
    try {
      peek = await call(jar, 'GET', '/peek');
    } finally {
      server.resume();
    }
    expect(peek.status).toBe(200);
    expect(JSON.parse(peek.body)).toEqual({ hasSession: false, visits: null });
    expect(peek.ms).toBeGreaterThanOrEqual(390);
    expect(peek.ms).toBeLessThan(1500);
    expect(reported.map(String)).toEqual(['Error: The session store did not answer within 400 ms.']);
    // Redis answers the held GET once resumed; express-session then tries to set the session, which must not stick.
    await redis.ping();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seenRequests).toHaveLength(1);
    expect(seenRequests[0]!.session).toBeUndefined();
    expect(seenRequests[0]!.sessionID).toBeUndefined();
    expect(runs.get(peek.id)).toBe(1);
  });
});
