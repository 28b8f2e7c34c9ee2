import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import { RedisStore } from 'connect-redis';
import { createClient, type RedisClientType } from 'redis';
import { parse as parseSetCookie } from 'set-cookie-parser';
import { RedisTransactionStore } from '../../src/redis-transaction.store.js';
import type { DuoEmulator } from '../../src/testing/index.js';
import { CapturingLogger, REDIRECT_URI, buildDuoTestApp } from '../support/app.js';

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

export interface Instance {
  name: string;
  app: INestApplication;
  redis: RedisClientType;
  baseUrl: string;
  logger: CapturingLogger;
  close(): Promise<void>;
}

/**
 * One app instance as it would run in its own process: its own Redis client,
 * sessions in Redis through connect-redis, pending Duo logins in Redis.
 */
export async function startInstance(name: string, redisUrl: string, emulator: DuoEmulator): Promise<Instance> {
  const redis = await connectRedis(redisUrl);
  const logger = new CapturingLogger();
  // The builder signs every instance's cookies with one secret, as the instances of one app do.
  const { app, baseUrl } = await buildDuoTestApp({
    duo: { ...emulator.clientOptions(REDIRECT_URI), transactionStore: new RedisTransactionStore(redis, { commandTimeoutMs: 1000 }) },
    logger,
    session: {
      store: new RedisStore({ client: redis }),
      guard: { timeoutMs: 1000, onError: (error) => logger.warn(`session store: ${error instanceof Error ? error.message : String(error)}`) },
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
  instance: Instance,
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
