/**
 * Push-flood protection through the public API: prompt starts per user and per
 * client IP, failed callbacks per user, the 429 answers (JSON and page, with
 * Retry-After), the event, the off switch, and that nothing reaches Duo once a
 * limit is hit.
 */
import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerGuard, ThrottlerModule } from '@nestjs/throttler';
import { beforeEach, describe, expect, it } from 'vitest';
import type { DuoModuleOptions, DuoPromptLimitedEvent } from '../../src/index.js';
import type { DuoEmulator } from '../../src/testing/index.js';
import { PLATFORMS, loginWithDuo, perTestApps, type TestApp } from './fixtures.js';

/** @nestjs/throttler as an app binds it: its module, and its guard for every route. */
@Module({
  imports: [ThrottlerModule.forRoot([{ ttl: 60_000, limit: 8 }])],
  providers: [{ provide: APP_GUARD, useClass: ThrottlerGuard }],
})
class AppThrottlerModule {}

describe.each(PLATFORMS)('promptLimits on %s', (adapter) => {
  const suite = perTestApps(adapter);
  let emulator: DuoEmulator;
  beforeEach(() => {
    emulator = suite.emulator();
  });
  const app = (duo: Partial<DuoModuleOptions> = {}): Promise<TestApp> => suite.app({ duo });
  const limited = (t: TestApp) => t.events.filter((event): event is DuoPromptLimitedEvent => event.type === 'prompt_limited');

  it('a flood of prompt starts by one user: the first max go to Duo, the rest get 429 with Retry-After, and Duo hears of none of them', async () => {
    const t = await app({ promptLimits: { perUser: { max: 3, windowSeconds: 120 } } });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    for (let i = 0; i < 3; i++) await agent.get('/account').set('Accept', 'text/html').expect(303);
    const healthChecks = emulator.stats.healthChecks;
    const page = await agent.get('/account').set('Accept', 'text/html').expect(429);
    expect(page.headers['retry-after']).toMatch(/^(119|120)$/);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.text).toContain('Too many Duo prompts were requested for this account');
    const json = await agent.get('/account').set('Accept', 'application/json').expect(429);
    expect(json.body).toMatchObject({ statusCode: 429, error: 'prompt_rate_limited' });
    expect(json.body.message).toMatch(/try again in 1[12]\d s/);
    expect(json.headers['retry-after']).toBeDefined();
    expect(emulator.stats.healthChecks).toBe(healthChecks);
    expect(limited(t)).toHaveLength(2);
    expect(limited(t)[0]).toMatchObject({ username: 'alice', scope: 'user' });
    // One warning for the flood, not one per refusal.
    expect(t.logger.warnings().filter((line) => line.includes('by promptLimits'))).toHaveLength(1);
    // Another user is not held up by alice's flood.
    const bob = t.agent();
    await bob.post('/login').send({ username: 'bob' }).expect(201);
    await bob.get('/account').set('Accept', 'text/html').expect(303);
  });

  it('many users from one client IP: limited per IP, whoever asks', async () => {
    const t = await app({ promptLimits: { perUser: false, perIp: { max: 4, windowSeconds: 60 } } });
    for (let i = 0; i < 4; i++) {
      const agent = t.agent();
      await agent.post('/login').send({ username: `user${i}` }).expect(201);
      await agent.get('/account').set('Accept', 'text/html').expect(303);
    }
    const agent = t.agent();
    await agent.post('/login').send({ username: 'user4' }).expect(201);
    await agent.get('/account').set('Accept', 'text/html').expect(429);
    expect(limited(t).at(-1)).toMatchObject({ username: 'user4', scope: 'ip' });
  });

  it('callbacks that keep failing (the user denies the pushes) stop new prompts for that user until the window ends', async () => {
    const t = await app({ promptLimits: { failedCallbacksPerUser: { max: 2, windowSeconds: 300 } } });
    const agent = t.agent();
    emulator.setMode('deny');
    for (let i = 0; i < 2; i++) expect((await loginWithDuo(emulator, agent, 'alice')).callback.status).toBe(401);
    emulator.setMode('approve');
    const refused = await agent.get('/account').set('Accept', 'application/json').expect(429);
    expect(refused.body.message).toMatch(/Too many Duo logins for this account failed recently/);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(290);
    expect(limited(t).at(-1)).toMatchObject({ username: 'alice', scope: 'failed_callbacks' });
    // Anonymous callbacks (an unknown state, anyone can send them) do not count against a user.
    const other = t.agent();
    await other.post('/login').send({ username: 'carol' }).expect(201);
    for (let i = 0; i < 5; i++) await other.get(`/duo/callback?state=${'A'.repeat(30)}${i}&duo_code=x`).expect(400);
    const { callback } = await loginWithDuo(emulator, other, 'carol');
    expect(callback.status).toBe(303);
  });

  it('promptLimits: false lets any number of prompts start', async () => {
    const t = await app({ promptLimits: false });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    for (let i = 0; i < 25; i++) await agent.get('/account').set('Accept', 'text/html').expect(303);
    expect(limited(t)).toEqual([]);
  });

  it('given as {} (the defaults), 10 prompts per user in 10 minutes; not given, off against the emulator (an e2e suite logs one user in many times)', async () => {
    const on = await app({ promptLimits: {} });
    const agent = on.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    for (let i = 0; i < 10; i++) await agent.get('/account').set('Accept', 'text/html').expect(303);
    await agent.get('/account').set('Accept', 'text/html').expect(429);
    const off = await app();
    const other = off.agent();
    await other.post('/login').send({ username: 'alice' }).expect(201);
    for (let i = 0; i < 12; i++) await other.get('/account').set('Accept', 'text/html').expect(303);
  });

  it('works beside @nestjs/throttler: a login passes both, each limit answers with its own 429', async () => {
    const t = await suite.app({ duo: { promptLimits: { perUser: { max: 2, windowSeconds: 60 } } }, imports: [AppThrottlerModule] });
    const agent = t.agent();
    const { callback } = await loginWithDuo(emulator, agent, 'alice'); // POST /login, GET /account, the callback: 3 requests
    expect(callback.status).toBe(303);
    await agent.get('/account').set('Accept', 'text/html').expect(200);
    // A second user, one prompt under our limit, then ours refuses before the throttler's limit of 8 is reached.
    const bob = t.agent();
    await bob.post('/login').send({ username: 'bob' }).expect(201);
    await bob.get('/account').set('Accept', 'text/html').expect(303);
    await bob.get('/account').set('Accept', 'text/html').expect(303);
    const ours = await bob.get('/account').set('Accept', 'application/json').expect(429);
    expect(ours.body.error).toBe('prompt_rate_limited');
    // The throttler counts requests per client IP on its own, and answers with its own 429.
    let theirs;
    for (let i = 0; i < 10 && !theirs; i++) {
      const res = await t.agent().get('/').set('Accept', 'application/json');
      if (res.status === 429) theirs = res;
    }
    expect(theirs?.body.error).not.toBe('prompt_rate_limited');
    expect(theirs?.body.message).toMatch(/ThrottlerException: Too Many Requests/);
  });

  it('a HEAD to a protected page (a link checker, a prefetcher) gets 401 and starts no login: nothing counted, nothing sent to Duo', async () => {
    const t = await app({ promptLimits: { perUser: { max: 1, windowSeconds: 60 } } });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const checks = emulator.stats.healthChecks;
    for (let i = 0; i < 5; i++) await agent.head('/account').set('Accept', 'text/html').expect(401);
    expect(emulator.stats.healthChecks).toBe(checks);
    expect(t.events.filter((event) => event.type === 'prompt_started')).toEqual([]);
    await agent.get('/account').set('Accept', 'text/html').expect(303); // the one prompt the limit allows is still there
  });

  it('refuses a wrong promptLimits option at startup, naming it', async () => {
    await expect(app({ promptLimits: { perUser: { max: 0, windowSeconds: 60 } } })).rejects.toThrow(/"promptLimits\.perUser\.max" must be a whole number/);
  });
});
