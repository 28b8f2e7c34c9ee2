import { createClient, type RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoError, type DuoStoreContext, type PendingTransaction } from '../../src/index.js';
import { RedisTransactionStore } from '../../src/redis-transaction.store.js';
import { randomToken } from '../../src/protocol/random.js';
import { RedisServer } from '../support/redis-server.js';

let server: RedisServer;
const clients: RedisClientType[] = [];

async function connect(url = server.url): Promise<RedisClientType> {
  const client: RedisClientType = createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: 1000, reconnectStrategy: 100 },
  });
  client.on('error', () => {}); // outages are what some tests cause
  await client.connect();
  clients.push(client);
  return client;
}

function transaction(overrides: Partial<PendingTransaction> = {}): PendingTransaction {
  const now = Date.now();
  return {
    state: randomToken(32),
    nonce: randomToken(32),
    username: 'alice',
    returnTo: '/account',
    binding: BINDING,
    startedAt: now,
    expiresAt: now + 60_000,
    ...overrides,
  };
}

/** The session's binding, as the module keeps it; the store keys pending logins by state and binding. */
const BINDING = randomToken(18);
/** The store must not lean on the session beyond its binding: a fresh one per call shows nothing else rides along. */
const context = (binding = BINDING): DuoStoreContext => ({ session: { binding }, maxPendingPerSession: 5 });

let redis: RedisClientType;
let store: RedisTransactionStore;

beforeAll(async () => {
  server = await RedisServer.start();
  redis = await connect();
  store = new RedisTransactionStore(redis);
});

afterAll(async () => {
  for (const client of clients) if (client.isOpen) client.destroy();
  await server?.close();
});

describe('RedisTransactionStore', () => {
  it('stores a transaction under duo:tx:<state>.<binding> and gives it back from another connection', async () => {
    const tx = transaction({ maxAge: 60 });
    await store.create(tx, context());
    expect(await redis.exists(`duo:tx:${tx.state}.${BINDING}`)).toBe(1);
    const other = new RedisTransactionStore(await connect());
    expect(await other.take(tx.state, context())).toEqual(tx);
  });

  it('gives a transaction out once: the second take finds nothing and the key is gone', async () => {
    const tx = transaction();
    await store.create(tx, context());
    expect(await store.take(tx.state, context())).toEqual(tx);
    expect(await store.take(tx.state, context())).toBeUndefined();
    expect(await redis.exists(`duo:tx:${tx.state}.${BINDING}`)).toBe(0);
  });

  it('never overwrites an existing state: create refuses and the first transaction stays', async () => {
    const first = transaction({ username: 'alice' });
    await store.create(first, context());
    const second = { ...transaction({ username: 'mallory' }), state: first.state };
    const error = await store.create(second, context()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DuoError);
    expect((error as DuoError).code).toBe('store_unavailable');
    expect(await store.take(first.state, context())).toEqual(first);
  });

  it('lets a transaction expire in Redis at its expiresAt', async () => {
    const tx = transaction({ expiresAt: Date.now() + 300 });
    await store.create(tx, context());
    const ttl = await redis.pTTL(`duo:tx:${tx.state}.${BINDING}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect(await redis.exists(`duo:tx:${tx.state}.${BINDING}`)).toBe(0);
    expect(await store.take(tx.state, context())).toBeUndefined();
  });

  it.each([
    ['not JSON', '{"state": '],
    ['JSON that is not an object', '[1, 2]'],
    ['JSON null', 'null'],
    ['an object missing fields', '{"state":"STATE","nonce":"n"}'],
    ['an object for another state', 'OTHER'],
    ['an object with a wrong type', 'WRONGTYPE'],
  ])('treats a stored value that is %s as absent, without throwing', async (_name, raw) => {
    const tx = transaction();
    const valid = JSON.stringify(tx);
    const value =
      raw === 'OTHER' ? JSON.stringify({ ...tx, state: 'another-state-entirely' }) : raw === 'WRONGTYPE' ? JSON.stringify({ ...tx, expiresAt: 'soon' }) : raw.replace('STATE', tx.state);
    expect(value).not.toBe(valid);
    await redis.set(`duo:tx:${tx.state}.${BINDING}`, value);
    await expect(store.take(tx.state, context())).resolves.toBeUndefined();
    expect(await redis.exists(`duo:tx:${tx.state}.${BINDING}`)).toBe(0);
  });

  it('of 100 concurrent takes of one state over five connections, exactly one gets the transaction', async () => {
    const stores = await Promise.all(Array.from({ length: 5 }, async () => new RedisTransactionStore(await connect())));
    for (let round = 0; round < 3; round++) {
      const tx = transaction();
      await store.create(tx, context());
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => stores[i % stores.length]!.take(tx.state, context())));
      const winners = results.filter((result) => result !== undefined);
      expect(winners).toEqual([tx]);
    }
  });

  it('a take from another session (other binding) neither gets nor consumes the transaction', async () => {
    const tx = transaction();
    await store.create(tx, context());
    expect(await store.take(tx.state, context(randomToken(18)))).toBeUndefined();
    expect(await store.take(tx.state, { session: {}, maxPendingPerSession: 5 })).toBeUndefined();
    expect(await store.take(tx.state, context())).toEqual(tx);
  });

  it('keeps stores with different prefixes apart', async () => {
    const tx = transaction();
    const tenant = new RedisTransactionStore(redis, { prefix: 'app2:duo:' });
    await tenant.create(tx, context());
    expect(await redis.exists(`app2:duo:${tx.state}.${BINDING}`)).toBe(1);
    expect(await store.take(tx.state, context())).toBeUndefined();
    expect(await tenant.take(tx.state, context())).toEqual(tx);
  });

  it('refuses something that is not a node-redis client when constructed', () => {
    expect(() => new RedisTransactionStore({} as never)).toThrow(/node-redis client/);
    expect(() => new RedisTransactionStore(redis, { commandTimeoutMs: -1 })).toThrow(/commandTimeoutMs/);
  });
});

describe('RedisTransactionStore with Redis unavailable', () => {
  it('rejects at once (no offline queue) while Redis is down, and works again after a restart', async () => {
    const own = await RedisServer.start();
    try {
      const ownStore = new RedisTransactionStore(await connect(own.url));
      await own.stop();
      for (const call of [() => ownStore.create(transaction(), context()), () => ownStore.take(randomToken(32), context())]) {
        const started = performance.now();
        await expect(call()).rejects.not.toBeInstanceOf(DuoError); // a client error, which the service maps to 503
        expect(performance.now() - started).toBeLessThan(500);
      }
      await own.restart();
      const tx = transaction();
      await expect.poll(() => ownStore.create(tx, context()).then(() => true, () => false), { timeout: 3000, interval: 50 }).toBe(true);
      expect(await ownStore.take(tx.state, context())).toEqual(tx);
    } finally {
      await own.close();
    }
  });

  it('gives up on a hung Redis after commandTimeoutMs instead of waiting forever', async () => {
    const own = await RedisServer.start();
    try {
      const ownStore = new RedisTransactionStore(await connect(own.url), { commandTimeoutMs: 300 });
      own.pause();
      const started = performance.now();
      await expect(ownStore.take(randomToken(32), context())).rejects.toThrow(/did not answer within 300 ms/);
      expect(performance.now() - started).toBeLessThan(1000);
      own.resume();
      const tx = transaction();
      await ownStore.create(tx, context());
      expect(await ownStore.take(tx.state, context())).toEqual(tx);
    } finally {
      await own.close();
    }
  }, 5000);
});
