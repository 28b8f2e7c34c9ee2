import { beforeEach, describe, expect, it } from 'vitest';
import supertest from 'supertest';
import { parse as parseSetCookie } from 'set-cookie-parser';
import { DuoEmulator } from '../../src/testing/index.js';
import { Gate, PLATFORMS, createTestApp, gates, loginWithDuo, pathOf, perTestApps, type StoreFaults, type TestApp } from './fixtures.js';

/** The session cookie a response set (name=value), if any. */
function sessionCookie(response: supertest.Response): string | undefined {
  const cookies = parseSetCookie(response.headers['set-cookie'] as unknown as string[]);
  const cookie = cookies.filter((item) => item.name === 'connect.sid' || item.name === 'sessionId').pop();
  if (!cookie) return undefined;
  return cookie.value === '' || (cookie.expires && cookie.expires.getTime() <= Date.now()) ? '' : `${cookie.name}=${cookie.value}`;
}

async function until(condition: () => boolean, what: string, limitMs = 5000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Logs in (primary) and starts Duo on `path`; returns the cookie and Duo's redirect back. */
async function startLogin(t: TestApp, emulator: DuoEmulator, username = 'alice', path = '/account'): Promise<{ cookie: string; back: string }> {
  const login = await supertest(t.app.getHttpServer()).post('/login').send({ username }).expect(201);
  const cookie = sessionCookie(login)!;
  expect(cookie).toBeTruthy();
  const start = await supertest(t.app.getHttpServer()).get(path).set('Cookie', cookie).set('Accept', 'text/html').expect(303);
  const back = await emulator.authorize(start.headers.location!);
  return { cookie, back };
}

describe.each(PLATFORMS)('hardening on %s', (adapter) => {
  const suite = perTestApps(adapter);
  let emulator: DuoEmulator;
  beforeEach(() => {
    emulator = suite.emulator();
  });
  const app = suite.app;

  it('keeps the pre-Duo session id unverified while a request with it is in flight during the callback (fixation)', async () => {
    const t = await app();
    const http = () => supertest(t.app.getHttpServer());
    const { cookie: oldCookie, back } = await startLogin(t, emulator);
    const gate = new Gate();
    gates.current = gate;
    const held = http().get('/hold').set('Cookie', oldCookie).then((response) => response);
    await gate.arrived;
    const callback = await http().get(pathOf(back)).set('Cookie', oldCookie).set('Accept', 'text/html').expect(303);
    const newCookie = sessionCookie(callback)!;
    expect(newCookie).toBeTruthy();
    expect(newCookie).not.toBe(oldCookie);
    gate.release();
    await held;
    // The old id never opens a protected page (the held request may have saved it back, unverified); the new one does.
    const old = await http().get('/account').set('Cookie', oldCookie).set('Accept', 'text/html').expect(303);
    expect(old.headers.location).toMatch(new RegExp(`^${emulator.baseUrl}/oauth/v1/authorize\\?`));
    await http().get('/account').set('Cookie', newCookie).expect(200, 'account of alice');
  });

  it('refuses the callback when the session was signed out in another tab while Duo answered, and brings nothing back', async () => {
    const t = await app();
    const http = () => supertest(t.app.getHttpServer());
    const { cookie, back } = await startLogin(t, emulator);
    emulator.setFailure('slow', { endpoints: ['token'], slowMs: 400 });
    const callback = http().get(pathOf(back)).set('Cookie', cookie).set('Accept', 'application/json').then((response) => response);
    await until(() => emulator.stats.tokenExchanges > 0, 'the token call');
    await http().post('/logout').set('Cookie', cookie).expect(201);
    const answer = await callback;
    expect(answer.status).toBe(401);
    expect(answer.body.error).toBe('session_changed');
    // Neither the old cookie nor any cookie the answer set knows the user.
    const who = await http().get('/whoami').set('Cookie', cookie).expect(200);
    expect(who.body.user).toBeNull();
    const set = sessionCookie(answer);
    if (set) expect((await http().get('/whoami').set('Cookie', set).expect(200)).body.user).toBeNull();
    expect(t.events.some((event) => event.type === 'second_factor_passed')).toBe(false);
  });

  it('answers 503 within the session deadline when the store hangs on the callback, and the old session stays unverified', async () => {
    const faults: StoreFaults = {};
    const t = await app({ storeFaults: faults, duo: { sessionTimeoutMs: 300 } });
    const http = () => supertest(t.app.getHttpServer());
    const { cookie, back } = await startLogin(t, emulator);
    faults.destroy = 'hang';
    const started = Date.now();
    const answer = await http().get(pathOf(back)).set('Cookie', cookie).set('Accept', 'application/json');
    const took = Date.now() - started;
    expect(answer.status).toBe(503);
    expect(answer.body.error).toBe('session_unavailable');
    expect(took).toBeLessThan(1500);
    delete faults.destroy;
    await http().get('/account').set('Cookie', cookie).set('Accept', 'text/html').expect(303);
    expect(t.events.some((event) => event.type === 'second_factor_passed')).toBe(false);
  });

  it('answers 503 within the session deadline when the store hangs on reloading the session', async () => {
    const faults: StoreFaults = {};
    const t = await app({ storeFaults: faults, duo: { sessionTimeoutMs: 300 } });
    const http = () => supertest(t.app.getHttpServer());
    const { cookie, back } = await startLogin(t, emulator);
    emulator.setFailure('slow', { endpoints: ['token'], slowMs: 200 });
    const pending = http().get(pathOf(back)).set('Cookie', cookie).set('Accept', 'application/json').then((response) => response);
    await until(() => emulator.stats.tokenExchanges > 0, 'the token call');
    faults.get = 'hang';
    const answer = await pending;
    expect(answer.status).toBe(503);
    expect(answer.body.error).toBe('session_unavailable');
  });

  it.runIf(adapter === 'express')("with guardSessionStore, bounds express-session's own save at the end of the callback", async () => {
    const faults: StoreFaults = {};
    const t = await app({ storeFaults: faults, guardStoreMs: 300 });
    const http = () => supertest(t.app.getHttpServer());
    const { cookie, back } = await startLogin(t, emulator);
    // The module's own save goes through; express-session's second one, as the answer ends, hangs.
    faults.setsBeforeHang = 1;
    const started = Date.now();
    const answer = await http().get(pathOf(back)).set('Cookie', cookie).set('Accept', 'text/html');
    expect(answer.status).toBe(303);
    expect(Date.now() - started).toBeLessThan(1500);
    delete faults.setsBeforeHang;
    await http().get('/account').set('Cookie', sessionCookie(answer)!).expect(200);
  });

  it('saves the verified session before answering: a failed save is a 503, not a 303 to a page that will not know the user', async () => {
    const faults: StoreFaults = {};
    const t = await app({ storeFaults: faults });
    const http = () => supertest(t.app.getHttpServer());
    const { cookie, back } = await startLogin(t, emulator);
    faults.set = 'fail';
    const answer = await http().get(pathOf(back)).set('Cookie', cookie).set('Accept', 'application/json');
    expect(answer.status).toBe(503);
    expect(answer.body.error).toBe('session_unavailable');
    expect(t.events.some((event) => event.type === 'second_factor_passed')).toBe(false);
  });

  it('does not complete a callback on HEAD (link scanners, prefetchers): 405, and the GET still works', async () => {
    const t = await app();
    const http = () => supertest(t.app.getHttpServer());
    const { cookie, back } = await startLogin(t, emulator);
    const head = await http().head(pathOf(back)).set('Cookie', cookie);
    expect(head.status).toBe(405);
    expect(head.headers.allow).toBe('GET');
    expect(emulator.stats.tokenExchanges).toBe(0);
    const callback = await http().get(pathOf(back)).set('Cookie', cookie).set('Accept', 'text/html').expect(303);
    await http().get('/account').set('Cookie', sessionCookie(callback)!).expect(200);
    expect(emulator.stats.tokenExchanges).toBe(1);
  });

  it('gives a step-up route exactly its window: maxAge 1 s is stale after 1.5 s (no fixed leeway added)', async () => {
    const t = await app();
    const agent = t.agent();
    const { callback } = await loginWithDuo(emulator, agent, 'alice', '/brief');
    expect(callback.status).toBe(303);
    await agent.get('/brief').expect(200, 'brief');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await agent.get('/brief').set('Accept', 'text/html').expect(303);
  });

  it.each(['plain', 'base'] as const)('answers browsers with the 303 to Duo and API clients with 401 + location under an app-wide %s catch-all filter', async (globalFilter) => {
    const t = await app({ globalFilter, globalGuard: true });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    for (const path of ['/global/closed', '/account']) {
      const browser = await agent.get(path).set('Accept', 'text/html').expect(303);
      expect(browser.headers.location).toMatch(new RegExp(`^${emulator.baseUrl}/oauth/v1/authorize\\?`));
      const api = await agent.get(path).set('Accept', 'application/json').expect(401);
      expect(api.body.error).toBe('second_factor_required');
      expect(api.body.location).toMatch(/\/oauth\/v1\/authorize\?/);
    }
    // The whole flow still completes.
    const { callback } = await loginWithDuo(emulator, agent, 'alice', '/global/closed');
    expect(callback.status).toBe(303);
    await agent.get('/global/closed').expect(200, 'closed');
  });

  it('never crashes on an onEvent hook that rejects or throws, and says so in the log', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => {
      rejections.push(reason);
    };
    process.on('unhandledRejection', onRejection);
    try {
      const t = await app({ duo: { onEvent: async () => Promise.reject(new Error('audit sink down')) } });
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      await agent.get('/account').set('Accept', 'text/html').expect(303);
      await supertest(t.app.getHttpServer()).get('/duo/callback?state=AAAAAAAAAAAAAAAAAAAAAAAA&duo_code=x').expect(400);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(rejections).toEqual([]);
      expect(t.logger.lines.some((line) => line.startsWith('error') && line.includes('onEvent hook failed'))).toBe(true);
      const throwing = await app({
        duo: {
          onEvent: () => {
            throw new Error('sync failure');
          },
        },
      });
      await supertest(throwing.app.getHttpServer()).get('/duo/callback?state=AAAAAAAAAAAAAAAAAAAAAAAA&duo_code=x').expect(400);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });

  it('never crashes on an events$ subscriber that throws (the README pattern with an audit sink that is down)', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => {
      uncaught.push(error);
    };
    process.on('uncaughtException', onUncaught);
    try {
      const t = await app();
      const throwing = t.duo.events$.subscribe(() => {
        throw new Error('audit sink is down');
      });
      const observer = t.duo.events$.subscribe({
        next: () => {
          throw new Error('audit sink is down too');
        },
      });
      await supertest(t.app.getHttpServer()).get('/duo/callback?state=AAAAAAAAAAAAAAAAAAAAAAAA&duo_code=x').expect(400);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(uncaught).toEqual([]);
      expect(t.logger.lines.some((line) => line.startsWith('error') && line.includes('events$ subscriber threw'))).toBe(true);
      await supertest(t.app.getHttpServer()).get('/').expect(200);
      throwing.unsubscribe();
      observer.unsubscribe();
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });

  it('logs and reports anonymous callbacks with unknown states at most once per 10 s (no log flood)', async () => {
    const t = await app();
    const http = supertest(t.app.getHttpServer());
    for (let i = 0; i < 30; i++) {
      await http.get(`/duo/callback?state=${'A'.repeat(20)}${String(i).padStart(4, '0')}&duo_code=x`).expect(400);
    }
    const refused = t.logger.warnings().filter((line) => line.includes('Duo callback refused'));
    expect(refused).toHaveLength(1);
    expect(t.events.filter((event) => event.type === 'second_factor_failed')).toHaveLength(1);
  });

  it("reports at startup, naming the path, when no @DuoCallback() route serves the redirect URI's path", async () => {
    const missing = await app({ noCallbackRoute: true });
    const errors = (t: TestApp): string[] => t.logger.lines.filter((line) => line.startsWith('error') && line.includes('@DuoCallback()'));
    expect(errors(missing).join('\n')).toMatch(/redirect URI's path \/duo\/callback, but there is no @DuoCallback\(\) route at all/);
    // The route is mounted elsewhere than where Duo sends users.
    const elsewhere = await app({ duo: { redirectUri: 'http://localhost/callback' } });
    expect(errors(elsewhere).join('\n')).toMatch(/path \/callback, but @DuoCallback\(\) routes are at \/duo\/callback/);
    const right = await app();
    expect(errors(right)).toEqual([]);
    // Behind a proxy that adds a prefix, the route's path ends the redirect URI's path: no error.
    const proxied = await app({ duo: { redirectUri: 'http://localhost/app/duo/callback' } });
    expect(errors(proxied)).toEqual([]);
    // An app that handles the callback itself with DuoService turns the check off.
    const own = await app({ noCallbackRoute: true, duo: { checkCallbackRoute: false } });
    expect(errors(own)).toEqual([]);
    expect(errors(missing).join('\n')).toMatch(/handles the callback itself with DuoService sets checkCallbackRoute: false/);
  });

  it('warns about a session cookie without SameSite, also when it is null (Fastify spells it so)', async () => {
    const t = await app({ cookie: { sameSite: null } });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    await agent.get('/account').set('Accept', 'text/html').expect(303);
    expect(t.logger.warnings().join('\n')).toMatch(/sets no SameSite attribute/);
  });

  it('ends a burst of parallel callbacks (a double click) with the browser holding the verified session', async () => {
    const t = await app();
    const http = () => supertest(t.app.getHttpServer());
    const { cookie, back } = await startLogin(t, emulator);
    const order: supertest.Response[] = [];
    await Promise.all(
      Array.from({ length: 6 }, () =>
        http()
          .get(pathOf(back))
          .set('Cookie', cookie)
          .set('Accept', 'text/html')
          .then((response) => order.push(response)),
      ),
    );
    // Requests the browser sent before the first answer came back, which the app reaches only after it.
    for (let i = 0; i < 3; i++) order.push(await http().get(pathOf(back)).set('Cookie', cookie).set('Accept', 'text/html'));
    // The browser applies each answer's Set-Cookie in the order the answers arrive.
    let jar = cookie;
    for (const response of order) {
      const set = sessionCookie(response);
      if (set !== undefined) jar = set;
    }
    expect(jar).not.toBe('');
    expect(order.filter((response) => response.status === 303)).toHaveLength(1);
    await http().get('/account').set('Cookie', jar).expect(200, 'account of alice');
    expect(emulator.stats.tokenExchanges).toBe(1);
  });
});

describe.each(PLATFORMS)('two Duo applications sharing one session store on %s', (adapter) => {
  it("does not accept the other application's second factor", async () => {
    const lax = await DuoEmulator.start();
    const strict = await DuoEmulator.start();
    const { MemoryStore } = await import('express-session');
    const fastifySession = (await import('@fastify/session')).default as unknown as { MemoryStore: new () => object };
    const sharedStore = adapter === 'fastify' ? new fastifySession.MemoryStore() : new MemoryStore();
    const a = await createTestApp(lax, { adapter, sharedStore });
    const b = await createTestApp(strict, { adapter, sharedStore });
    try {
      const agentA = a.agent();
      const { callback } = await loginWithDuo(lax, agentA, 'alice');
      const cookie = sessionCookie(callback)!;
      await supertest(a.app.getHttpServer()).get('/account').set('Cookie', cookie).expect(200);
      const onB = await supertest(b.app.getHttpServer()).get('/account').set('Cookie', cookie).set('Accept', 'text/html').expect(303);
      expect(onB.headers.location).toMatch(new RegExp(`^${strict.baseUrl}/oauth/v1/authorize\\?`));
    } finally {
      await a.close();
      await b.close();
      await lax.close();
      await strict.close();
    }
  });
});
