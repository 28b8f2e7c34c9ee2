import { createHash } from 'node:crypto';
import { DuoConfigError, DuoError } from './protocol/index.js';
import { isWellFormedState } from './protocol/random.js';
import type { DuoStoreContext, DuoTransactionStore, PendingTransaction } from './transaction.store.js';
import type { DuoAttemptCount } from './prompt-limits.js';
import { MAX_RETURN_PATH_BYTES } from './request.util.js';
import type { DuoErrorCode } from './duo.errors.js';
import { decodeFactorRule } from './factor-rules.js';
import { APPLICATION_NAME } from './duo.options.js';

/**
 * The two commands the store sends, `EVALSHA` and `EVAL`, as node-redis
 * spells them on `createClient()` and `createCluster()` (v6 and v5, tested;
 * v4's options have the same shape). A cluster routes both by `keys[0]`.
 * Typed here so that the package does not depend on `redis` at runtime.
 */
export interface RedisTransactionClient {
  eval(script: string, options: RedisScriptOptions): Promise<unknown>;
  evalSha(sha1: string, options: RedisScriptOptions): Promise<unknown>;
}

/** The keys and arguments of one script call, as node-redis takes them. */
export interface RedisScriptOptions {
  keys: string[];
  arguments: string[];
}

export interface RedisTransactionStoreOptions {
  /**
   * Prepended to `{<binding>}` to form a session's Redis key. Default `duo:tx:`.
   * Keep braces out of it: on a Redis Cluster a `{...}` in the prefix would
   * become the hash tag and put every session on one slot.
   */
  prefix?: string;
  /**
   * How long a command may take before the store gives up, in milliseconds
   * (the module then answers 503). A hung Redis, unlike a down one, makes a
   * client wait forever; this deadline bounds it. Default 2000; 0 turns it off.
   */
  commandTimeoutMs?: number;
}

/** The longest username the store keeps, in characters: what DuoClient accepts. */
const MAX_USERNAME_LENGTH = 512;
/** The highest per-session cap the store runs with: what DuoModule's `maxPendingPerSession` allows. */
const MAX_PENDING_LIMIT = 50;
/** A session binding is part of the key: URL-safe characters only, never a brace (Redis Cluster's hash tag). */
const BINDING = /^[A-Za-z0-9._~-]{1,128}$/;
const CONTROL = /[\x00-\x1f\x7f]/;
/** A Duo application's name, as DuoModule's `applications` allows it. */
const APPLICATION = APPLICATION_NAME;
const LONE_SURROGATE = /\p{Cs}/u;
/** A number in a record: base 36, as written by toString(36). */
const NUMBER = /^[0-9a-z]{1,11}$/;
/** Records are separated by RS, their fields by US: control characters, which no field may contain. */
const RS = '\x1e';
const US = '\x1f';

/**
 * Both scripts start here: KEYS[1] is the session's key, ARGV[1] the app's
 * clock in ms (the clock expiresAt is written in). The key holds the
 * session's pending logins, one record each; records past their expiry, and
 * anything unreadable, are dropped, and `save` writes the rest back with the
 * key's expiry set to the latest of theirs, or deletes the key when none is
 * left. Only KEYS[1] is touched, so it runs on a Redis Cluster as is.
 */
const PRELUDE = String.raw`
local key = KEYS[1]
local now = tonumber(ARGV[1])
local stored = redis.pcall('GET', key)
local changed = false
if type(stored) == 'table' then
  stored = false
  changed = true
end
local records = {}
if stored then
  for record in string.gmatch(stored, '[^\30]+') do
    local state, e, l = string.match(record, '^([^\31]+)\31([0-9a-z]+)\31([0-9a-z]+)\31')
    e = e and tonumber(e, 36)
    l = l and tonumber(l, 36)
    if e and l and e > now then
      records[#records + 1] = { state = state, expires = e, started = e - l, record = record }
    else
      changed = true
    end
  end
end
local function save()
  local parts, latest = {}, 0
  for i, r in ipairs(records) do
    parts[i] = r.record
    if r.expires > latest then latest = r.expires end
  end
  if #parts == 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, table.concat(parts, '\30'), 'PX', string.format('%d', math.max(1, latest - now)))
  end
end
`;

/**
 * ARGV[2] the cap, ARGV[3] the new record. Answers 0, touching nothing, when
 * the state is pending already; else drops the oldest (by startedAt) live
 * records until one place is free, adds the new one and answers 1.
 */
const CREATE = `${PRELUDE}
local cap = tonumber(ARGV[2])
local new = ARGV[3]
local state, e, l = string.match(new, '^([^\\31]+)\\31([0-9a-z]+)\\31([0-9a-z]+)\\31')
if not (state and cap and cap >= 1) then return redis.error_reply('ERR nestjs-duo: malformed create arguments') end
e = tonumber(e, 36)
for _, r in ipairs(records) do
  if r.state == state then return 0 end
end
table.sort(records, function(a, b)
  if a.started ~= b.started then return a.started < b.started end
  return a.state < b.state
end)
while #records >= cap do table.remove(records, 1) end
records[#records + 1] = { state = state, expires = e, started = e - tonumber(l, 36), record = new }
save()
return 1
`;

/** ARGV[2] the state. Answers its record, removed, or nil; exactly one caller gets a record. */
const TAKE = `${PRELUDE}
local state = ARGV[2]
local found = false
for i, r in ipairs(records) do
  if r.state == state then
    found = r.record
    table.remove(records, i)
    break
  end
end
if found or changed then save() end
return found
`;

interface Script {
  source: string;
  sha1: string;
}

const script = (source: string): Script => ({ source, sha1: createHash('sha1').update(source).digest('hex') });
const CREATE_SCRIPT = script(CREATE);
const TAKE_SCRIPT = script(TAKE);

/**
 * One count of the prompt limits (push-flood protection): a fixed window that
 * starts with its first hit, in one key, atomic on a single Redis or a Cluster
 * (one key per call). ARGV: the increment (0 only reads, and creates nothing),
 * the window in ms. Returns { count, ms until the window ends }.
 */
const COUNT = `
if ARGV[1] == '0' then
  local value = redis.call('GET', KEYS[1])
  if not value then return {0, 0} end
  return {tonumber(value), redis.call('PTTL', KEYS[1])}
end
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {count, ttl}
`;
const COUNT_SCRIPT = script(COUNT);

/**
 * Pending Duo logins in Redis, for apps running several instances: a login
 * started on one instance can finish on another, and of any number of
 * callbacks carrying one state, on any instances, exactly one takes it.
 *
 * All pending logins of one session live in one key, `{prefix}{<binding>}`
 * (the braces are a Redis Cluster hash tag), one compact record each, and
 * every change is one Lua script on that key alone: atomic across any number
 * of app instances, on a single Redis or a Redis Cluster. `create` keeps at
 * most `maxPendingPerSession` live logins per session, dropping the oldest
 * (expired ones do not count), as the in-session default store does; `take`
 * removes and returns one record in the same script, so exactly one caller
 * gets it. The key expires with the latest of its logins, and is deleted when
 * the last one is taken. A callback from another session (whose binding
 * differs) reaches another key: it can neither take nor cancel the victim's
 * login, and one session's logins never count against another's cap.
 *
 * A record is about 115 bytes plus the username and return path (state,
 * expiresAt and its age in base 36, nonce; the binding is in the key): a
 * session's only pending login takes 216 bytes by MEMORY USAGE (about 290
 * with Redis's own bookkeeping), five take 146 each. Return paths longer than
 * MAX_RETURN_PATH_BYTES, and fields that could not be stored unchanged, are
 * refused with `input_invalid`. Expiry is in the app's clock (expiresAt), as
 * the module checks it; Redis drops the key at the latest expiry of its
 * records. Keys of the previous version (`{prefix}{state}.{binding}`) are
 * not read: logins pending across the upgrade are started again.
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
 * On a Redis Cluster, pass `createCluster()` with the same `defaults`, and
 * with node-redis 6 set `topologyRefreshOnReconnectionAttemptStrategy: 500`:
 * after a master dies, the client reads the slot map again while the node
 * keeps failing to reconnect, and so finds the promoted replica (node-redis 5
 * re-reads it only on MOVED/ASK, which a dead node never sends). See the
 * README, "Running several instances".
 *
 * Client errors propagate; the module answers them with 503 `store_unavailable`.
 */
export class RedisTransactionStore implements DuoTransactionStore {
  readonly prefix: string;
  readonly #client: RedisTransactionClient;
  readonly #timeoutMs: number;

  constructor(client: RedisTransactionClient, options: RedisTransactionStoreOptions = {}) {
    const candidate = client as (Partial<RedisTransactionClient> & { evalsha?: unknown }) | null | undefined;
    if (!candidate || typeof candidate !== 'object' || typeof candidate.eval !== 'function' || typeof candidate.evalSha !== 'function') {
      const ioredis = !!candidate && typeof candidate === 'object' && typeof candidate.evalsha === 'function';
      throw new DuoConfigError(
        'RedisTransactionStore needs a node-redis client (createClient() or createCluster() from the "redis" package, v5 or v6): ' +
          `an object with eval() and evalSha() methods taking { keys, arguments }${ioredis ? '. ioredis is not supported: its eval and evalsha take other arguments' : ''}.`,
      );
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

  async create(transaction: PendingTransaction, context: DuoStoreContext): Promise<void> {
    const cap = context?.maxPendingPerSession;
    if (typeof cap !== 'number' || !Number.isInteger(cap) || cap < 1 || cap > MAX_PENDING_LIMIT) {
      throw new DuoConfigError(
        `RedisTransactionStore.create needs maxPendingPerSession, a whole number from 1 to ${MAX_PENDING_LIMIT}, in its context (DuoModule passes its option of that name).`,
      );
    }
    const record = encode(transaction);
    const reply = await this.#run(CREATE_SCRIPT, this.key(transaction.binding), [String(Date.now()), String(cap), record]);
    // 0: the state is pending in this session already (a collision, practically impossible), never an overwrite.
    if (reply === 0) throw new DuoError<DuoErrorCode>('store_unavailable', 'A pending Duo login with this state already exists; it was left alone. Try again.');
    if (reply !== 1) throw new Error('RedisTransactionStore: unexpected reply from Redis to create; nothing is assumed stored.');
  }

  async take(state: string, context: DuoStoreContext): Promise<PendingTransaction | undefined> {
    const binding = context?.session?.binding;
    // A session that never started a login has nothing pending anywhere; a state of another shape was never stored.
    if (typeof binding !== 'string' || !BINDING.test(binding) || !isWellFormedState(state)) return undefined;
    const reply = await this.#run(TAKE_SCRIPT, this.key(binding), [String(Date.now()), state]);
    if (reply === null || reply === undefined) return undefined;
    const record = text(reply);
    if (record === undefined) throw new Error('RedisTransactionStore: unexpected reply from Redis to take; nothing is assumed found.');
    return decode(record, state, binding);
  }

  /**
   * The prompt limits' counts (`promptLimits`), kept in Redis so that every
   * instance sees the same ones: the module uses this store as its counter.
   * The key is the limiter's digest (never a username or an address).
   */
  async countAttempt(key: string, windowMs: number, increment: 0 | 1): Promise<DuoAttemptCount> {
    if (typeof key !== 'string' || !/^duo:limit:[a-z_]+:[\w-]{1,64}$/.test(key) || !Number.isSafeInteger(windowMs) || windowMs < 1 || (increment !== 0 && increment !== 1)) {
      throw invalid('a prompt-limit count needs a limit key, a window of 1 ms or more and an increment of 0 or 1');
    }
    const reply = await this.#run(COUNT_SCRIPT, `${this.prefix}${key}`, [String(increment), String(windowMs)]);
    const [count, ttl] = Array.isArray(reply) ? reply : [];
    if (typeof count !== 'number' || typeof ttl !== 'number') throw new Error('RedisTransactionStore: unexpected reply from Redis to a prompt-limit count.');
    return { count, resetInMs: Math.max(0, ttl) };
  }

  /** The Redis key holding one session's pending logins. */
  key(binding: string): string {
    return `${this.prefix}{${binding}}`;
  }

  /** EVALSHA, and EVAL when Redis does not know the script (restarted, SCRIPT FLUSH, another cluster node), under one deadline. */
  #run(script: Script, key: string, args: string[]): Promise<unknown> {
    const options: RedisScriptOptions = { keys: [key], arguments: args };
    const call = async (): Promise<unknown> => {
      try {
        return await this.#client.evalSha(script.sha1, options);
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return await this.#client.eval(script.source, options);
      }
    };
    return this.#deadline(call());
  }

  #deadline<T>(command: Promise<T>): Promise<T> {
    if (this.#timeoutMs === 0) return command;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#timeoutMs} ms.`)), this.#timeoutMs);
    });
    // A command that answers after the deadline is dropped: a late take only loses that login, which is started again.
    return Promise.race([command, timeout]).finally(() => clearTimeout(timer));
  }
}

/** A reply as text: node-redis gives strings, or Buffers under a RESP3 type mapping. */
function text(reply: unknown): string | undefined {
  if (typeof reply === 'string') return reply;
  if (Buffer.isBuffer(reply)) return reply.toString('utf8');
  return undefined;
}

const invalid = (what: string): DuoError<DuoErrorCode> => new DuoError<DuoErrorCode>('input_invalid', `RedisTransactionStore cannot keep this pending login: ${what}. Nothing was stored.`);

/** Free text of a record: no control characters (they separate records and fields), and valid UTF-16 so that it comes back unchanged. */
const plainText = (value: unknown): value is string => typeof value === 'string' && !CONTROL.test(value) && !LONE_SURROGATE.test(value);

/**
 * One pending login as a record: state, expiresAt and its age (base 36, ms),
 * nonce, username, return path, maxAge, factor rule, application (an
 * optional field is '' when a later one is set, and left off at the end).
 */
function encode(tx: PendingTransaction): string {
  if (tx === null || typeof tx !== 'object') throw invalid('it is not a transaction');
  if (!isWellFormedState(tx.state)) throw invalid('the state is not 16 to 1024 URL-safe characters');
  if (typeof tx.binding !== 'string' || !BINDING.test(tx.binding)) throw invalid('the session binding is not 1 to 128 URL-safe characters');
  if (!isWellFormedState(tx.nonce)) throw invalid('the nonce is not 16 to 1024 URL-safe characters');
  if (!plainText(tx.username) || tx.username.length === 0 || tx.username.length > MAX_USERNAME_LENGTH) {
    throw invalid(`the username is not 1 to ${MAX_USERNAME_LENGTH} characters of plain text`);
  }
  if (!plainText(tx.returnTo)) throw invalid('the return path contains control characters or broken Unicode');
  const returnToBytes = Buffer.byteLength(tx.returnTo, 'utf8');
  if (returnToBytes > MAX_RETURN_PATH_BYTES) throw invalid(`the return path is ${returnToBytes} bytes, at most ${MAX_RETURN_PATH_BYTES} bytes are kept`);
  if (!Number.isSafeInteger(tx.expiresAt) || !Number.isSafeInteger(tx.startedAt) || tx.startedAt < 0 || tx.startedAt > tx.expiresAt) {
    throw invalid('startedAt and expiresAt must be whole milliseconds since the epoch, startedAt not after expiresAt');
  }
  if (tx.maxAge !== undefined && (!Number.isSafeInteger(tx.maxAge) || tx.maxAge < 0)) throw invalid('maxAge must be a whole number of seconds, 0 or more');
  // The callback checks Duo's answer against the rule: one that could not be read back must not be stored.
  if (tx.factorRule !== undefined && decodeFactorRule(tx.factorRule) === undefined) throw invalid('the factor rule is not factor names joined by commas, or *');
  // The callback exchanges the code with this application's client: a name that could not be read back must not be stored.
  if (tx.application !== undefined && (typeof tx.application !== 'string' || !APPLICATION.test(tx.application))) {
    throw invalid('the application is not 1 to 64 letters, digits, "_" or "-"');
  }
  const fields = [tx.state, tx.expiresAt.toString(36), (tx.expiresAt - tx.startedAt).toString(36), tx.nonce, tx.username, tx.returnTo];
  const more = tx.application !== undefined;
  if (tx.maxAge !== undefined || tx.factorRule !== undefined || more) fields.push(tx.maxAge === undefined ? '' : tx.maxAge.toString(36));
  if (tx.factorRule !== undefined || more) fields.push(tx.factorRule ?? '');
  if (more) fields.push(tx.application!);
  return fields.join(US);
}

/** A stored record back into a transaction; anything malformed is treated as absent, never as a crash. */
function decode(record: string, state: string, binding: string): PendingTransaction | undefined {
  if (record.includes(RS)) return undefined;
  const fields = record.split(US);
  if (fields.length < 6 || fields.length > 9) return undefined;
  const [storedState, expires, age, nonce, username, returnTo, storedMaxAge, storedRule, application] = fields as [string, string, string, string, string, string, string?, string?, string?];
  // An application name that is not one is a malformed record (absent), never a login of the default application.
  if (application !== undefined && !APPLICATION.test(application)) return undefined;
  // With a later field, an empty field stands for none; as the last field, an empty one is malformed.
  const factorRule = application !== undefined && storedRule === '' ? undefined : storedRule;
  const maxAge = storedRule !== undefined && storedMaxAge === '' ? undefined : storedMaxAge;
  // A rule field that is not a rule is a malformed record (absent), never a login without a rule.
  if (factorRule !== undefined && decodeFactorRule(factorRule) === undefined) return undefined;
  if (storedState !== state || !isWellFormedState(nonce) || username.length === 0) return undefined;
  const expiresAt = base36(expires);
  const lifetime = base36(age);
  if (expiresAt === undefined || lifetime === undefined || lifetime > expiresAt) return undefined;
  const step = maxAge === undefined ? undefined : base36(maxAge);
  if (maxAge !== undefined && step === undefined) return undefined;
  return {
    state,
    nonce,
    username,
    returnTo,
    binding,
    startedAt: expiresAt - lifetime,
    expiresAt,
    ...(step === undefined ? {} : { maxAge: step }),
    ...(factorRule === undefined ? {} : { factorRule }),
    ...(application === undefined ? {} : { application }),
  };
}

function base36(value: string): number | undefined {
  if (!NUMBER.test(value)) return undefined;
  const number = parseInt(value, 36);
  return Number.isSafeInteger(number) ? number : undefined;
}
