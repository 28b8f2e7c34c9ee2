import { DuoConfigError, DuoError } from './protocol/index.js';
import type { DuoStoreContext, DuoTransactionStore, PendingTransaction } from './transaction.store.js';

/**
 * The two commands the store sends, as node-redis v4 and v5 (`createClient()`,
 * `createCluster()`) spell them. Typed here so that the package does not
 * depend on `redis` at runtime.
 */
export interface RedisTransactionClient {
  set(key: string, value: string, options: RedisSetIfAbsentOptions): Promise<unknown>;
  getDel(key: string): Promise<unknown>;
}

/**
 * `SET ... PX ttl NX`, written both ways: node-redis v5 reads `expiration` and
 * `condition` and ignores the rest; v4 reads `PX` and `NX` (deprecated in v5).
 */
export interface RedisSetIfAbsentOptions {
  expiration: { type: 'PX'; value: number };
  condition: 'NX';
  PX: number;
  NX: true;
}

export interface RedisTransactionStoreOptions {
  /** Prepended to the state to form the Redis key. Default `duo:tx:`. */
  prefix?: string;
  /**
   * How long a command may take before the store gives up, in milliseconds
   * (the module then answers 503). A hung Redis, unlike a down one, makes a
   * client wait forever; this deadline bounds it. Default 2000; 0 turns it off.
   */
  commandTimeoutMs?: number;
}

/**
 * Pending Duo logins in Redis, for apps running several instances: a login
 * started on one instance can finish on another, and of any number of
 * callbacks carrying one state, on any instances, exactly one takes it.
 * `create` is `SET key value PX ttl NX` (set-if-absent with expiry), `take`
 * is `GETDEL` (Redis 6.2 or later).
 *
 * The key is `{prefix}{state}.{binding}`: a callback from another session
 * (whose binding differs) cannot even reach, let alone consume, the victim's
 * pending login, so knowing a state is not enough to cancel someone's login.
 *
 * No per-session cap (`maxPendingPerSession`) is kept here: every key expires
 * with its transaction, so the TTL bounds what a session can pile up.
 *
 * Pass a node-redis client (https://github.com/redis/node-redis), the client
 * Redis itself maintains; `connect-redis` takes the same client for sessions.
 * Create it so that a Redis outage fails fast (503) instead of queueing
 * requests until Redis is back:
 *
 * ```ts
 * const redis = createClient({
 *   url: process.env.REDIS_URL,
 *   disableOfflineQueue: true, // while disconnected, commands fail at once
 *   pingInterval: 1000, // keeps a healthy idle connection from hitting socketTimeout
 *   socket: { connectTimeout: 2000, socketTimeout: 5000, reconnectStrategy: (retries) => Math.min(retries * 100, 2000) },
 * });
 * redis.on('error', (error) => logger.warn(`Redis: ${error.message}`)); // without a listener an outage crashes the app
 * await redis.connect();
 * DuoModule.forRoot({ ..., transactionStore: new RedisTransactionStore(redis) });
 * ```
 *
 * Client errors propagate; the module answers them with 503 `store_unavailable`.
 */
export class RedisTransactionStore implements DuoTransactionStore {
  readonly prefix: string;
  readonly #client: RedisTransactionClient;
  readonly #timeoutMs: number;

  constructor(client: RedisTransactionClient, options: RedisTransactionStoreOptions = {}) {
    const candidate = client as Partial<RedisTransactionClient> | null | undefined;
    if (!candidate || typeof candidate.set !== 'function' || typeof candidate.getDel !== 'function') {
      throw new DuoConfigError('RedisTransactionStore needs a node-redis client (createClient() from the "redis" package, v4 or later).');
    }
    const prefix = options.prefix ?? 'duo:tx:';
    if (typeof prefix !== 'string') throw new DuoConfigError('RedisTransactionStore option "prefix" must be a string.');
    const timeoutMs = options.commandTimeoutMs ?? 2000;
    if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 0) {
      throw new DuoConfigError('RedisTransactionStore option "commandTimeoutMs" must be a whole number of milliseconds (0 for none).');
    }
    this.#client = client;
    this.prefix = prefix;
    this.#timeoutMs = timeoutMs;
  }

  async create(transaction: PendingTransaction, _context?: DuoStoreContext): Promise<void> {
    const ttl = Math.max(1, Math.ceil(transaction.expiresAt - Date.now()));
    const options: RedisSetIfAbsentOptions = { expiration: { type: 'PX', value: ttl }, condition: 'NX', PX: ttl, NX: true };
    const reply = await this.#deadline(this.#client.set(this.key(transaction.state, transaction.binding), JSON.stringify(transaction), options));
    // NX answers null when the key exists: a state collision, practically impossible, never an overwrite.
    if (text(reply) !== 'OK') {
      throw new DuoError('store_unavailable', 'A pending Duo login with this state already exists; it was left alone. Try again.');
    }
  }

  async take(state: string, context?: DuoStoreContext): Promise<PendingTransaction | undefined> {
    const binding = context?.session.binding;
    // A session that never started a login has nothing pending anywhere.
    if (typeof binding !== 'string' || binding.length === 0) return undefined;
    const value = text(await this.#deadline(this.#client.getDel(this.key(state, binding))));
    if (value === undefined) return undefined;
    const transaction = parseTransaction(value, state);
    return transaction?.binding === binding ? transaction : undefined;
  }

  /** The Redis key of one pending login. */
  key(state: string, binding: string): string {
    return `${this.prefix}${state}.${binding}`;
  }

  #deadline<T>(command: Promise<T>): Promise<T> {
    if (this.#timeoutMs === 0) return command;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#timeoutMs} ms.`)), this.#timeoutMs);
    });
    // A command that answers after the deadline is dropped: a late GETDEL only loses that login, which is started again.
    return Promise.race([command, timeout]).finally(() => clearTimeout(timer));
  }
}

/** A reply as text: node-redis gives strings, or Buffers under a RESP3 type mapping. */
function text(reply: unknown): string | undefined {
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString('utf8');
  return undefined;
}

/** A stored value back into a transaction; anything malformed is treated as absent, never as a crash. */
function parseTransaction(value: string, state: string): PendingTransaction | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const tx = parsed as Record<string, unknown>;
  const strings = ['nonce', 'username', 'returnTo', 'binding'] as const;
  if (tx.state !== state || strings.some((key) => typeof tx[key] !== 'string')) return undefined;
  if (!Number.isFinite(tx.startedAt) || !Number.isFinite(tx.expiresAt)) return undefined;
  if (tx.maxAge !== undefined && !Number.isFinite(tx.maxAge)) return undefined;
  return {
    state,
    nonce: tx.nonce as string,
    username: tx.username as string,
    returnTo: tx.returnTo as string,
    binding: tx.binding as string,
    startedAt: tx.startedAt as number,
    expiresAt: tx.expiresAt as number,
    ...(tx.maxAge === undefined ? {} : { maxAge: tx.maxAge as number }),
  };
}
