import { Logger } from '@nestjs/common';
import { createClient, type RedisClientType } from 'redis';
import { redisAddress } from './sample.config.js';

/** The injection token of the current app instance (a SampleInstance from the configuration). */
export const SAMPLE_INSTANCE = 'SAMPLE_INSTANCE';

/** Attempts to reach Redis at startup before the sample gives up and says so. */
const STARTUP_ATTEMPTS = 3;

/** Redis unreachable at startup (REDIS_URL set): the message names the variable and the fix. */
export class SampleRedisError extends Error {
  constructor(redisUrl: string, cause: unknown) {
    const why = describeError(cause);
    super(
      `Redis at REDIS_URL=${redisAddress(redisUrl)} could not be reached (${why}).\n` +
        'Start a Redis server there (for example `redis-server`, or `docker run --rm -p 6379:6379 redis`), ' +
        'or unset REDIS_URL (and SAMPLE_INSTANCES) to run one instance without Redis.',
    );
    this.name = 'SampleRedisError';
  }
}

/**
 * The one Redis client of the process, for sessions (connect-redis) and pending
 * Duo logins (RedisTransactionStore), set up as the README says: while Redis is
 * away, commands fail at once (503) instead of queueing, and the client keeps
 * reconnecting. At startup it gives up after a few attempts, with a clear error.
 */
export async function connectRedis(redisUrl: string): Promise<RedisClientType> {
  const logger = new Logger('Redis');
  let ready = false;
  let lastWarning = 0;
  let outage = false;
  const client: RedisClientType = createClient({
    url: redisUrl,
    disableOfflineQueue: true, // Redis down: commands fail at once instead of queueing
    pingInterval: 1000, // keeps a healthy idle connection from hitting socketTimeout
    socket: {
      connectTimeout: 2000,
      socketTimeout: 5000,
      // Before the first connection: a few quick attempts, then the startup error. After it: retry for ever.
      reconnectStrategy: (retries, cause) => (!ready && retries + 1 >= STARTUP_ATTEMPTS ? cause : Math.min(retries * 100, 2000)),
    },
  });
  // Required: without an 'error' listener, a Redis outage would crash the process.
  client.on('error', (error: unknown) => {
    if (!ready) return; // startup: the error below says it once
    outage = true;
    const now = Date.now();
    if (now - lastWarning < 10_000) return;
    lastWarning = now;
    logger.warn(`${describeError(error)}; routes that need Redis answer 503 until it is back.`);
  });
  client.on('ready', () => {
    if (outage) logger.log('Connected again; sessions and pending logins are served from Redis.');
    outage = false;
    lastWarning = 0;
    ready = true;
  });
  try {
    await client.connect();
  } catch (error) {
    throw new SampleRedisError(redisUrl, error);
  }
  return client;
}

/**
 * Closes the client once the commands in flight are answered. False when a hung
 * Redis did not answer within `timeoutMs`: the caller exits anyway.
 */
export async function closeRedis(client: RedisClientType, timeoutMs = 2000): Promise<boolean> {
  if (!client.isOpen) return true;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const closed = client.close().then(
    () => true,
    () => true, // already closed
  );
  return Promise.race([closed, deadline]).finally(() => clearTimeout(timer));
}

/** A short reason: the message, else the system error code (an AggregateError of ECONNREFUSEDs has no message). */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const inner = (error as { socketError?: unknown }).socketError;
  if (error.message === '' && inner instanceof Error) return describeError(inner);
  if (error.message !== '') return error.message;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  if (error instanceof AggregateError && error.errors.length > 0) return describeError(error.errors[0]);
  return error.name;
}
