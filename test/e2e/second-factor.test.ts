import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { PLATFORMS, createTestApp, loginWithDuo, pathOf, rememberWireSecrets as remember, wireSecrets as secrets, type TestApp } from './fixtures.js';

describe.each(PLATFORMS)('the second-factor flow on %s', (adapter) => {
  let emulator: DuoEmulator;
  let t: TestApp;
  beforeAll(async () => {
    emulator = await DuoEmulator.start();
    secrets.add(emulator.clientSecret);
    t = await createTestApp(emulator, { adapter });
  });

  afterAll(async () => {
    // No secret, code, state, nonce or token appears anywhere in the app's logs.
    const logs = t.logger.text();
    for (const secret of secrets) expect(logs).not.toContain(secret);
    await t.close();
    await emulator.close();
  });

  beforeEach(() => {
    emulator.reset();
  });

  describe('protecting routes', () => {
    it('lets a public route through and sends an unverified browser to Duo with a 303', async () => {
      const agent = t.agent();
      await agent.get('/').expect(200, 'home');
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const res = await agent.get('/account?tab=1').set('Accept', 'text/html').expect(303);
      remember(res.headers.location);
      const location = new URL(res.headers.location!);
      expect(`${location.origin}${location.pathname}`).toBe(`${emulator.baseUrl}/oauth/v1/authorize`);
      expect(location.searchParams.get('client_id')).toBe(emulator.clientId);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(t.events.some((e) => e.type === 'prompt_started' && e.username === 'alice')).toBe(true);
    });

    it('answers API clients with 401 JSON that says where to start, never a redirect', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const res = await agent.get('/api/data').set('Accept', 'application/json').expect(401);
      expect(res.body.error).toBe('second_factor_required');
      expect(res.body.location).toMatch(new RegExp(`^${emulator.baseUrl}/oauth/v1/authorize\\?`));
      remember(res.body.location);
      const xhr = await agent.get('/api/data').set('X-Requested-With', 'XMLHttpRequest').expect(401);
      expect(xhr.body.error).toBe('second_factor_required');
    });

    it('refuses requests with no primary user with 401, without contacting Duo', async () => {
      const html = await t.agent().get('/account').set('Accept', 'text/html').expect(401);
      expect(html.headers['content-type']).toContain('text/html');
      expect(html.text).toContain('primary_auth_required');
      const json = await t.agent().get('/api/data').set('Accept', 'application/json').expect(401);
      expect(json.body.error).toBe('primary_auth_required');
      expect(emulator.stats.healthChecks).toBe(0);
    });

    it('completes the flow: callback 303 back to the page, then the page opens', async () => {
      const agent = t.agent();
      const { callback, state } = await loginWithDuo(emulator, agent, 'alice', '/account?tab=2');
      secrets.add(state);
      expect(callback.status).toBe(303);
      expect(callback.headers.location).toBe('/account?tab=2');
      expect(callback.headers['cache-control']).toBe('no-store');
      expect(callback.headers['referrer-policy']).toBe('no-referrer');
      await agent.get('/account').expect(200, 'account of alice');
      await agent.get('/api/data').set('Accept', 'application/json').expect(200);
      const who = await agent.get('/whoami').expect(200);
      expect(who.body.duo.verified).toMatchObject({ username: 'alice', app: expect.stringMatching(/^[\w-]{12}$/), factor: expect.any(String), result: 'success' });
      // Duo's transaction id is in the event, not in the session: the marker stays under 200 bytes.
      expect(who.body.duo.verified.txid).toBeUndefined();
      expect(JSON.stringify(who.body.duo.verified).length).toBeLessThanOrEqual(200);
      expect(t.events.find((e) => e.type === 'second_factor_passed' && e.username === 'alice')).toMatchObject({ txid: expect.any(String) });
      expect(JSON.stringify(who.body.duo)).not.toContain('eyJ'); // no raw token kept in the session
      expect(t.events.some((e) => e.type === 'second_factor_passed' && e.username === 'alice')).toBe(true);
    });

    it('changes the session id when the second factor is passed (session fixation)', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const before = (await agent.get('/whoami')).body.sessionId;
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      await agent.get(pathOf(back)).expect(303);
      const after = (await agent.get('/whoami')).body.sessionId;
      expect(after).not.toBe(before);
      expect((await agent.get('/whoami')).body.user).toEqual({ username: 'alice' });
    });

    it('does not count the marker for another user of the same session', async () => {
      const agent = t.agent();
      await loginWithDuo(emulator, agent, 'alice');
      await agent.get('/account').expect(200);
      await agent.post('/login').send({ username: 'bob' }).expect(201);
      const res = await agent.get('/account').set('Accept', 'text/html').expect(303);
      remember(res.headers.location);
    });

    it('a @RequireSecondFactor() handler inside a @SkipSecondFactor() controller is protected', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      await agent.get('/public').expect(200, 'public');
      const res = await agent.get('/public/settings').set('Accept', 'text/html').expect(303);
      remember(res.headers.location);
      await agent.get('/public/settings').set('Accept', 'application/json').expect(401);
    });

    it("step-up measures the age from Duo's auth_time when that is older than the callback", async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      emulator.setClockOffset(-200); // Duo reports an authentication 200 s old (a login without max_age may)
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      await agent.get(pathOf(back)).expect(303);
      await agent.get('/account').expect(200);
      const stepUp = await agent.get('/sensitive').set('Accept', 'text/html').expect(303);
      remember(stepUp.headers.location);
    });

    it('an anonymous request to the callback does not create a session', async () => {
      const res = await t.agent().get('/duo/callback?duo_code=abc&state=aaaaaaaaaaaaaaaaaaaaaaaa').set('Accept', 'application/json').expect(400);
      expect(res.headers['set-cookie']).toBeUndefined();
    });

    it('step-up: a second factor older than maxAge does not count, and Duo gets max_age', async () => {
      const agent = t.agent();
      await loginWithDuo(emulator, agent, 'alice');
      await agent.get('/sensitive').expect(200, 'sensitive');
      // Age the marker past the route's 60 s.
      const realNow = Date.now;
      Date.now = () => realNow() + 61_000;
      try {
        const res = await agent.get('/sensitive').set('Accept', 'text/html').expect(303);
        remember(res.headers.location);
        const request = new URL(res.headers.location!).searchParams.get('request')!;
        const claims = JSON.parse(Buffer.from(request.split('.')[1]!, 'base64url').toString());
        expect(claims.max_age).toBe(60);
        await agent.get('/account').expect(200); // no maxAge on this one
        const back = await emulator.authorize(res.headers.location!);
        remember(back);
        await agent.get(pathOf(back)).expect(303);
        await agent.get('/sensitive').expect(200);
      } finally {
        Date.now = realNow;
      }
    });
    it('step-up: an id_token whose auth_time is older than max_age does not count', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/sensitive').set('Accept', 'text/html').expect(303);
      // Duo's clock 200 s behind: its auth_time is far older than the route's 60 s (+60 s leeway).
      emulator.setClockOffset(-200);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      const res = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(401);
      expect(res.body.error).toBe('second_factor_denied');
      await agent.get('/sensitive').set('Accept', 'application/json').expect(401);
    });
  });

  describe('the callback', () => {
    it('two tabs: each pending login finishes with its own state', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const one = await agent.get('/account?tab=one').set('Accept', 'text/html').expect(303);
      const two = await agent.get('/sensitive?tab=two').set('Accept', 'text/html').expect(303);
      const backOne = await emulator.authorize(one.headers.location!);
      const backTwo = await emulator.authorize(two.headers.location!);
      remember(backOne);
      remember(backTwo);
      expect((await agent.get(pathOf(backTwo)).expect(303)).headers.location).toBe('/sensitive?tab=two');
      expect((await agent.get(pathOf(backOne)).expect(303)).headers.location).toBe('/account?tab=one');
      expect(emulator.stats.tokenExchanges).toBe(2);
    });

    it('a reload of a completed callback lands on the same page without another token exchange', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account?r=1').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      await agent.get(pathOf(back)).expect(303);
      const reload = await agent.get(pathOf(back)).expect(303);
      expect(reload.headers.location).toBe('/account?r=1');
      expect(emulator.stats.tokenExchanges).toBe(1);
    });

    it('20 parallel callbacks with one state give exactly one token exchange', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      const results = await Promise.all(Array.from({ length: 20 }, () => agent.get(pathOf(back)).set('Accept', 'application/json')));
      expect(emulator.stats.tokenExchanges).toBe(1);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 303)).toHaveLength(1);
      expect(statuses.every((s) => s === 303 || s === 400)).toBe(true);
    });

    it.each([
      ['missing state', '/duo/callback?duo_code=abc', 400, 'state_invalid'],
      ['repeated state', '/duo/callback?duo_code=abc&state=aaaaaaaaaaaaaaaaaaaa&state=bbbbbbbbbbbbbbbbbbbb', 400, 'state_invalid'],
      ['array-shaped state', '/duo/callback?duo_code=abc&state[]=aaaaaaaaaaaaaaaaaaaa', 400, 'state_invalid'],
      ['over-long state', `/duo/callback?duo_code=abc&state=${'a'.repeat(1100)}`, 400, 'state_invalid'],
      ['state with bad characters', '/duo/callback?duo_code=abc&state=aaaaaaaa%20aaaaaaaaaaaa', 400, 'state_invalid'],
      ['unknown state', '/duo/callback?duo_code=abc&state=aaaaaaaaaaaaaaaaaaaaaaaa', 400, 'state_unknown'],
    ])('refuses a callback with %s (%i %s)', async (_name, path, status, code) => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const json = await agent.get(path).set('Accept', 'application/json').expect(status);
      expect(json.body).toMatchObject({ statusCode: status, error: code });
      expect(json.headers['cache-control']).toBe('no-store');
      const html = await agent.get(path).set('Accept', 'text/html').expect(status);
      expect(html.headers['content-type']).toContain('text/html');
      expect(html.text).toContain('Start again');
      expect(html.text).not.toMatch(/at .*\.(js|ts):\d+/); // no stack trace
      expect(emulator.stats.tokenExchanges).toBe(0);
    });

    it('refuses a state that belongs to another session', async () => {
      const victim = t.agent();
      await victim.post('/login').send({ username: 'alice' }).expect(201);
      const start = await victim.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      const attacker = t.agent();
      await attacker.post('/login').send({ username: 'alice' }).expect(201);
      const res = await attacker.get(pathOf(back)).set('Accept', 'application/json').expect(400);
      expect(res.body.error).toBe('state_unknown');
      expect(emulator.stats.tokenExchanges).toBe(0);
      await attacker.get('/account').set('Accept', 'application/json').expect(401);
    });

    it('answers error=access_denied from Duo with 401, and consumes the state', async () => {
      emulator.setMode('deny');
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      expect(new URL(back).searchParams.get('error')).toBe('access_denied');
      const res = await agent.get(pathOf(back)).set('Accept', 'text/html').expect(401);
      expect(res.text).toContain('Duo denied');
      expect(res.text).toContain('<a href="/account">Start again</a>'); // back to the page the login was for
      await agent.get(pathOf(back)).set('Accept', 'application/json').expect(400);
      await agent.get('/account').set('Accept', 'application/json').expect(401);
      expect(t.events.some((e) => e.type === 'second_factor_failed' && e.code === 'access_denied')).toBe(true);
    });

    it('refuses an expired transaction with 401', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      const realNow = Date.now;
      Date.now = () => realNow() + 601_000;
      try {
        const res = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(401);
        expect(res.body.error).toBe('transaction_expired');
      } finally {
        Date.now = realNow;
      }
      expect(emulator.stats.tokenExchanges).toBe(0);
    });

    it('refuses when the primary user changed during the Duo login', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      await agent.post('/login').send({ username: 'mallory' }).expect(201);
      const res = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(401);
      expect(res.body.error).toBe('username_mismatch');
    });

    it.each([
      ['token_bad_signature', 502, 'token_invalid'],
      ['token_wrong_iss', 502, 'token_invalid'],
      ['token_expired', 502, 'token_invalid'],
      ['token_wrong_username', 401, 'username_mismatch'],
      ['token_wrong_nonce', 401, 'nonce_mismatch'],
      ['token_status_deny', 401, 'second_factor_denied'],
      ['token_response_no_id_token', 502, 'duo_upstream_invalid'],
    ] as const)('an id_token that fails a check (%s) gives %i %s and no verified session', async (failure, status, code) => {
      emulator.setFailure(failure);
      const agent = t.agent();
      const { callback } = await loginWithDuo(emulator, agent, 'alice');
      expect(callback.status).toBe(status);
      expect(callback.text).toContain(code);
      await agent.get('/account').set('Accept', 'application/json').expect(401);
    });

    it('Duo down at the token call gives 503, Duo silent gives 504 — never 500', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      emulator.setFailure('http_500', { endpoints: ['token'] });
      const res = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(503);
      expect(res.body.error).toBe('duo_unavailable');
    });

    it('a silent Duo at the token call gives 504 within the deadline, never 500', async () => {
      const quick = await createTestApp(emulator, { adapter, duo: { timeoutMs: 400 } });
      try {
        const agent = quick.agent();
        await agent.post('/login').send({ username: 'alice' }).expect(201);
        const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
        const back = await emulator.authorize(start.headers.location!);
        remember(back);
        emulator.setFailure('no_answer', { endpoints: ['token'] });
        const started = Date.now();
        const res = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(504);
        expect(res.body.error).toBe('duo_timeout');
        expect(Date.now() - started).toBeLessThan(3000);
      } finally {
        emulator.setFailure('none');
        await quick.close();
      }
    });

    it('keeps at most maxPendingPerSession pending logins: the oldest is dropped', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const starts = [];
      for (let i = 0; i < 6; i++) starts.push((await agent.get(`/account?n=${i}`).set('Accept', 'text/html').expect(303)).headers.location!);
      const backs = [];
      for (const location of starts) backs.push(await emulator.authorize(location));
      backs.forEach((back) => remember(back));
      const oldest = await agent.get(pathOf(backs[0]!)).set('Accept', 'application/json').expect(400);
      expect(oldest.body.error).toBe('state_unknown');
      const newest = await agent.get(pathOf(backs[5]!)).expect(303);
      expect(newest.headers.location).toBe('/account?n=5');
    });

    it('a reused code is refused by Duo and answered with 401', async () => {
      const first = t.agent();
      const { callback, back: firstBack } = await loginWithDuo(emulator, first, 'alice');
      remember(firstBack);
      expect(callback.status).toBe(303);
      const second = t.agent();
      await second.post('/login').send({ username: 'alice' }).expect(201);
      const start = await second.get('/account').set('Accept', 'text/html').expect(303);
      const back = new URL(await emulator.authorize(start.headers.location!));
      remember(back.toString());
      // Replay the code that was already exchanged, with this session's own valid state.
      back.searchParams.set('duo_code', new URL(firstBack).searchParams.get('duo_code')!);
      const res = await second.get(pathOf(back.toString())).set('Accept', 'application/json').expect(401);
      expect(res.body.error).toBe('code_invalid');
    });

    it('logging out ends pending logins', async () => {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      remember(back);
      await agent.post('/logout').expect(201);
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const res = await agent.get(pathOf(back)).set('Accept', 'application/json').expect(400);
      expect(res.body.error).toBe('state_unknown');
      expect(emulator.stats.tokenExchanges).toBe(0);
    });

    it('bad return targets fall back to /', async () => {
      for (const target of ['//evil.example/x', '/\\evil.example', '/%2F%2Fevil.example']) {
        const agent = t.agent();
        await agent.post('/login').send({ username: 'alice' }).expect(201);
        const res = await agent.get('/api/data').set('Accept', 'application/json').set('X-Duo-Return-To', target).expect(401);
        const back = await emulator.authorize(res.body.location);
        remember(back);
        const done = await agent.get(pathOf(back)).expect(303);
        expect(done.headers.location!.startsWith('/')).toBe(true);
        expect(done.headers.location!.startsWith('//')).toBe(false);
        expect(new URL(done.headers.location!, 'http://app.local').host).toBe('app.local');
      }
    });
  });

  describe('health and fail mode closed (default)', () => {
    it('caches a healthy health check: many logins, one call to Duo', async () => {
      const fresh = await createTestApp(emulator, { adapter });
      try {
        for (let i = 0; i < 5; i++) {
          const a = fresh.agent();
          await a.post('/login').send({ username: `user${i}` }).expect(201);
          remember((await a.get('/account').set('Accept', 'text/html').expect(303)).headers.location);
        }
        expect(emulator.stats.healthChecks).toBe(1);
        expect(fresh.events.filter((e) => e.type === 'prompt_started')).toHaveLength(5);
      } finally {
        await fresh.close();
      }
    });

    it('refuses with 503 when Duo is down, and caches the health check', async () => {
      emulator.setFailure('http_500');
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const fresh = await createTestApp(emulator, { adapter });
      try {
        const a = fresh.agent();
        await a.post('/login').send({ username: 'alice' }).expect(201);
        const res = await a.get('/account').set('Accept', 'application/json').expect(503);
        expect(res.body.error).toBe('duo_unavailable');
        await a.get('/account').set('Accept', 'application/json').expect(503);
        expect(emulator.stats.healthChecks).toBe(1);
        expect(fresh.events.some((e) => e.type === 'second_factor_bypassed')).toBe(false);
      } finally {
        await fresh.close();
      }
    });
  });
});
