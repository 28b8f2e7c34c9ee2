import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RedisClientType } from 'redis';
import { DuoEmulator } from '../../src/testing/index.js';
import { RedisServer } from '../support/redis-server.js';
import { CLIENT_PAIRS } from './clients.js';
import { CookieJar, connectRedis, pathOf, request, startInstance, type Instance } from './instances.js';

let server: RedisServer;
let emulator: DuoEmulator;
let admin: RedisClientType;
let a: Instance;
let b: Instance;
let c: Instance;
let all: Instance[];

beforeAll(async () => {
  [server, emulator] = await Promise.all([RedisServer.start(), DuoEmulator.start()]);
  admin = await connectRedis(server.url);
});

afterAll(async () => {
  admin?.destroy();
  await emulator?.close();
  await server?.close();
});

beforeEach(() => {
  emulator.setMode('approve');
  emulator.resetStats();
});

/** Logs in on `on` and opens the protected page there: a 303 to Duo and a pending login in Redis. */
async function startLogin(jar: CookieJar, on: Instance, username = 'alice'): Promise<{ back: string; state: string }> {
  expect((await request(on, jar, '/login', { method: 'POST', json: { username } })).status).toBe(201);
  const start = await request(on, jar, '/account');
  expect(start.status).toBe(303);
  const location = start.headers.get('location')!;
  expect(location.startsWith(`${emulator.baseUrl}/oauth/v1/authorize?`)).toBe(true);
  const back = await emulator.authorize(location);
  return { back, state: new URL(back).searchParams.get('state')! };
}

/** The RedisTransactionStore keys (one per session, duo:tx:{<binding>}) whose pending logins include this state. */
async function pendingKeysHolding(state: string): Promise<string[]> {
  const keys = await admin.keys('duo:tx:{*}');
  const values = await Promise.all(keys.map((key) => admin.get(key)));
  return keys.filter((_key, i) => values[i]?.includes(state));
}

/** A whole login over three instances: started on `first`, finished on `second`; returns the jar of a verified session. */
async function verifiedSession(first: Instance, second: Instance): Promise<CookieJar> {
  const jar = new CookieJar();
  const { back } = await startLogin(jar, first);
  const callback = await request(second, jar, pathOf(back));
  expect(callback.status).toBe(303);
  return jar;
}

describe.each(CLIENT_PAIRS.map((pair) => [pair.name, pair] as const))('several instances sharing Redis (%s)', (_name, { redis, sessions }) => {
  beforeAll(async () => {
    [a, b, c] = await Promise.all(['A', 'B', 'C'].map((name) => startInstance(name, { connect: () => redis.connect({ url: server.url }), sessions }, emulator)));
    all = [a, b, c];
  });

  afterAll(async () => {
    // Nothing secret reached any instance's log.
    for (const instance of all ?? []) expect(instance.logger.text()).not.toContain(emulator.clientSecret);
    await Promise.all((all ?? []).map((instance) => instance.close()));
  });

  it("a victim's state sent from another session neither completes nor cancels the victim's login", async () => {
    const victim = new CookieJar();
    const { back } = await startLogin(victim, a);
    const attacker = new CookieJar();
    await startLogin(attacker, b); // the attacker has a session of their own, with its own binding
    const stolen = await request(b, attacker, pathOf(back), { accept: 'application/json' });
    expect(stolen.status).toBe(400);
    expect(((await stolen.json()) as { error: string }).error).toBe('state_unknown');
    const mine = await request(c, victim, pathOf(back));
    expect(mine.status).toBe(303);
    expect((await request(a, victim, '/account')).status).toBe(200);
  });

  it('a login started on A finishes on B, and the page then opens on C', async () => {
    const jar = new CookieJar();
    const { back, state } = await startLogin(jar, a);
    // The pending login is in Redis, not in the session.
    expect(await pendingKeysHolding(state)).toHaveLength(1);
    const sessionKeys = await admin.keys('sess:*');
    const sessions = await Promise.all(sessionKeys.map((key) => admin.get(key)));
    expect(sessions.some((value) => value?.includes(state))).toBe(false);

    const callback = await request(b, jar, pathOf(back));
    expect(callback.status).toBe(303);
    expect(callback.headers.get('location')).toBe('/account');
    expect(await pendingKeysHolding(state)).toHaveLength(0);

    const page = await request(c, jar, '/account');
    expect(page.status).toBe(200);
    expect(await page.text()).toBe('account of alice');
    // And on the others too: the session lives in Redis.
    for (const instance of [a, b]) expect((await request(instance, jar, '/account')).status).toBe(200);
    expect(emulator.stats.tokenExchanges).toBe(1);
  });

  it('50 parallel callbacks carrying one state, spread over three instances, give one token exchange and one 303', async () => {
    const jar = new CookieJar();
    const { back } = await startLogin(jar, a);
    const path = pathOf(back);
    // Every callback carries the session cookie as it was before any of them answered.
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => request(all[i % 3]!, jar.copy(), path, { accept: 'application/json' })));
    const statuses = results.map((response) => response.status);
    expect(emulator.stats.tokenExchanges).toBe(1);
    expect(statuses.filter((status) => status === 303)).toHaveLength(1);
    expect(statuses.filter((status) => status !== 303).every((status) => status === 400)).toBe(true);
    const refused = await Promise.all(results.filter((response) => response.status === 400).map((response) => response.json() as Promise<{ error: string }>));
    expect(new Set(refused.map((body) => body.error))).toEqual(new Set(['state_unknown']));
  });

  it('Redis hung: requests answer 503 within the deadline, nothing is let through, and the sessions work again when it answers', async () => {
    const verified = await verifiedSession(a, b);
    const pending = new CookieJar();
    const { back } = await startLogin(pending, c);
    server.pause();
    try {
      const probes = all.flatMap((instance) =>
        [
          [verified, '/account'],
          [pending, '/account'],
          [pending, pathOf(back)],
        ].map(([jar, path]) => ({ instance, jar: jar as CookieJar, path: path as string })),
      );
      const responses = await Promise.all(probes.map(({ instance, jar, path }) => request(instance, jar, path, { accept: 'application/json' })));
      for (const [i, response] of responses.entries()) {
        expect(response.status, `${probes[i]!.instance.name} ${probes[i]!.path}`).toBe(503);
        expect(((await response.json()) as { error: string }).error).toBe('session_unavailable');
        expect(response.ms).toBeLessThan(2000);
      }
    } finally {
      server.resume();
    }
    // Redis kept its data: the verified session opens the page again, the pending login still completes.
    await expect.poll(async () => (await request(c, verified, '/account')).status, { timeout: 5000, interval: 100 }).toBe(200);
    expect((await request(a, pending, pathOf(back))).status).toBe(303);
    expect((await request(b, pending, '/account')).status).toBe(200);
  });

  it('Redis stopped: protected routes and callbacks answer 503 at once, never 200 or 500, and service resumes after a restart', async () => {
    const verified = await verifiedSession(b, c);
    const pending = new CookieJar();
    const { back } = await startLogin(pending, a);
    await server.stop();
    for (const instance of all) {
      for (const [jar, path, accept] of [
        [verified, '/account', 'text/html'],
        [verified, '/account', 'application/json'],
        [pending, '/account', 'text/html'],
        [pending, pathOf(back), 'text/html'],
        [pending, pathOf(back), 'application/json'],
      ] as const) {
        const response = await request(instance, jar, path, { accept });
        expect(response.status, `${instance.name} ${path} ${accept}`).toBe(503);
        // Well under the 1 s deadlines: the client fails at once (no offline queue), nothing waits for a timeout.
        expect(response.ms).toBeLessThan(750);
        const body = await response.text();
        expect(body).toContain('session_unavailable');
        expect(body).not.toContain('account of');
      }
    }
    expect(emulator.stats.tokenExchanges).toBe(1); // verifiedSession's own, none since

    await server.restart();
    // Same apps, same clients: they reconnect by themselves. Redis lost its data (no persistence), so a new login runs.
    await expect.poll(() => all.every((instance) => instance.redis.isReady), { timeout: 5000, interval: 50 }).toBe(true);
    const fresh = new CookieJar();
    const { back: freshBack } = await startLogin(fresh, b, 'bob');
    expect((await request(c, fresh, pathOf(freshBack))).status).toBe(303);
    const page = await request(a, fresh, '/account');
    expect(page.status).toBe(200);
    expect(await page.text()).toBe('account of bob');
    // The old sessions are gone with Redis's data: asked to log in again, not let through.
    expect((await request(b, verified, '/account')).status).toBe(401);
  });
});
