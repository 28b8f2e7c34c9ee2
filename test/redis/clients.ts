import { readFileSync } from 'node:fs';
import { RedisStore as RedisStore9 } from 'connect-redis';
import { RedisStore as RedisStore10 } from 'connect-redis10';
import { createClient as createClient6, createCluster as createCluster6 } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis5';
import type { RedisTransactionClient } from '../../src/index.js';

/**
 * The client majors the Redis suites run against: node-redis 6 (the `redis`
 * devDependency) and 5 (`redis5`, an npm alias), and connect-redis 9 and 10
 * (`connect-redis10`). Each suite takes its clients from here, so a test
 * proves the store and the session wiring on every supported major.
 */

/** The installed version (the packages do not export their package.json; npm aliases install under their alias). */
const versionOf = (name: string): string =>
  (JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as { version: string }).version;

/** What the suites need of a node-redis client or cluster: the store's two commands, and closing it. */
export type StoreClient = RedisTransactionClient & { readonly isOpen: boolean; destroy(): void };
/** A single-node client, which also tells when it is connected again, and answers PING (in order with the commands before it). */
export type NodeClient = StoreClient & { readonly isReady: boolean; ping(): Promise<unknown> };

/** The client options the README gives: fail at once while Redis is away (no offline queue), reconnect quickly. */
export interface ClientSettings {
  url: string;
  connectTimeoutMs?: number;
  reconnectMs?: number;
}

export interface NodeRedisMajor {
  /** `node-redis 6.3.1` */
  name: string;
  major: number;
  /** A connected client; its 'error' events are swallowed (the outage tests cause them on purpose). */
  connect(settings: ClientSettings): Promise<NodeClient>;
  /** A connected createCluster() client, set up the same way. */
  connectCluster(settings: ClusterSettings): Promise<StoreClient>;
}

function major(version: string): number {
  return Number(version.split('.')[0]);
}

const socket = (settings: Omit<ClientSettings, 'url'>) => ({ connectTimeout: settings.connectTimeoutMs ?? 1000, reconnectStrategy: settings.reconnectMs ?? 100 });

const v6 = versionOf('redis');
const v5 = versionOf('redis5');

/** createCluster()'s settings here: the root nodes, and node-redis 6's topology refresh (absent on 5). */
export interface ClusterSettings extends Omit<ClientSettings, 'url'> {
  rootUrls: string[];
  /** node-redis 6's `topologyRefreshOnReconnectionAttemptStrategy`; left at the client's default when absent. */
  topologyRefreshMs?: number | false;
}

export const NODE_REDIS_6: NodeRedisMajor = {
  name: `node-redis ${v6}`,
  major: major(v6),
  async connect(settings) {
    const client = createClient6({ url: settings.url, disableOfflineQueue: true, socket: socket(settings) });
    client.on('error', () => {});
    await client.connect();
    return client; // a NodeClient without a cast: the store's interface is what createClient() gives
  },
  async connectCluster(settings) {
    const cluster = createCluster6({
      rootNodes: settings.rootUrls.map((url) => ({ url })),
      defaults: { disableOfflineQueue: true, socket: socket(settings) },
      ...(settings.topologyRefreshMs === undefined ? {} : { topologyRefreshOnReconnectionAttemptStrategy: settings.topologyRefreshMs }),
    });
    cluster.on('error', () => {});
    await cluster.connect();
    return cluster;
  },
};

export const NODE_REDIS_5: NodeRedisMajor = {
  name: `node-redis ${v5}`,
  major: major(v5),
  async connect(settings) {
    const client = createClient5({ url: settings.url, disableOfflineQueue: true, socket: socket(settings) });
    client.on('error', () => {});
    await client.connect();
    return client;
  },
  async connectCluster(settings) {
    if (settings.topologyRefreshMs !== undefined) throw new Error('node-redis 5 has no topology refresh on reconnection (topologyRefreshOnReconnectionAttemptStrategy came with 6)');
    const cluster = createCluster5({ rootNodes: settings.rootUrls.map((url) => ({ url })), defaults: { disableOfflineQueue: true, socket: socket(settings) } });
    cluster.on('error', () => {});
    await cluster.connect();
    return cluster;
  },
};

/** Newest first. */
export const NODE_REDIS_MAJORS: NodeRedisMajor[] = [NODE_REDIS_6, NODE_REDIS_5];

/** The Store class of a connect-redis major; both take `{ client, prefix? }`. */
export type SessionStoreClass = typeof RedisStore9 | typeof RedisStore10;

export interface ConnectRedisMajor {
  name: string;
  major: number;
  RedisStore: SessionStoreClass;
}

const c9 = versionOf('connect-redis');
const c10 = versionOf('connect-redis10');
export const CONNECT_REDIS_10: ConnectRedisMajor = { name: `connect-redis ${c10}`, major: major(c10), RedisStore: RedisStore10 };
export const CONNECT_REDIS_9: ConnectRedisMajor = { name: `connect-redis ${c9}`, major: major(c9), RedisStore: RedisStore9 };
export const CONNECT_REDIS_MAJORS: ConnectRedisMajor[] = [CONNECT_REDIS_10, CONNECT_REDIS_9];

/** Every pairing of a node-redis and a connect-redis major (connect-redis 9 and 10 take node-redis 5 and later). */
export const CLIENT_PAIRS: Array<{ name: string; redis: NodeRedisMajor; sessions: ConnectRedisMajor }> = NODE_REDIS_MAJORS.flatMap((redis) =>
  CONNECT_REDIS_MAJORS.map((sessions) => ({ name: `${redis.name} + ${sessions.name}`, redis, sessions })),
);
