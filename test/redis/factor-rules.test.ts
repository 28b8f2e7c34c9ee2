/**
 * Factor rules with pending logins in Redis (RedisTransactionStore): the
 * route's rule travels with the pending login through Redis, so the callback
 * checks Duo's id_token against it, on Express and Fastify; and the store's
 * record keeps the rule exactly, or refuses it.
 */
import 'reflect-metadata';
import { Controller, Get } from '@nestjs/common';
import supertest from 'supertest';
import { describe, expect, it } from 'vitest';
import { DuoError, RedisTransactionStore, RequireSecondFactor, type DuoEvent, type PendingTransaction } from '../../src/index.js';
import { randomToken } from '../../src/protocol/random.js';
import { AccountController, CallbackController, PLATFORMS, PrimaryLoginController, REDIRECT_URI, buildDuoTestApp } from '../support/app.js';
import { redisAndEmulator } from './instances.js';

@Controller('admin')
class AdminController {
  @Get()
  @RequireSecondFactor({ factors: ['webauthn'] })
  dashboard(): string {
    return 'admin dashboard';
  }

  @Get('payout')
  @RequireSecondFactor({ requireInteraction: true, maxAge: 300 })
  payout(): string {
    return 'payout';
  }
}

const env = redisAndEmulator();

/** The fields of every pending login in Redis under a prefix (records split by RS, fields by US). */
async function storedRecords(prefix: string): Promise<string[][]> {
  const keys = await env.inspector.keys(`${prefix}*`);
  const values = await Promise.all(keys.map((key) => env.inspector.get(key)));
  return values.flatMap((value) => (value ?? '').split('\x1e').filter(Boolean).map((record) => record.split('\x1f')));
}

describe.each(PLATFORMS)('factor rules with RedisTransactionStore on %s', (adapter) => {
  it('the rule goes through Redis with the pending login: Duo Push is refused (403, event, marker kept), a security key passes', async () => {
    const prefix = `duo:rules:${adapter}:`;
    const events: DuoEvent[] = [];
    const { app } = await buildDuoTestApp({
      duo: { ...env.emulator.clientOptions(REDIRECT_URI), transactionStore: new RedisTransactionStore(await env.storeClient(), { prefix }), onEvent: (event) => events.push(event) },
      controllers: [PrimaryLoginController, AccountController, CallbackController, AdminController],
      adapter,
    });
    try {
      const agent = supertest.agent(app.getHttpServer());
      const through = async (path: string): Promise<supertest.Response> => {
        const start = await agent.get(path).set('Accept', 'text/html').expect(303);
        const back = new URL(await env.emulator.authorize(start.headers.location!));
        return agent.get(`${back.pathname}${back.search}`).set('Accept', 'text/html');
      };
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      expect((await through('/account')).status).toBe(303);

      const start = await agent.get('/admin').set('Accept', 'text/html').expect(303);
      const records = await storedRecords(prefix);
      expect(records).toHaveLength(1);
      expect(records[0]!.at(-1), 'the rule is the record\'s last field').toBe('webauthn');
      const request = new URL(start.headers.location!).searchParams.get('request')!;
      expect(JSON.parse(Buffer.from(request.split('.')[1]!, 'base64url').toString())).toMatchObject({ prompt: 'login' });

      const refused = await through('/admin');
      expect(refused.status).toBe(403);
      expect(refused.text).toContain('You used Duo Push.');
      expect(events.filter((event) => event.type === 'second_factor_rule_refused')).toEqual([
        expect.objectContaining({ username: 'alice', rule: 'factors', factors: ['webauthn'], factor: 'duo_push' }),
      ]);
      await agent.get('/account').expect(200);

      env.emulator.setFactor('WebAuthn Security Key');
      expect((await through('/admin')).status).toBe(303);
      await agent.get('/admin').expect(200);

      // A security key used a moment ago meets requireInteraction with maxAge 300 too.
      await agent.get('/admin/payout').expect(200);
    } finally {
      await app.close();
    }
  });
});

describe('RedisTransactionStore keeps a pending login\'s factor rule', () => {
  const binding = (): string => randomToken(18);
  const transaction = (overrides: Partial<PendingTransaction>): PendingTransaction => {
    const now = Date.now();
    return { state: randomToken(32), nonce: randomToken(32), username: 'alice', returnTo: '/admin', binding: binding(), startedAt: now, expiresAt: now + 60_000, ...overrides };
  };

  it.each([
    ['factors, no maxAge', { factorRule: 'webauthn,hardware_token' }],
    ['requireInteraction and maxAge', { factorRule: '*', maxAge: 300 }],
    ['maxAge, no rule', { maxAge: 60 }],
    ['neither', {}],
  ] as Array<[string, Partial<PendingTransaction>]>)('%s: given back exactly', async (_name, overrides) => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:rt:' });
    const tx = transaction(overrides);
    const context = { session: { binding: tx.binding }, maxPendingPerSession: 5 };
    await store.create(tx, context);
    expect(await store.take(tx.state, context)).toEqual(tx);
  });

  it.each([['duo_push'], [''], ['webauthn,'], ['webauthn\x1fx']])('refuses a rule it could not give back as a rule (%j) with input_invalid, storing nothing', async (factorRule) => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:rt-bad:' });
    const tx = transaction({ factorRule });
    const error = await store.create(tx, { session: { binding: tx.binding }, maxPendingPerSession: 5 }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DuoError);
    expect((error as DuoError).code).toBe('input_invalid');
    expect(await env.inspector.keys(`duo:rt-bad:{${tx.binding}}`)).toEqual([]);
  });

  it('a pending login with a rule still takes at most 300 bytes in Redis', async () => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:rt-size:' });
    const figures: string[] = [];
    for (const [name, overrides] of [
      ['no rule', {}],
      ["factors ['webauthn']", { factorRule: 'webauthn' }],
      ["factors ['webauthn', 'hardware_token'], maxAge 300", { factorRule: 'webauthn,hardware_token', maxAge: 300 }],
    ] as Array<[string, Partial<PendingTransaction>]>) {
      const tx = transaction({ returnTo: '/account', ...overrides });
      await store.create(tx, { session: { binding: tx.binding }, maxPendingPerSession: 5 });
      const bytes = (await env.inspector.memoryUsage(`duo:rt-size:{${tx.binding}}`))!;
      figures.push(`${name}: MEMORY USAGE ${bytes} B`);
      expect(bytes).toBeLessThanOrEqual(300);
    }
    console.log(`bytes per pending login with a factor rule:\n  ${figures.join('\n  ')}`);
  });

  it('a stored record whose rule field is not a rule is treated as absent (never as a login without a rule)', async () => {
    const store = new RedisTransactionStore(await env.storeClient(), { prefix: 'duo:rt-tampered:' });
    const tx = transaction({ factorRule: 'webauthn' });
    const context = { session: { binding: tx.binding }, maxPendingPerSession: 5 };
    await store.create(tx, context);
    const key = `duo:rt-tampered:{${tx.binding}}`;
    const raw = (await env.inspector.get(key))!;
    await env.inspector.set(key, raw.replace(/\x1fwebauthn$/, '\x1fnot a rule'), { KEEPTTL: true });
    expect(await store.take(tx.state, context)).toBeUndefined();
  });
});
