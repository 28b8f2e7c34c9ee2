import { describe, expect, it } from 'vitest';
import { RedisTransactionStore } from '../../src/redis-transaction.store.js';
import { CookieJar, pathOf, request, threeInstances } from './instances.js';

/**
 * The prompt limits (push-flood protection) with RedisTransactionStore: the
 * counts live in Redis, so a flood spread over instances is counted once, in
 * keys that name no user and no address.
 */
const setup = threeInstances({ promptLimits: { perUser: { max: 4, windowSeconds: 60 }, failedCallbacksPerUser: { max: 2, windowSeconds: 120 } } });

describe('promptLimits with RedisTransactionStore, over three instances', () => {
  it('counts one user\'s prompt starts on every instance together: the fifth is 429 wherever it lands, and Redis holds no username', async () => {
    const jar = new CookieJar();
    expect((await request(setup.all[0]!, jar, '/login', { method: 'POST', json: { username: 'mallory@example.com' } })).status).toBe(201);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await request(setup.all[i % 3]!, jar, '/account')).status);
    expect(statuses).toEqual([303, 303, 303, 303, 429, 429]);
    const refused = await request(setup.all[2]!, jar, '/account', { accept: 'application/json' });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(50);
    const keys = await setup.admin.keys('duo:tx:duo:limit:*');
    expect(keys.length).toBeGreaterThanOrEqual(1);
    for (const key of keys) expect(key).toMatch(/^duo:tx:duo:limit:(user|ip|fail):[\w-]{22}$/);
    const ttl = await setup.admin.pTTL(keys.find((key) => key.includes(':user:'))!);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    expect((await setup.admin.keys('*mallory*')).length).toBe(0);
  });

  it('counts failed callbacks on any instance: two denied logins stop the third prompt everywhere', async () => {
    const jar = new CookieJar();
    expect((await request(setup.all[1]!, jar, '/login', { method: 'POST', json: { username: 'erin' } })).status).toBe(201);
    setup.emulator.setMode('deny');
    try {
      for (let i = 0; i < 2; i++) {
        const start = await request(setup.all[i]!, jar, '/account');
        expect(start.status).toBe(303);
        const back = await setup.emulator.authorize(start.headers.get('location')!);
        expect((await request(setup.all[(i + 1) % 3]!, jar, pathOf(back))).status).toBe(401);
      }
    } finally {
      setup.emulator.setMode('approve');
    }
    const refused = await request(setup.all[2]!, jar, '/account', { accept: 'application/json' });
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { message: string }).message).toMatch(/Too many Duo logins for this account failed recently/);
  });

  it('the store\'s counter: a window that starts with the first hit, reads that create nothing, and refuses keys that are not the limiter\'s', async () => {
    const store = new RedisTransactionStore(setup.all[0]!.redis);
    const key = `duo:limit:user:${'a'.repeat(22)}`;
    expect(await store.countAttempt(key, 5000, 0)).toEqual({ count: 0, resetInMs: 0 });
    expect(await setup.admin.exists(`duo:tx:${key}`)).toBe(0);
    const first = await store.countAttempt(key, 5000, 1);
    expect(first.count).toBe(1);
    expect(first.resetInMs).toBeGreaterThan(4000);
    expect((await store.countAttempt(key, 5000, 1)).count).toBe(2);
    expect((await store.countAttempt(key, 5000, 0)).count).toBe(2);
    // 50 parallel hits from three clients: each counted exactly once.
    await Promise.all(Array.from({ length: 50 }, (_, i) => new RedisTransactionStore(setup.all[i % 3]!.redis).countAttempt(key, 5000, 1)));
    expect((await store.countAttempt(key, 5000, 0)).count).toBe(52);
    await expect(store.countAttempt('duo:tx:{someone}', 5000, 1)).rejects.toMatchObject({ code: 'input_invalid' });
    await expect(store.countAttempt(key, 0, 1)).rejects.toMatchObject({ code: 'input_invalid' });
  });
});
