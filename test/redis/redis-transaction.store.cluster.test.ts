import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { freePort } from '../support/redis-server.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DuoStoreContext, PendingTransaction } from '../../src/index.js';
import { RedisTransactionStore } from '../../src/redis-transaction.store.js';
import { randomToken } from '../../src/protocol/random.js';
import { CLIENT_PAIRS, NODE_REDIS_MAJORS, type StoreClient } from './clients.js';

/**
 * The store on a real three-node Redis Cluster (Debian's redis-server, 7.0 or
 * later for cluster-port and ADDSLOTSRANGE), reached through node-redis's
 * createCluster() of each major: every script call is routed by its one key,
 * whatever node owns the session's slot. And connect-redis on the same
 * cluster client: what works, and the two calls that cannot.
 */
const HOST = '127.0.0.1';
const SLOTS: Array<[number, number]> = [
  [0, 5460],
  [5461, 10922],
  [10923, 16383],
];

interface Node {
  port: number;
  busPort: number;
  child: ChildProcess;
  admin: RedisClientType;
}

let dir: string;
const nodes: Node[] = [];
let cluster: StoreClient;
let store: RedisTransactionStore;


async function startNode(index: number): Promise<Node> {
  const [port, busPort] = [await freePort(), await freePort()];
  const binary = process.env.REDIS_SERVER_BIN ?? 'redis-server';
  const args = ['--port', String(port), '--bind', HOST, '--cluster-enabled', 'yes', '--cluster-port', String(busPort)];
  args.push('--cluster-config-file', join(dir, `nodes-${index}.conf`), '--cluster-node-timeout', '5000');
  args.push('--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning');
  const child = spawn(binary, args, { stdio: 'ignore' });
  process.once('exit', () => child.kill('SIGKILL'));
  const admin: RedisClientType = createClient({ url: `redis://${HOST}:${port}`, socket: { connectTimeout: 1000, reconnectStrategy: 50 } });
  admin.on('error', () => {});
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      await admin.connect();
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`redis-server (cluster node ${index}) did not start on port ${port}: ${String(error)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return { port, busPort, child, admin };
}

const context = (binding: string, maxPendingPerSession = 5): DuoStoreContext => ({ session: { binding }, maxPendingPerSession });

function transaction(binding: string, startedAt = Date.now()): PendingTransaction {
  return { state: randomToken(32), nonce: randomToken(32), username: 'alice', returnTo: '/account', binding, startedAt, expiresAt: startedAt + 60_000 };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'duo-cluster-'));
  for (let i = 0; i < SLOTS.length; i++) nodes.push(await startNode(i));
  for (const [i, node] of nodes.entries()) await node.admin.sendCommand(['CLUSTER', 'ADDSLOTSRANGE', String(SLOTS[i]![0]), String(SLOTS[i]![1])]);
  for (const node of nodes.slice(1)) {
    await nodes[0]!.admin.sendCommand(['CLUSTER', 'MEET', HOST, String(node.port), String(node.busPort)]);
  }
  const ready = async (): Promise<boolean> => {
    const infos = await Promise.all(nodes.map((node) => node.admin.sendCommand(['CLUSTER', 'INFO']) as Promise<string>));
    return infos.every((info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${nodes.length}`));
  };
  const deadline = Date.now() + 15_000;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error('the three-node Redis Cluster did not reach cluster_state:ok within 15 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 30_000);

afterAll(async () => {
  for (const node of nodes) {
    if (node.admin.isOpen) node.admin.destroy();
    node.child.kill('SIGKILL');
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.each(NODE_REDIS_MAJORS.map((each) => [each.name, each] as const))('RedisTransactionStore on a Redis Cluster (createCluster of %s)', (_name, major) => {
  beforeAll(async () => {
    // connectCluster returns createCluster()'s client as the store's client type: it satisfies the interface without a cast.
    cluster = await major.connectCluster({ rootUrls: [`redis://${HOST}:${nodes[0]!.port}`] });
    store = new RedisTransactionStore(cluster);
  });

  afterAll(() => cluster?.destroy());

  it("spreads sessions over the nodes, and each session's logins come back from the node owning its slot", async () => {
    const sessions = Array.from({ length: 30 }, () => randomToken(18));
    const txs = sessions.map((binding) => transaction(binding));
    await Promise.all(txs.map((tx) => store.create(tx, context(tx.binding))));
    const perNode = await Promise.all(nodes.map((node) => node.admin.dbSize()));
    expect(perNode.reduce((sum, count) => sum + count, 0)).toBe(30);
    expect(perNode.filter((count) => count > 0).length, `keys per node: ${perNode.join(', ')}`).toBeGreaterThanOrEqual(2);
    const taken = await Promise.all(txs.map((tx) => store.take(tx.state, context(tx.binding))));
    expect(taken).toEqual(txs);
    expect(await Promise.all(nodes.map((node) => node.admin.dbSize()))).toEqual([0, 0, 0]);
  });

  it('keeps the cap: cap + 3 creates for one session leave the newest cap, and 50 parallel creates never more', async () => {
    const binding = randomToken(18);
    const now = Date.now();
    const txs = Array.from({ length: 8 }, (_, i) => transaction(binding, now + i));
    for (const tx of txs) await store.create(tx, context(binding));
    for (const tx of txs.slice(0, 3)) expect(await store.take(tx.state, context(binding))).toBeUndefined();
    for (const tx of txs.slice(3)) expect(await store.take(tx.state, context(binding))).toEqual(tx);

    const burst = Array.from({ length: 50 }, (_, i) => transaction(binding, Date.now() + i));
    await Promise.all(burst.map((tx) => store.create(tx, context(binding))));
    const left = await Promise.all(burst.map((tx) => store.take(tx.state, context(binding))));
    expect(left.filter((tx) => tx !== undefined)).toHaveLength(5);
  });

  it('of 50 parallel takes of one state exactly one wins; another session gets nothing and cancels nothing', async () => {
    const binding = randomToken(18);
    const tx = transaction(binding);
    await store.create(tx, context(binding));
    expect(await store.take(tx.state, context(randomToken(18)))).toBeUndefined();
    const results = await Promise.all(Array.from({ length: 50 }, () => store.take(tx.state, context(binding))));
    expect(results.filter((result) => result !== undefined)).toEqual([tx]);
  });

  it('keeps the prompt limits\' counts on whatever node owns each key: 10 keys hit 3 times each, in parallel, all counted', async () => {
    const counts = new RedisTransactionStore(cluster, { prefix: `limits-test:${major.name.replace(/\W/g, '')}:` });
    const keys = Array.from({ length: 10 }, (_, i) => `duo:limit:ip:${randomToken(16).slice(0, 20)}${String(i).padStart(2, '0')}`);
    await Promise.all(keys.flatMap((key) => [1, 2, 3].map(() => counts.countAttempt(key, 10_000, 1))));
    for (const key of keys) expect((await counts.countAttempt(key, 10_000, 0)).count).toBe(3);
    // Gone again, so that the key counts of the next suite on this cluster see none of them.
    await Promise.all(keys.map((key) => cluster.eval("return redis.call('DEL', KEYS[1])", { keys: [`${counts.prefix}${key}`], arguments: [] })));
    expect(await Promise.all(nodes.map((node) => node.admin.dbSize()))).toEqual([0, 0, 0]);
  });

  it('runs on every node after their script caches are flushed (EVALSHA falls back to EVAL on the owning node)', async () => {
    await Promise.all(nodes.map((node) => node.admin.scriptFlush()));
    const txs = Array.from({ length: 12 }, () => transaction(randomToken(18)));
    await Promise.all(txs.map((tx) => store.create(tx, context(tx.binding))));
    expect(await Promise.all(txs.map((tx) => store.take(tx.state, context(tx.binding))))).toEqual(txs);
  });
});

describe.each(CLIENT_PAIRS.map((pair) => [pair.name, pair] as const))('connect-redis on the same Redis Cluster (%s)', (_name, { redis, sessions }) => {
  let sessionClient: StoreClient;
  afterAll(() => sessionClient?.destroy());

  const sixOrLater = redis.major >= 6;
  it(`keeps each session on the node owning its slot; length() and ids() scan every master; all() and clear() ${sixOrLater ? 'work (node-redis 6 splits MGET and DEL by slot)' : 'fail with CROSSSLOT'}`, async () => {
    sessionClient = await redis.connectCluster({ rootUrls: [`redis://${HOST}:${nodes[0]!.port}`] });
    const prefix = `sess.${redis.major}.${sessions.major}:`;
    const sessionStore = new sessions.RedisStore({ client: sessionClient, prefix });
    const ids = Array.from({ length: 12 }, () => randomToken(24));
    const cookie = { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000) };
    await Promise.all(ids.map((id) => sessionStore.set(id, { cookie, user: { username: id } } as never)));
    const perNode = await Promise.all(nodes.map(async (node) => (await node.admin.keys(`${prefix}*`)).length));
    expect(perNode.filter((count) => count > 0).length, `sessions per node: ${perNode.join(', ')}`).toBeGreaterThanOrEqual(2);
    const username = async (id: string): Promise<string | undefined> => ((await sessionStore.get(id)) as unknown as { user?: { username: string } } | null)?.user?.username;
    for (const id of ids) expect(await username(id)).toBe(id);
    expect(await sessionStore.length()).toBe(12);
    expect(((await sessionStore.ids()) as string[]).sort()).toEqual([...ids].sort());
    if (sixOrLater) {
      const all = (await sessionStore.all()) as unknown as Array<{ id: string; user: { username: string } }>;
      expect(all.map((each) => each.user.username).sort()).toEqual([...ids].sort());
      await sessionStore.clear();
      expect(await sessionStore.length()).toBe(0);
    } else {
      // node-redis 5 sends one MGET / DEL with every session key, which a cluster refuses when the keys hash to different slots.
      await expect(sessionStore.all()).rejects.toThrow(/CROSSSLOT/);
      await expect(sessionStore.clear()).rejects.toThrow(/CROSSSLOT/);
      expect(await sessionStore.length()).toBe(12);
      await Promise.all(ids.map((id) => sessionStore.destroy(id)));
      expect(await sessionStore.length()).toBe(0);
    }
  });
});
