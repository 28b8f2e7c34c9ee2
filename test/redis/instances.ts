import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { createClient, type RedisClientType } from 'redis';
import { parse as parseSetCookie } from 'set-cookie-parser';
import { RedisTransactionStore } from '../../src/redis-transaction.store.js';
import type { DuoModuleOptions } from '../../src/index.js';
import { DuoEmulator as DuoEmulatorClass, type DuoEmulator } from '../../src/testing/index.js';
import { RedisServer } from '../support/redis-server.js';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { CapturingLogger, REDIRECT_URI, buildDuoTestApp } from '../support/app.js';
import { CONNECT_REDIS_9, NODE_REDIS_6, type ConnectRedisMajor, type NodeClient, type StoreClient } from './clients.js';

/** A node-redis client set up as the README says: fail fast while Redis is away, reconnect when it is back. */
export async function connectRedis(url: string): Promise<RedisClientType> {
  const client: RedisClientType = createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: 1000, reconnectStrategy: 100 },
  });
  client.on('error', () => {}); // the outage tests cause errors on purpose
  await client.connect();
  return client;
}

export interface Instance<C extends StoreClient = NodeClient> {
  name: string;
  app: INestApplication;
  redis: C;
  baseUrl: string;
  logger: CapturingLogger;
  close(): Promise<void>;
}

export interface InstanceOptions<C extends StoreClient> {
  /** The instance's own Redis client (or cluster client), for sessions and pending logins. */
  connect: () => Promise<C>;
  /** The connect-redis major for sessions. Default connect-redis 9. */
  sessions?: ConnectRedisMajor;
  /** RedisTransactionStore's commandTimeoutMs and guardSessionStore's timeoutMs. Default 1000. */
  timeoutMs?: number;
  /** More DuoModule options (promptLimits, ...). */
  duo?: Partial<DuoModuleOptions>;
}

/**
 * One app instance as it would run in its own process: its own Redis client,
 * sessions in Redis through connect-redis, pending Duo logins in Redis.
 * Without options: node-redis 6 to `redisUrl`, connect-redis 9.
 */
export async function startInstance(name: string, redisUrl: string, emulator: DuoEmulator): Promise<Instance>;
export async function startInstance<C extends StoreClient>(name: string, options: InstanceOptions<C>, emulator: DuoEmulator): Promise<Instance<C>>;
export async function startInstance(name: string, target: string | InstanceOptions<StoreClient>, emulator: DuoEmulator): Promise<Instance<StoreClient>> {
  const options: InstanceOptions<StoreClient> = typeof target === 'string' ? { connect: () => NODE_REDIS_6.connect({ url: target }) } : target;
  const redis = await options.connect();
  const { RedisStore } = options.sessions ?? CONNECT_REDIS_9;
  const timeoutMs = options.timeoutMs ?? 1000;
  const logger = new CapturingLogger();
  // The builder signs every instance's cookies with one secret, as the instances of one app do.
  const { app, baseUrl } = await buildDuoTestApp({
    duo: { ...emulator.clientOptions(REDIRECT_URI), ...options.duo, transactionStore: new RedisTransactionStore(redis, { commandTimeoutMs: timeoutMs }) },
    logger,
    session: {
      store: new RedisStore({ client: redis }),
      guard: { timeoutMs, onError: (error) => logger.warn(`session store: ${error instanceof Error ? error.message : String(error)}`) },
    },
  });
  return {
    name,
    app,
    redis,
    baseUrl,
    logger,
    close: async () => {
      await app.close();
      redis.destroy();
    },
  };
}

/**
 * A browser's cookie jar for one host: cookies ignore ports, so every instance
 * on 127.0.0.1 gets the same cookies, as behind a load balancer.
 */
export class CookieJar {
  readonly #cookies = new Map<string, string>();

  header(): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  update(response: Response): void {
    for (const cookie of parseSetCookie(response.headers.getSetCookie(), { decodeValues: false })) {
      const gone = (cookie.maxAge !== undefined && cookie.maxAge <= 0) || (cookie.expires !== undefined && cookie.expires.getTime() <= Date.now());
      if (gone) this.#cookies.delete(cookie.name);
      else this.#cookies.set(cookie.name, cookie.value);
    }
  }

  copy(): CookieJar {
    const jar = new CookieJar();
    for (const [name, value] of this.#cookies) jar.#cookies.set(name, value);
    return jar;
  }
}

/** A request the way a browser sends it: cookies from the jar, redirects not followed, new cookies kept. */
export async function request(
  instance: { baseUrl: string },
  jar: CookieJar,
  path: string,
  init: { method?: string; json?: unknown; accept?: string } = {},
): Promise<Response & { ms: number }> {
  const headers: Record<string, string> = { accept: init.accept ?? 'text/html' };
  const cookie = jar.header();
  if (cookie) headers.cookie = cookie;
  if (init.json !== undefined) headers['content-type'] = 'application/json';
  const started = performance.now();
  const response = await fetch(`${instance.baseUrl}${path}`, {
    method: init.method ?? 'GET',
    headers,
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
  });
  jar.update(response);
  return Object.assign(response, { ms: performance.now() - started });
}

/** The path and query of a URL aimed at the redirect URI, to send to whichever instance. */
export function pathOf(location: string): string {
  const url = new URL(location);
  return `${url.pathname}${url.search}`;
}

/** What `threeInstances()` sets up for a test file: one redis-server, one emulator, an admin client, instances A, B and C. */
export interface ThreeInstances {
  server: RedisServer;
  emulator: DuoEmulator;
  admin: RedisClientType;
  all: Instance[];
}

/**
 * Registers beforeAll/afterAll for a file whose tests run on three instances of one app
 * (node-redis 6, connect-redis 9) sharing one redis-server and one emulator, with these
 * DuoModule options; the returned object is filled in before the first test.
 */
export function threeInstances(duo: Partial<DuoModuleOptions>): ThreeInstances {
  const setup = {} as ThreeInstances;
  beforeAll(async () => {
    [setup.server, setup.emulator] = await Promise.all([RedisServer.start(), DuoEmulatorClass.start()]);
    setup.admin = await connectRedis(setup.server.url);
    const options = { connect: () => NODE_REDIS_6.connect({ url: setup.server.url }), duo };
    setup.all = await Promise.all(['A', 'B', 'C'].map((name) => startInstance(name, options, setup.emulator)));
  });
  afterAll(async () => {
    await Promise.all((setup.all ?? []).map((instance) => instance.close()));
    setup.admin?.destroy();
    await setup.emulator?.close();
    await setup.server?.close();
  });
  return setup;
}

/** What `redisAndEmulator()` sets up for a test file: one redis-server, one emulator, an inspecting client, and store clients on demand. */
export interface RedisAndEmulator {
  server: RedisServer;
  emulator: DuoEmulator;
  /** A client of the test's own, to read what the app wrote. */
  inspector: RedisClientType;
  /** A new node-redis 6 client for an app's store (closed after the file). */
  storeClient(): Promise<NodeClient>;
}

/** Registers beforeAll/afterAll/beforeEach (emulator reset) for a file that builds its own apps on one redis-server and one emulator. */
export function redisAndEmulator(): RedisAndEmulator {
  const clients: NodeClient[] = [];
  const setup = {
    storeClient: async () => {
      const client = await NODE_REDIS_6.connect({ url: setup.server.url });
      clients.push(client);
      return client;
    },
  } as RedisAndEmulator;
  beforeAll(async () => {
    [setup.server, setup.emulator] = await Promise.all([RedisServer.start(), DuoEmulatorClass.start()]);
    setup.inspector = await connectRedis(setup.server.url);
  });
  afterAll(async () => {
    setup.inspector?.destroy();
    for (const client of clients) client.destroy();
    await setup.emulator?.close();
    await setup.server?.close();
  });
  beforeEach(() => setup.emulator?.reset());
  return setup;
}
