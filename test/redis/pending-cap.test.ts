import { describe, expect, it } from 'vitest';
import { CookieJar, pathOf, request, threeInstances } from './instances.js';

/**
 * The finding this guards against: one password-only session, opening a
 * protected page over and over on several instances, filled Redis with
 * pending logins (3,000 in 6 s). DuoModule's maxPendingPerSession (default 5)
 * now reaches RedisTransactionStore and holds across instances.
 */
// The cap alone: the prompt limits (10 starts per user in 10 minutes) would refuse this loop long before it.
const setup = threeInstances({ promptLimits: false });

describe('maxPendingPerSession with RedisTransactionStore, over three instances', () => {
  it('301 prompt starts from one session leave one Redis key with 5 pending logins; the oldest is refused, the newest completes', async () => {
    const jar = new CookieJar();
    expect((await request(setup.all[0]!, jar, '/login', { method: 'POST', json: { username: 'mallory' } })).status).toBe(201);
    // The first start gives the session its binding; parallel requests before it is saved would each make their own.
    const first = await request(setup.all[0]!, jar, '/account');
    expect(first.status).toBe(303);
    const locations: string[] = [first.headers.get('location')!];
    for (let batch = 0; batch < 30; batch++) {
      const starts = await Promise.all(Array.from({ length: 10 }, (_, i) => request(setup.all[i % 3]!, jar.copy(), '/account')));
      for (const start of starts) {
        expect(start.status).toBe(303);
        locations.push(start.headers.get('location')!);
      }
    }
    const keys = await setup.admin.keys('duo:tx:*');
    expect(keys).toHaveLength(1);
    const value = (await setup.admin.get(keys[0]!))!;
    expect(value.split('\x1e')).toHaveLength(5);
    const memory = await setup.admin.memoryUsage(keys[0]!, { SAMPLES: 0 });
    console.log(`301 prompt starts from one session over 3 instances: ${keys.length} key, ${value.length} B of records, MEMORY USAGE ${memory} B`);
    expect(memory).toBeLessThanOrEqual(5 * 300);

    const oldest = await request(setup.all[1]!, jar, pathOf(await setup.emulator.authorize(locations[0]!)), { accept: 'application/json' });
    expect(oldest.status).toBe(400);
    expect(((await oldest.json()) as { error: string }).error).toBe('state_unknown');
    // Of the last batch (ten in parallel), one is among the five kept: try them newest first.
    let completed: Response | undefined;
    for (const location of locations.slice(-10).reverse()) {
      const back = await setup.emulator.authorize(location);
      const state = new URL(back).searchParams.get('state')!;
      if (!value.includes(state)) continue;
      completed = await request(setup.all[2]!, jar, pathOf(back));
      break;
    }
    expect(completed?.status).toBe(303);
    expect((await request(setup.all[0]!, jar, '/account')).status).toBe(200);
  });
});
