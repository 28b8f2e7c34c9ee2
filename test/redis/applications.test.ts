/**
 * Several Duo applications with sessions and pending logins in Redis
 * (connect-redis, RedisTransactionStore), on Express and Fastify: an admin
 * login started on one instance finishes on another with the admin client (the
 * record names its application), the staff marker still does not count for
 * admin; and the store keeps a pending login's application exactly, or
 * refuses it.
 */
import 'reflect-metadata';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { beforeAll, describe, expect, it } from 'vitest';
import { DuoError, RedisTransactionStore, RequireSecondFactor, type DuoEvent, type PendingTransaction } from '../../src/index.js';
import { randomToken } from '../../src/protocol/random.js';
import type { DuoEmulatorApplication } from '../../src/testing/index.js';
import { AccountController, CallbackController, PLATFORMS, PrimaryLoginController, REDIRECT_URI, buildDuoTestApp, type Platform } from '../support/app.js';
import { CONNECT_REDIS_9 } from './clients.js';
import { CookieJar, pathOf, redisAndEmulator, request } from './instances.js';

@Controller('admin')
class AdminController {
  @Get()
  @RequireSecondFactor({ application: 'admin' })
  dashboard(): string {
    return 'admin dashboard';
  }
}

const env = redisAndEmulator();
let adminApp: DuoEmulatorApplication;
beforeAll(() => {
  adminApp = env.emulator.addApplication();
});

/** One instance: sessions in Redis, pending logins in Redis under `prefix`, staff and admin applications. */
async function instance(adapter: Platform, prefix: string, events: DuoEvent[]): Promise<{ app: INestApplication; baseUrl: string }> {
  const redis = await env.storeClient();
  const { RedisStore } = CONNECT_REDIS_9;
  return buildDuoTestApp({
    duo: {
      applications: { staff: env.emulator.clientOptions(REDIRECT_URI), admin: adminApp.clientOptions(REDIRECT_URI) },
      defaultApplication: 'staff',
      transactionStore: new RedisTransactionStore(redis, { prefix }),
      onEvent: (event) => events.push(event),
    },
    controllers: [PrimaryLoginController, AccountController, CallbackController, AdminController],
    adapter,
    session: { store: new RedisStore({ client: redis, prefix: `${prefix}sess:` }) },
  });
}

describe.each(PLATFORMS)('several Duo applications with Redis on %s', (adapter) => {
  it('an admin login started on one instance finishes on another with the admin client; staff still does not count for admin', async () => {
    const prefix = `duo:apps:${adapter}:`;
    const events: DuoEvent[] = [];
    const a = await instance(adapter, prefix, events);
    const b = await instance(adapter, prefix, events);
    try {
      const jar = new CookieJar();
      expect((await request(a, jar, '/login', { method: 'POST', json: { username: 'alice' } })).status).toBe(201);
      const through = async (path: string): Promise<void> => {
        const start = await request(a, jar, path);
        expect(start.status).toBe(303);
        const back = await env.emulator.authorize(start.headers.get('location')!);
        const callback = await request(b, jar, pathOf(back));
        expect(callback.status, await callback.text()).toBe(303);
      };
      await through('/account');
      expect((await request(b, jar, '/account')).status).toBe(200);
      const adminStart = await request(b, jar, '/admin');
      expect(adminStart.status).toBe(303);
      expect(new URL(adminStart.headers.get('location')!).searchParams.get('client_id')).toBe(adminApp.clientId);
      // The pending login in Redis names its application, in the record's last field.
      const keys = (await env.inspector.keys(`${prefix}{*`)).filter((key) => !key.includes('limit'));
      const records = (await Promise.all(keys.map((key) => env.inspector.get(key)))).flatMap((value) => (value ?? '').split('\x1e').filter(Boolean));
      expect(records.map((record) => record.split('\x1f').at(-1))).toEqual(['admin']);

      await through('/admin');
      expect((await request(a, jar, '/admin')).status).toBe(200);
      expect((await request(b, jar, '/account')).status).toBe(200);
      expect(events.filter((event) => event.type === 'second_factor_passed').map((event) => event.application)).toEqual(['staff', 'admin']);
    } finally {
      await Promise.all([a.app.close(), b.app.close()]);
    }
  });
});

describe("RedisTransactionStore keeps a pending login's application", () => {
  const transaction = (overrides: Partial<PendingTransaction>): PendingTransaction => {
    const now = Date.now();
    return { state: randomToken(32), nonce: randomToken(32), username: 'alice', returnTo: '/admin', binding: randomToken(18), startedAt: now, expiresAt: now + 60_000, ...overrides };
  };

  it.each([
    ['alone', { application: 'admin' }],
    ['with maxAge', { application: 'tenant-42', maxAge: 300 }],
    ['with a rule', { application: 'admin', factorRule: 'webauthn' }],
    ['with both', { application: 'admin_area', factorRule: '*', maxAge: 60 }],
  ] as Array<[string, Partial<PendingTransaction>]>)('%s: given back exactly', async (_name, overrides) => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:app-rt:' });
    const tx = transaction(overrides);
    const context = { session: { binding: tx.binding }, maxPendingPerSession: 5 };
    await store.create(tx, context);
    expect(await store.take(tx.state, context)).toEqual(tx);
  });

  it.each([[''], ['ad min'], ['admin\x1fx'], ['a'.repeat(65)], ['__proto__']])('refuses an application name it could not give back (%j) with input_invalid, storing nothing', async (application) => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:app-rt-bad:' });
    const tx = transaction({ application });
    const error = await store.create(tx, { session: { binding: tx.binding }, maxPendingPerSession: 5 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DuoError);
    expect((error as DuoError).code).toBe('input_invalid');
    expect(await env.inspector.keys(`duo:app-rt-bad:{${tx.binding}}`)).toEqual([]);
  });

  it('a stored record whose application field is not a name is treated as absent (never as a login of the default application)', async () => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:app-rt-tampered:' });
    const tx = transaction({ application: 'admin' });
    const context = { session: { binding: tx.binding }, maxPendingPerSession: 5 };
    await store.create(tx, context);
    const key = `duo:app-rt-tampered:{${tx.binding}}`;
    const raw = (await env.inspector.get(key))!;
    await env.inspector.set(key, raw.replace(/\x1fadmin$/, '\x1fnot a name'), { KEEPTTL: true });
    expect(await store.take(tx.state, context)).toBeUndefined();
  });

  it('a pending login with an application takes at most 300 bytes in Redis', async () => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:app-rt-size:' });
    const tx = transaction({ returnTo: '/admin', application: 'admin' });
    await store.create(tx, { session: { binding: tx.binding }, maxPendingPerSession: 5 });
    const bytes = (await env.inspector.memoryUsage(`duo:app-rt-size:{${tx.binding}}`))!;
    console.log(`bytes per pending login naming its application: MEMORY USAGE ${bytes} B`);
    expect(bytes).toBeLessThanOrEqual(300);
  });
});
