import { createClient, type RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoConfigError, DuoError, type DuoStoreContext, type PendingTransaction } from '../../src/index.js';
import { RedisTransactionStore, type RedisTransactionClient } from '../../src/redis-transaction.store.js';
import { MAX_RETURN_PATH_BYTES as MAX_RETURN_TO_BYTES } from '../../src/request.util.js';
import { randomToken } from '../../src/protocol/random.js';
import { RedisServer } from '../support/redis-server.js';
import { NODE_REDIS_MAJORS, type NodeClient, type NodeRedisMajor, type StoreClient } from './clients.js';

let server: RedisServer;
const clients: StoreClient[] = [];

/** A node-redis 6 client that reads Redis directly, to see what the store wrote. */
async function connectAdmin(url = server.url): Promise<RedisClientType> {
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

/** The node-redis major the stores of the current describe block use. */
let major: NodeRedisMajor;

/** A client of that major, for a store (fails at once while Redis is down, reconnects every 100 ms). */
async function connect(url = server.url): Promise<NodeClient> {
  const client = await major.connect({ url });
  clients.push(client);
  return client;
}

/** The session's binding, as the module keeps it (randomToken(18)); each test starts sessions of its own. */
const newBinding = (): string => randomToken(18);

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

const BINDING = newBinding();
/** The store must not lean on the session beyond its binding: a fresh one per call shows nothing else rides along. */
const context = (binding = BINDING, maxPendingPerSession = 5): DuoStoreContext => ({ session: { binding }, maxPendingPerSession });
/** The one Redis key holding all pending logins of a session. */
const sessionKey = (binding = BINDING, prefix = 'duo:tx:'): string => `${prefix}{${binding}}`;

/** The states recorded in a session's key, read straight from Redis (records split by RS, fields by US). */
async function storedStates(binding: string, client: RedisClientType = redis): Promise<string[]> {
  const value = await client.get(sessionKey(binding));
  return value === null ? [] : value.split('\x1e').map((record) => record.split('\x1f')[0]!);
}

/** Redis's own figure (MEMORY USAGE) and the plain key + value length, summed over every key under a prefix. */
async function footprint(prefix: string): Promise<{ keys: number; memoryUsage: number; keyValueBytes: number }> {
  const keys = await redis.keys(`${prefix}*`);
  let memoryUsage = 0;
  let keyValueBytes = 0;
  for (const key of keys) {
    memoryUsage += (await redis.memoryUsage(key, { SAMPLES: 0 })) ?? 0;
    keyValueBytes += Buffer.byteLength(key) + (await redis.strLen(key));
  }
  return { keys: keys.length, memoryUsage, keyValueBytes };
}

async function usedMemory(): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)![1]);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let redis: RedisClientType;
/** The store's own client, of the major under test. */
let storeClient: NodeClient;
let store: RedisTransactionStore;

beforeAll(async () => {
  server = await RedisServer.start();
  redis = await connectAdmin();
});

afterAll(async () => {
  for (const client of clients) if (client.isOpen) client.destroy();
  await server?.close();
});

describe('RedisTransactionStore client', () => {
  it('refuses something that is not a node-redis client when constructed, saying what it needs', () => {
    expect(() => new RedisTransactionStore({} as never)).toThrow(/node-redis client/);
    expect(() => new RedisTransactionStore(null as never)).toThrow(DuoConfigError);
    // The previous version's two commands, or ioredis (evalsha, other arguments), are not enough.
    expect(() => new RedisTransactionStore({ set: async () => 'OK', getDel: async () => null } as never)).toThrow(/eval\(\) and evalSha\(\)/);
    expect(() => new RedisTransactionStore({ eval: async () => null, evalsha: async () => null } as never)).toThrow(/ioredis/);
    expect(() => new RedisTransactionStore(redis, { commandTimeoutMs: -1 })).toThrow(/commandTimeoutMs/);
    expect(() => new RedisTransactionStore(redis, { prefix: 5 as never })).toThrow(/prefix/);
  });

  it('fails closed on a reply it does not expect: create and take reject, never "stored" or "found"', async () => {
    const odd: RedisTransactionClient = { eval: async () => 42, evalSha: async () => 42 };
    const oddStore = new RedisTransactionStore(odd);
    await expect(oddStore.create(transaction(), context())).rejects.toThrow(/unexpected reply/);
    await expect(oddStore.take(randomToken(32), context())).rejects.toThrow(/unexpected reply/);
  });
});

describe.each(NODE_REDIS_MAJORS.map((each) => [each.name, each] as const))('with %s', (_name, under) => {
  beforeAll(async () => {
    major = under;
    storeClient = await connect();
    store = new RedisTransactionStore(storeClient);
  });

  describe('RedisTransactionStore', () => {
    it("keeps a session's pending logins in one key duo:tx:{<binding>} and gives one back from another connection", async () => {
      const tx = transaction({ maxAge: 60 });
      await store.create(tx, context());
      expect(await redis.exists(sessionKey())).toBe(1);
      expect(await redis.keys(`duo:tx:*${tx.state}*`), 'the state is not in any key name').toEqual([]);
      const raw = (await redis.get(sessionKey()))!;
      expect(raw).toContain(tx.state);
      expect(raw, 'the binding is in the key, not repeated in the value').not.toContain(BINDING);
      const other = new RedisTransactionStore(await connect());
      expect(await other.take(tx.state, context())).toEqual(tx);
    });

    it('gives a transaction out once: the second take finds nothing and the emptied key is gone', async () => {
      const tx = transaction();
      await store.create(tx, context());
      expect(await store.take(tx.state, context())).toEqual(tx);
      expect(await store.take(tx.state, context())).toBeUndefined();
      expect(await redis.exists(sessionKey())).toBe(0);
    });

    it('never overwrites an existing state: create refuses and the first transaction stays', async () => {
      const first = transaction({ username: 'alice' });
      await store.create(first, context());
      const second = { ...transaction({ username: 'mallory' }), state: first.state };
      const error = await store.create(second, context()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DuoError);
      expect((error as DuoError).code).toBe('store_unavailable');
      expect((error as DuoError).message, 'no state in the message').not.toContain(first.state);
      expect(await store.take(first.state, context())).toEqual(first);
    });

    it('lets a transaction expire in Redis at its expiresAt', async () => {
      const binding = newBinding();
      const tx = transaction({ binding, expiresAt: Date.now() + 300 });
      await store.create(tx, context(binding));
      const ttl = await redis.pTTL(sessionKey(binding));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(300);
      await sleep(450);
      expect(await redis.exists(sessionKey(binding))).toBe(0);
      expect(await store.take(tx.state, context(binding))).toBeUndefined();
    });

    it("never outlives its logins: the key's expiry follows the latest live one, also after that one is taken", async () => {
      const binding = newBinding();
      const now = Date.now();
      const short = transaction({ binding, startedAt: now - 1, expiresAt: now + 400 });
      const long = transaction({ binding, startedAt: now, expiresAt: now + 60_000 });
      await store.create(short, context(binding));
      await store.create(long, context(binding));
      expect(await redis.pTTL(sessionKey(binding))).toBeGreaterThan(59_000);
      expect(await store.take(long.state, context(binding))).toEqual(long);
      const ttl = await redis.pTTL(sessionKey(binding));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(400);
      await sleep(550);
      expect(await redis.exists(sessionKey(binding))).toBe(0);
    });

    it('treats a login past its expiresAt as absent even while the key lives on for a later one, and drops its record', async () => {
      const binding = newBinding();
      const now = Date.now();
      const soon = transaction({ binding, startedAt: now - 1, expiresAt: now + 200 });
      const later = transaction({ binding, startedAt: now, expiresAt: now + 60_000 });
      await store.create(soon, context(binding));
      await store.create(later, context(binding));
      await sleep(300);
      expect(await store.take(soon.state, context(binding))).toBeUndefined();
      expect(await storedStates(binding)).toEqual([later.state]);
      expect(await store.take(later.state, context(binding))).toEqual(later);
    });

    it.each([
      ['not in the record format', 'garbage without separators'],
      ['a record for another state', 'OTHER'],
      ['a record with an expiry that is not a number', 'BADEXPIRY'],
      ['a record with too few fields', 'SHORT'],
      ['a record with a negative age', 'NEGATIVE'],
      ['a record with a maxAge that is not a number', 'BADMAXAGE'],
      ['JSON from some other program', '{"state":"STATE","nonce":"n"}'],
    ])('treats a stored value that is %s as absent, without throwing', async (_name, raw) => {
      const binding = newBinding();
      const tx = transaction({ binding });
      const far = (Date.now() + 60_000).toString(36);
      const values: Record<string, string> = {
        OTHER: ['another-state-entirely-xx', far, '0', tx.nonce, 'alice', '/'].join('\x1f'),
        BADEXPIRY: [tx.state, 'soon!', '0', tx.nonce, 'alice', '/'].join('\x1f'),
        SHORT: [tx.state, far, '0', tx.nonce].join('\x1f'),
        NEGATIVE: [tx.state, far, '-5', tx.nonce, 'alice', '/'].join('\x1f'),
        BADMAXAGE: [tx.state, far, '0', tx.nonce, 'alice', '/', 'x.y'].join('\x1f'),
      };
      await redis.set(sessionKey(binding), values[raw] ?? raw.replace('STATE', tx.state), { expiration: { type: 'PX', value: 60_000 } });
      await expect(store.take(tx.state, context(binding))).resolves.toBeUndefined();
      // The session still works: the next login replaces what could not be read.
      const next = transaction({ binding });
      await store.create(next, context(binding));
      expect(await store.take(next.state, context(binding))).toEqual(next);
    });

    it('treats a key of the wrong Redis type as absent, and a new login replaces it', async () => {
      const binding = newBinding();
      await redis.hSet(sessionKey(binding), 'field', 'value');
      const tx = transaction({ binding });
      await expect(store.take(tx.state, context(binding))).resolves.toBeUndefined();
      await store.create(tx, context(binding));
      expect(await store.take(tx.state, context(binding))).toEqual(tx);
    });

    it('ignores a key written by the previous version ({prefix}{state}.{binding}, full JSON): not readable after the upgrade', async () => {
      const binding = newBinding();
      const tx = transaction({ binding });
      await redis.set(`duo:tx:${tx.state}.${binding}`, JSON.stringify(tx), { expiration: { type: 'PX', value: 60_000 } });
      expect(await store.take(tx.state, context(binding))).toBeUndefined();
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

    it('of 50 parallel takes of one state, exactly one wins, and the other pending logins of the session stay', async () => {
      const binding = newBinding();
      const stores = await Promise.all(Array.from({ length: 5 }, async () => new RedisTransactionStore(await connect())));
      const txs = [0, 1, 2].map((i) => transaction({ binding, startedAt: Date.now() + i }));
      for (const tx of txs) await store.create(tx, context(binding));
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % stores.length]!.take(txs[1]!.state, context(binding))));
      expect(results.filter((result) => result !== undefined)).toEqual([txs[1]]);
      expect((await storedStates(binding)).sort()).toEqual([txs[0]!.state, txs[2]!.state].sort());
    });

    it('a take from another session (other binding) neither gets nor consumes the transaction', async () => {
      const tx = transaction();
      await store.create(tx, context());
      expect(await store.take(tx.state, context(newBinding()))).toBeUndefined();
      expect(await store.take(tx.state, { session: {}, maxPendingPerSession: 5 })).toBeUndefined();
      expect(await store.take(tx.state, context('not a binding}{'))).toBeUndefined();
      expect(await store.take(tx.state, context())).toEqual(tx);
    });

    it("another session's logins neither count towards nor evict this session's", async () => {
      const victim = newBinding();
      const attacker = newBinding();
      const mine = transaction({ binding: victim });
      await store.create(mine, context(victim));
      for (let i = 0; i < 20; i++) await store.create(transaction({ binding: attacker }), context(attacker));
      expect(await store.take(mine.state, context(victim))).toEqual(mine);
    });

    it('keeps stores with different prefixes apart', async () => {
      const tx = transaction();
      const tenant = new RedisTransactionStore(storeClient, { prefix: 'app2:duo:' });
      await tenant.create(tx, context());
      expect(await redis.exists(sessionKey(BINDING, 'app2:duo:'))).toBe(1);
      expect(await store.take(tx.state, context())).toBeUndefined();
      expect(await tenant.take(tx.state, context())).toEqual(tx);
    });

    it('runs again after Redis forgot its scripts (SCRIPT FLUSH): EVALSHA falls back to EVAL', async () => {
      await redis.scriptFlush();
      const tx = transaction();
      await store.create(tx, context());
      await redis.scriptFlush();
      expect(await store.take(tx.state, context())).toEqual(tx);
    });
  });

  describe('RedisTransactionStore per-session cap (maxPendingPerSession)', () => {
    it('creating cap + 3 logins for one session keeps the newest cap, the three oldest are gone', async () => {
      const binding = newBinding();
      const now = Date.now();
      const txs = Array.from({ length: 8 }, (_, i) => transaction({ binding, startedAt: now + i, expiresAt: now + 60_000 + i }));
      for (const tx of txs) await store.create(tx, context(binding, 5));
      expect(await storedStates(binding)).toHaveLength(5);
      for (const tx of txs.slice(0, 3)) expect(await store.take(tx.state, context(binding, 5)), 'an oldest one').toBeUndefined();
      for (const tx of txs.slice(3)) expect(await store.take(tx.state, context(binding, 5))).toEqual(tx);
    });

    it('drops the oldest by startedAt, not by arrival, as the session store does', async () => {
      const binding = newBinding();
      const now = Date.now();
      const [a, b, c] = [now + 20, now + 10, now + 30].map((startedAt) => transaction({ binding, startedAt }));
      for (const tx of [a!, b!, c!]) await store.create(tx, context(binding, 2));
      expect(await store.take(b!.state, context(binding, 2))).toBeUndefined();
      expect(await store.take(a!.state, context(binding, 2))).toEqual(a);
      expect(await store.take(c!.state, context(binding, 2))).toEqual(c);
    });

    it('does not count expired logins: they are dropped, and no live one is evicted for them', async () => {
      const binding = newBinding();
      const now = Date.now();
      const old = transaction({ binding, startedAt: now - 10 });
      await store.create(old, context(binding, 3));
      for (let i = 0; i < 2; i++) await store.create(transaction({ binding, startedAt: now + i, expiresAt: now + 200 }), context(binding, 3));
      await sleep(300);
      const fresh = [0, 1].map((i) => transaction({ binding, startedAt: Date.now() + i }));
      for (const tx of fresh) await store.create(tx, context(binding, 3));
      expect((await storedStates(binding)).sort()).toEqual([old.state, ...fresh.map((tx) => tx.state)].sort());
      expect(await store.take(old.state, context(binding, 3))).toEqual(old);
    });

    it('50 parallel creates for one session over five connections never hold more than the cap', async () => {
      const binding = newBinding();
      const cap = 5;
      const stores = await Promise.all(Array.from({ length: 5 }, async () => new RedisTransactionStore(await connect())));
      const watcher = await connectAdmin();
      let most = 0;
      let done = false;
      const watch = (async () => {
        while (!done) {
          most = Math.max(most, (await storedStates(binding, watcher)).length);
          await sleep(0);
        }
      })();
      const txs = Array.from({ length: 50 }, (_, i) => transaction({ binding, startedAt: Date.now() + i }));
      await Promise.all(
        txs.map(async (tx, i) => {
          await stores[i % stores.length]!.create(tx, context(binding, cap));
          most = Math.max(most, (await storedStates(binding, watcher)).length);
        }),
      );
      done = true;
      await watch;
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(cap);
      const left = await storedStates(binding);
      expect(left).toHaveLength(cap);
      const taken = await Promise.all(txs.map((tx) => store.take(tx.state, context(binding, cap))));
      expect(taken.filter((tx) => tx !== undefined)).toHaveLength(cap);
    });

    it('an attack loop of 3,000 creates for one session leaves one key with cap logins, a bounded footprint', async () => {
      const prefix = 'attack:';
      const attackStore = new RedisTransactionStore(storeClient, { prefix });
      const binding = newBinding();
      const before = await usedMemory();
      const started = performance.now();
      const states: string[] = [];
      for (let batch = 0; batch < 30; batch++) {
        const txs = Array.from({ length: 100 }, () => transaction({ binding }));
        states.push(...txs.map((tx) => tx.state));
        await Promise.all(txs.map((tx) => attackStore.create(tx, context(binding, 5))));
      }
      const elapsed = performance.now() - started;
      const after = await usedMemory();
      const { keys, memoryUsage, keyValueBytes } = await footprint(prefix);
      console.log(
        `attack loop: 3000 creates for one session in ${Math.round(elapsed)} ms -> ${keys} key, MEMORY USAGE ${memoryUsage} B, ` +
          `key+value ${keyValueBytes} B, used_memory ${after - before >= 0 ? '+' : ''}${after - before} B`,
      );
      expect(keys).toBe(1);
      expect(memoryUsage).toBeLessThanOrEqual(5 * 300);
      expect(after - before).toBeLessThan(64 * 1024);
      const taken = await Promise.all(states.map((state) => attackStore.take(state, context(binding, 5))));
      expect(taken.filter((tx) => tx !== undefined)).toHaveLength(5);
      expect((await footprint(prefix)).keys).toBe(0);
    });

    it('refuses a context without a usable maxPendingPerSession (fails closed, nothing stored)', async () => {
      const binding = newBinding();
      for (const cap of [undefined, 0, 51, 1.5, Number.NaN]) {
        const bad = { session: { binding }, maxPendingPerSession: cap } as unknown as DuoStoreContext;
        await expect(store.create(transaction({ binding }), bad)).rejects.toThrow(DuoConfigError);
      }
      await expect(store.create(transaction({ binding }), undefined as unknown as DuoStoreContext)).rejects.toThrow(/maxPendingPerSession/);
      expect(await redis.exists(sessionKey(binding))).toBe(0);
    });
  });

  describe('RedisTransactionStore entry size', () => {
    it(`keeps a return path of up to ${MAX_RETURN_TO_BYTES} bytes, and refuses a longer one with input_invalid, storing nothing`, async () => {
      const binding = newBinding();
      const fits = `/${'a'.repeat(MAX_RETURN_TO_BYTES - 1)}`;
      const tx = transaction({ binding, returnTo: fits });
      await store.create(tx, context(binding));
      expect(await store.take(tx.state, context(binding))).toEqual(tx);
      for (const returnTo of [`${fits}b`, `/${'é'.repeat(MAX_RETURN_TO_BYTES / 2)}`]) {
        expect(returnTo.length).toBeLessThanOrEqual(MAX_RETURN_TO_BYTES + 1);
        const error = await store.create(transaction({ binding, returnTo }), context(binding)).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DuoError);
        expect((error as DuoError).code).toBe('input_invalid');
        expect((error as DuoError).message).toMatch(new RegExp(`at most ${MAX_RETURN_TO_BYTES} bytes`));
        expect((error as DuoError).message, 'the path itself is not echoed').not.toContain('aaaa');
      }
      expect(await redis.exists(sessionKey(binding))).toBe(0);
    });

    it.each([
      ['a binding with braces (it is part of the key)', { binding: 'a}b{c' }],
      ['an empty binding', { binding: '' }],
      ['a malformed state', { state: 'short' }],
      ['a malformed nonce', { nonce: 'has spaces in it, which Duo refuses' }],
      ['an empty username', { username: '' }],
      ['a username over 512 characters', { username: 'u'.repeat(513) }],
      ['a username with a control character', { username: 'alice\x1fbob' }],
      ['a return path with a control character', { returnTo: '/a\x1eb' }],
      ['a fractional expiresAt', { expiresAt: Date.now() + 60_000.5 }],
      ['a startedAt after expiresAt', { startedAt: Date.now() + 120_000 }],
      ['a maxAge that is not a whole number', { maxAge: 1.5 }],
      ['a lone surrogate in the username', { username: 'al\ud800ice' }],
    ] as Array<[string, Partial<PendingTransaction>]>)('refuses %s with input_invalid and stores nothing', async (_name, overrides) => {
      const binding = typeof overrides.binding === 'string' ? overrides.binding : newBinding();
      const error = await store.create(transaction({ ...overrides, binding }), context(binding)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DuoError);
      expect((error as DuoError).code).toBe('input_invalid');
      expect(await redis.keys(`duo:tx:{${binding}}`)).toEqual([]);
    });

    it('a pending login takes at most 300 bytes in Redis, key and per-session overhead included', async () => {
      const figures: string[] = [];
      const measure = async (name: string, perSession: number, overrides: Partial<PendingTransaction>): Promise<number> => {
        const prefix = `size${major.major}.${figures.length}:`; // a prefix of its own per major: the sum below is per prefix
        const sizeStore = new RedisTransactionStore(storeClient, { prefix });
        const binding = newBinding();
        for (let i = 0; i < perSession; i++) await sizeStore.create(transaction({ binding, startedAt: Date.now() + i, ...overrides }), context(binding, 5));
        const { memoryUsage, keyValueBytes } = await footprint(prefix);
        figures.push(`${name}, ${perSession} per session: MEMORY USAGE ${memoryUsage / perSession} B, key+value ${keyValueBytes / perSession} B per login`);
        return memoryUsage / perSession;
      };
      const typical = await measure("'alice', '/account'", 1, {});
      const email = await measure("'alice.smith@example.com', '/reports/2024?quarter=3'", 1, { username: 'alice.smith@example.com', returnTo: '/reports/2024?quarter=3' });
      const five = await measure("'alice', '/account'", 5, {});
      const stepUp = await measure("'alice', '/account', maxAge 300", 1, { maxAge: 300 });
      console.log(`bytes per pending login (${major.name}):\n  ${figures.join('\n  ')}`);
      for (const bytes of [typical, email, five, stepUp]) expect(bytes).toBeLessThanOrEqual(300);
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

    it('gives up on a hung Redis after commandTimeoutMs instead of waiting forever, for create and take', async () => {
      const own = await RedisServer.start();
      try {
        const ownStore = new RedisTransactionStore(await connect(own.url), { commandTimeoutMs: 300 });
        own.pause();
        for (const call of [() => ownStore.take(randomToken(32), context()), () => ownStore.create(transaction(), context())]) {
          const started = performance.now();
          await expect(call()).rejects.toThrow(/did not answer within 300 ms/);
          expect(performance.now() - started).toBeLessThan(1000);
        }
        own.resume();
        const tx = transaction();
        await ownStore.create(tx, context());
        expect(await ownStore.take(tx.state, context())).toEqual(tx);
      } finally {
        await own.close();
      }
    }, 5000);
  });
});
