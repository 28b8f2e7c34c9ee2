import { createCluster } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { RedisCluster, type ClusterNode } from '../support/redis-cluster.js';
import { serverVersion } from '../support/redis-server.js';
import { CONNECT_REDIS_10, NODE_REDIS_5, NODE_REDIS_6, type StoreClient } from './clients.js';
import { CookieJar, pathOf, request, startInstance, type Instance } from './instances.js';

/**
 * A Redis Cluster failover, for real: six redis-server processes on 127.0.0.1
 * (three masters, three replicas, `redis-cli --cluster create ...
 * --cluster-replicas 1`, cluster-node-timeout 1000 ms), three app instances,
 * each with its own node-redis 6 createCluster() client for connect-redis and
 * RedisTransactionStore, set up as the README says. The master holding
 * pending logins is killed with SIGKILL; its replica takes over. While its
 * slots are down, every request that needs them answers 503 (never 200
 * without a second factor, never 500); once the cluster is ok again, every
 * instance finds the promoted replica by itself (node-redis 6's
 * topologyRefreshOnReconnectionAttemptStrategy: the slot map is read again
 * while a node keeps failing to reconnect), and the logins pending at the kill
 * finish. node-redis 5 has no such refresh: its cluster client re-reads the
 * slot map only on MOVED/ASK, which a dead node never sends, so it kept
 * failing until the dead node was back.
 */

/** The cluster client as the README sets it up ("Running several instances"), option for option. */
async function connectAsTheReadmeSays(rootUrls: string[]): Promise<StoreClient> {
  const redis = createCluster({
    rootNodes: rootUrls.map((url) => ({ url })),
    defaults: {
      disableOfflineQueue: true,
      pingInterval: 1000,
      socket: { connectTimeout: 1000, socketTimeout: 5000, reconnectStrategy: (retries) => Math.min(retries * 50, 200) },
    },
    topologyRefreshOnReconnectionAttemptStrategy: 500,
  });
  redis.on('error', () => {}); // the app logs these; here the kill causes them on purpose
  await redis.connect();
  return redis;
}
/** The target: logins work again within this long after cluster_state is ok. */
const RECOVERY_TARGET_MS = 2000;

let cluster: RedisCluster;
let emulator: DuoEmulator;
let instances: Array<Instance<StoreClient>>;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  [cluster, emulator] = await Promise.all([RedisCluster.start({ masters: 3, replicasPerMaster: 1, nodeTimeoutMs: 1000 }), DuoEmulator.start()]);
  instances = await Promise.all(
    ['A', 'B', 'C'].map((name) =>
      startInstance(name, { connect: () => connectAsTheReadmeSays(cluster.urls), sessions: CONNECT_REDIS_10 }, emulator),
    ),
  );
}, 40_000);

afterAll(async () => {
  for (const instance of instances ?? []) expect(instance.logger.text()).not.toContain(emulator.clientSecret);
  await Promise.all((instances ?? []).map((instance) => instance.close()));
  await emulator?.close();
  await cluster?.close();
});

/** The session's Redis key (connect-redis's `sess:<id>`), from the signed cookie `connect.sid=s:<id>.<signature>`. */
function sessionKey(jar: CookieJar): string {
  const cookie = /(?:^|; )connect\.sid=([^;]+)/.exec(jar.header());
  const id = cookie ? /^s:([^.]+)\./.exec(decodeURIComponent(cookie[1]!))?.[1] : undefined;
  if (!id) throw new Error(`no signed session cookie in ${jar.header()}`);
  return `sess:${id}`;
}

interface Pending {
  jar: CookieJar;
  /** The callback's path and query, Duo's approval in it. */
  back: string;
  /** The RedisTransactionStore key holding it. */
  txKey: string;
  txMaster: ClusterNode;
}

/** A user of their own for each login: the prompt limits (10 per user in 10 minutes) stay out of the way. */
let users = 0;

/** Signs in on `on`, opens the protected page (a 303 to Duo: a pending login in Redis) and has Duo approve it. */
async function startLogin(on: Instance<StoreClient>): Promise<Pending> {
  const jar = new CookieJar();
  expect((await request(on, jar, '/login', { method: 'POST', json: { username: `user${++users}` } })).status).toBe(201);
  const start = await request(on, jar, '/account');
  expect(start.status).toBe(303);
  const back = await emulator.authorize(start.headers.get('location')!);
  const state = new URL(back).searchParams.get('state')!;
  const holding = await cluster.keysHolding('duo:tx:*', state);
  expect(holding, 'one key holds the pending login').toHaveLength(1);
  return { jar, back: pathOf(back), txKey: holding[0]!.key, txMaster: holding[0]!.master };
}

async function verified(on: Instance<StoreClient>, then: Instance<StoreClient>): Promise<CookieJar> {
  const pending = await startLogin(on);
  expect((await request(then, pending.jar, pending.back)).status).toBe(303);
  expect((await request(on, pending.jar, '/account')).status).toBe(200);
  return pending.jar;
}

/**
 * The cluster's view after a kill, every 25 ms: when the replica says it is
 * master, and when every node says cluster_state:ok after that.
 */
function watchFailover(replica: ClusterNode, killedAt: number): { promoted?: number; clusterOk?: number; done: Promise<void> } {
  const marks: { promoted?: number; clusterOk?: number; done: Promise<void> } = { done: Promise.resolve() };
  marks.done = (async () => {
    while (marks.clusterOk === undefined && performance.now() - killedAt < 20_000) {
      try {
        if (marks.promoted === undefined && (await cluster.role(replica)) === 'master') marks.promoted = performance.now();
        if (marks.promoted !== undefined && (await cluster.allOk())) marks.clusterOk = performance.now();
      } catch {
        // a node busy failing over: ask again
      }
      await sleep(25);
    }
  })();
  return marks;
}

/** Calls `make` until `accept` takes what it made, at most `tries` times. */
async function until<T>(what: string, tries: number, make: () => Promise<T>, accept: (made: T) => Promise<boolean> | boolean): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const made = await make();
    if (await accept(made)) return made;
  }
  throw new Error(`no ${what} in ${tries} tries`);
}

describe('Redis Cluster failover (node-redis 6 createCluster, topology refresh 500 ms)', () => {
  it('works normally across instances, on every master', async () => {
    const [a, b, c] = instances as [Instance<StoreClient>, Instance<StoreClient>, Instance<StoreClient>];
    const masters = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const pending = await startLogin(instances[i % 3]!);
      masters.add(pending.txMaster.index);
      expect((await request(instances[(i + 1) % 3]!, pending.jar, pending.back)).status).toBe(303);
      expect((await request(instances[(i + 2) % 3]!, pending.jar, '/account')).status).toBe(200);
    }
    expect(masters.size, 'pending logins landed on more than one master').toBeGreaterThanOrEqual(2);
    expect([a, b, c].every((instance) => instance.redis.isOpen)).toBe(true);
  });

  it('kill -9 of the master holding pending logins: 503 meanwhile, nothing let through, and every instance logs in again soon after cluster_state is ok', async () => {
    const [a] = instances as [Instance<StoreClient>];
    // The victim: the master holding the first pending login; then one pending login on it to finish on each instance.
    const first = await startLogin(a);
    const victim = first.txMaster;
    const pendings: Pending[] = [first];
    while (pendings.length < instances.length) {
      pendings.push(await until('pending login on the victim', 40, () => startLogin(instances[pendings.length]!), (made) => made.txMaster === victim));
    }
    // Verified sessions whose session key is on the victim, and elsewhere; a signed-in session without the second factor on the victim.
    const onVictim = async (jar: CookieJar): Promise<boolean> => (await cluster.masterOf(sessionKey(jar))) === victim;
    const verifiedThere = await until('verified session on the victim', 40, () => verified(a, instances[1]!), onVictim);
    const verifiedElsewhere = await until('verified session elsewhere', 40, () => verified(a, instances[2]!), async (jar) => !(await onVictim(jar)));
    const unverifiedThere = await until(
      'signed-in session on the victim',
      40,
      async () => {
        const jar = new CookieJar();
        expect((await request(a, jar, '/login', { method: 'POST', json: { username: `user${++users}` } })).status).toBe(201);
        return jar;
      },
      onVictim,
    );
    // A replica that has the pending logins and sessions can take over with them (replication is asynchronous).
    const [replica] = await cluster.replicasOf(victim);
    expect(replica, 'the victim has a replica').toBeDefined();
    const keys = [...pendings.map((pending) => pending.txKey), sessionKey(verifiedThere), sessionKey(unverifiedThere)];
    await expect.poll(async () => (await Promise.all(keys.map((key) => cluster.replicaHas(replica!, key)))).every(Boolean), { timeout: 5000, interval: 50 }).toBe(true);

    const killedAt = performance.now();
    await cluster.kill(victim);

    const marks = watchFailover(replica!, killedAt);
    // Until each instance has finished its pending login: probes on all instances, every 50 ms.
    // Each answer as its status, and for an error its code: `503 session_unavailable`, `200`.
    const statuses = { verifiedThere: new Map<string, number>(), verifiedElsewhere: new Map<string, number>(), unverifiedThere: new Map<string, number>(), callback: new Map<string, number>() };
    const count = async (map: Map<string, number>, response: Response): Promise<void> => {
      const body = await response.text();
      const code = response.status >= 400 ? ` ${(JSON.parse(body) as { error?: string }).error}` : '';
      map.set(`${response.status}${code}`, (map.get(`${response.status}${code}`) ?? 0) + 1);
    };
    const recoveredAt = new Map<string, number>();
    const afterRecovery: Array<{ instance: string; status: number }> = [];
    while (recoveredAt.size < instances.length && performance.now() - killedAt < 25_000) {
      await Promise.all(
        instances.map(async (instance, i) => {
          const [there, elsewhere, unverified] = await Promise.all([
            request(instance, verifiedThere, '/account', { accept: 'application/json' }),
            request(instance, verifiedElsewhere, '/account', { accept: 'application/json' }),
            request(instance, unverifiedThere, '/account', { accept: 'application/json' }),
          ]);
          const recovered = recoveredAt.has(instance.name);
          if (recovered) afterRecovery.push({ instance: instance.name, status: there.status });
          else await count(statuses.verifiedThere, there);
          await count(statuses.verifiedElsewhere, elsewhere);
          await count(statuses.unverifiedThere, unverified);
          if (recovered) return;
          const callback = await request(instance, pendings[i]!.jar, pendings[i]!.back, { accept: 'application/json' });
          await count(statuses.callback, callback);
          if (callback.status === 303) recoveredAt.set(instance.name, performance.now());
        }),
      );
      await sleep(50);
    }
    await marks.done;

    const ms = (at: number | undefined): number => Math.round((at ?? Number.NaN) - killedAt);
    const clusterOk = marks.clusterOk ?? Number.NaN;
    const recovery = instances.map((instance) => Math.round((recoveredAt.get(instance.name) ?? Number.NaN) - clusterOk));
    const tally = (map: Map<string, number>): string => [...map].map(([answer, n]) => `${answer} x${n}`).join(', ');
    const answers = (map: Map<string, number>): string[] => [...map.keys()].sort();
    console.log(
      `failover on ${serverVersion().split(' sha=')[0]}: replica promoted ${ms(marks.promoted)} ms after kill -9, cluster_state ok at ${ms(marks.clusterOk)} ms; ` +
        `first login on the failed-over slots ${recovery.map((each, i) => `${instances[i]!.name} +${each} ms`).join(', ')} after cluster_state ok (target ${RECOVERY_TARGET_MS} ms)\n` +
        `  until then: verified on the victim ${tally(statuses.verifiedThere)}; callbacks ${tally(statuses.callback)}; ` +
        `signed in without Duo on the victim ${tally(statuses.unverifiedThere)}; verified elsewhere ${tally(statuses.verifiedElsewhere)}`,
    );

    expect(marks.clusterOk, 'the cluster failed over').toBeDefined();
    for (const [i, each] of recovery.entries()) expect(each, `instance ${instances[i]!.name}: login after cluster_state ok`).toBeLessThanOrEqual(RECOVERY_TARGET_MS);
    // Until an instance finished its pending login, what needed the victim's slots got 503, and nothing was let through.
    // (While cluster_state is fail, from detection to promotion, the whole cluster refuses commands:
    // cluster-require-full-coverage, Redis's default. Then sessions on the live masters get 503 too.)
    const unavailable = ['503 session_unavailable', '503 store_unavailable'];
    expect(statuses.verifiedThere.get('503 session_unavailable'), 'the outage was seen').toBeGreaterThan(0);
    expect(answers(statuses.verifiedThere).filter((answer) => answer !== '200' && !unavailable.includes(answer)), tally(statuses.verifiedThere)).toEqual([]);
    expect(statuses.callback.get('303'), 'each pending login finished once').toBe(instances.length);
    expect(answers(statuses.callback).filter((answer) => answer !== '303' && !unavailable.includes(answer)), tally(statuses.callback)).toEqual([]);
    // Signed in without the second factor: 503, or 401 second_factor_required once its session answers again; never 200.
    expect(answers(statuses.unverifiedThere).filter((answer) => !answer.startsWith('401 ') && !unavailable.includes(answer)), tally(statuses.unverifiedThere)).toEqual([]);
    expect(answers(statuses.verifiedElsewhere).filter((answer) => answer !== '200' && !unavailable.includes(answer)), tally(statuses.verifiedElsewhere)).toEqual([]);
    expect(afterRecovery.every((probe) => probe.status === 200), 'once recovered, the verified session on the failed-over slots opens the page').toBe(true);
    // The logins pending at the kill finished: their sessions open the page on every instance.
    for (const pending of pendings) for (const instance of instances) expect((await request(instance, pending.jar, '/account')).status).toBe(200);
    expect(emulator.stats.tokenExchanges).toBeGreaterThan(0);

    // The old master comes back as a replica of the new one; nothing changes for the apps.
    await cluster.restart(victim);
    await cluster.waitUntilHealthy(cluster.nodes, 3, 15_000);
    expect(await cluster.role(victim)).toBe('slave');
    for (let i = 0; i < 6; i++) {
      const pending = await startLogin(instances[i % 3]!);
      expect((await request(instances[(i + 1) % 3]!, pending.jar, pending.back)).status).toBe(303);
    }
  }, 60_000);

  it('for comparison: node-redis 6 with the default refresh (5000 ms) recovers later; node-redis 5 not until the dead node is back', async () => {
    const defaults = await startInstance('D (node-redis 6, default refresh)', { connect: () => NODE_REDIS_6.connectCluster({ rootUrls: cluster.urls, reconnectMs: 100 }) }, emulator);
    const five = await startInstance('E (node-redis 5)', { connect: () => NODE_REDIS_5.connectCluster({ rootUrls: cluster.urls, reconnectMs: 100 }) }, emulator);
    try {
      const first = await startLogin(defaults);
      const victim = first.txMaster;
      const second = await until('pending login on the victim', 40, () => startLogin(five), (made) => made.txMaster === victim);
      const [replica] = await cluster.replicasOf(victim);
      await expect.poll(async () => (await cluster.replicaHas(replica!, first.txKey)) && (await cluster.replicaHas(replica!, second.txKey)), { timeout: 5000, interval: 50 }).toBe(true);

      const killedAt = performance.now();
      await cluster.kill(victim);
      const marks = watchFailover(replica!, killedAt);
      let defaultsAt: number | undefined;
      /** node-redis 5's answers once cluster_state was ok again. */
      const fiveAnswers = new Map<string, number>();
      // node-redis 5 is watched for 3 s after cluster_state ok, longer than node-redis 6 needs with either setting.
      while (performance.now() - killedAt < 25_000 && (defaultsAt === undefined || marks.clusterOk === undefined || performance.now() - marks.clusterOk < 3000)) {
        if (defaultsAt === undefined && (await request(defaults, first.jar, first.back, { accept: 'application/json' })).status === 303) defaultsAt = performance.now();
        const afterOk = marks.clusterOk !== undefined;
        const answer = await request(five, second.jar, second.back, { accept: 'application/json' });
        const body = (await answer.json().catch(() => ({}))) as { error?: string };
        const key = `${answer.status} ${body.error ?? ''}`.trim();
        if (afterOk) fiveAnswers.set(key, (fiveAnswers.get(key) ?? 0) + 1);
        await sleep(100);
      }
      await marks.done;
      const clusterOk = marks.clusterOk!;
      await cluster.restart(victim);
      const restartedAt = performance.now();
      let fiveAt: number | undefined;
      while (fiveAt === undefined && performance.now() - restartedAt < 15_000) {
        if ((await request(five, second.jar, second.back, { accept: 'application/json' })).status === 303) fiveAt = performance.now();
        else await sleep(100);
      }
      console.log(
        `for comparison: cluster_state ok ${Math.round(clusterOk - killedAt)} ms after kill -9; node-redis 6 with the default refresh logged in again ` +
          `+${Math.round(defaultsAt! - clusterOk)} ms after it; node-redis 5 answered ${[...fiveAnswers].map(([answer, n]) => `${answer} x${n}`).join(', ')} ` +
          `in the 3 s after it, and logged in ${Math.round(fiveAt! - restartedAt)} ms after the dead node was started again`,
      );
      expect(defaultsAt, 'node-redis 6 with the default refresh recovered by itself').toBeDefined();
      expect(defaultsAt! - clusterOk).toBeGreaterThanOrEqual(0);
      expect(fiveAnswers.size, 'node-redis 5 was asked after the failover').toBeGreaterThan(0);
      const unavailable = ['503 session_unavailable', '503 store_unavailable'];
      expect([...fiveAnswers.keys()].filter((answer) => !unavailable.includes(answer)), "node-redis 5: the dead master's slots kept failing after the failover").toEqual([]);
      expect(fiveAt, 'node-redis 5 recovered once the dead node answered again (MOVED)').toBeDefined();
      await cluster.waitUntilHealthy(cluster.nodes, 3, 15_000);
    } finally {
      await Promise.all([defaults.close(), five.close()]);
    }
  }, 60_000);
});
