import { createHash, createHmac } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { DuoConfigError, DuoError } from './protocol/index.js';
import { checkInteger } from './protocol/config.js';
import type { DuoErrorCode } from './duo.errors.js';
import type { DuoRequest } from './request.util.js';

/**
 * Push-flood protection (OWASP ASVS V2.7.8 / V6 of 5.0: limit how often a
 * second factor can be requested): prompt starts are counted per user and per
 * client IP in fixed windows, and a user whose callbacks keep failing (denied
 * pushes, wrong user, expired codes) gets no new prompt for a while. The
 * counters live where the pending logins live: in the process for the
 * in-session store, in Redis with `RedisTransactionStore`, so every instance
 * sees the same counts.
 */

/** At most `max` in `windowSeconds`, the window starting with the first one. */
export interface DuoLimitRule {
  max: number;
  windowSeconds: number;
}

export interface DuoPromptLimitOptions {
  /** Prompt starts per user (and Duo application). Default 10 in 10 minutes; `false`: no limit. */
  perUser?: DuoLimitRule | false;
  /**
   * Prompt starts per client IP (IPv6 counted per /64). Default 600 in 10 minutes (an office behind one NAT at 9 am); `false`: no
   * limit. Behind a proxy the app must say which client IP to trust (Express `trust proxy`,
   * Fastify `trustProxy`), or every user shares the proxy's address.
   */
  perIp?: DuoLimitRule | false;
  /**
   * Failed callbacks of a user (Duo denied, the user refused the push, another user's token, ...)
   * after which that user gets no new prompt until the window ends. Default 5 in 15 minutes;
   * `false`: not counted.
   */
  failedCallbacksPerUser?: DuoLimitRule | false;
  /** The client's IP. Default: `request.ip` (which honours the platform's trust-proxy setting). */
  clientIp?: (request: DuoRequest) => string | undefined;
}

/** A count in a fixed window, and how long until the window ends. */
export interface DuoAttemptCount {
  count: number;
  resetInMs: number;
}

/**
 * Where the counts live: atomic per key, shared by every instance that shares it. A store of
 * pending logins that has `countAttempt` (RedisTransactionStore) is used as it; otherwise the
 * counts are this process's own.
 */
export interface DuoAttemptCounter {
  /** Adds `increment` (0: only reads) to the key's count; a new window of `windowMs` starts with the first. */
  countAttempt(key: string, windowMs: number, increment: 0 | 1): Promise<DuoAttemptCount>;
}

export const DEFAULT_PROMPT_LIMITS = {
  perUser: { max: 10, windowSeconds: 600 },
  perIp: { max: 600, windowSeconds: 600 },
  failedCallbacksPerUser: { max: 5, windowSeconds: 900 },
} as const satisfies Record<string, DuoLimitRule>;

export interface PromptLimitSettings {
  readonly perUser: DuoLimitRule | undefined;
  readonly perIp: DuoLimitRule | undefined;
  readonly failedCallbacksPerUser: DuoLimitRule | undefined;
  readonly clientIp: (request: DuoRequest) => string | undefined;
}

function defaultClientIp(request: DuoRequest): string | undefined {
  if (typeof request.ip === 'string') return request.ip;
  const socket = request.socket as { remoteAddress?: unknown } | undefined;
  return typeof socket?.remoteAddress === 'string' ? socket.remoteAddress : undefined;
}

const LIMIT_KEYS: ReadonlySet<string> = new Set(['perUser', 'perIp', 'failedCallbacksPerUser', 'clientIp']);
const RULE_KEYS: ReadonlySet<string> = new Set(['max', 'windowSeconds']);

function rule(name: string, value: unknown, fallback: DuoLimitRule): DuoLimitRule | undefined {
  if (value === false) return undefined;
  if (value === undefined) return fallback;
  if (value === null || typeof value !== 'object') {
    throw new DuoConfigError(`Duo option "promptLimits.${name}" must be { max, windowSeconds } or false (no limit).`);
  }
  for (const key of Object.keys(value)) {
    if (!RULE_KEYS.has(key)) throw new DuoConfigError(`Duo option "promptLimits.${name}.${key}" is not an option of a limit (it has max and windowSeconds).`);
  }
  const { max, windowSeconds } = value as Partial<DuoLimitRule>;
  const named = { [`promptLimits.${name}.max`]: max, [`promptLimits.${name}.windowSeconds`]: windowSeconds };
  return {
    max: checkInteger(named, `promptLimits.${name}.max`, fallback.max, 1, 1_000_000),
    // At most an hour: the longest Retry-After the module sends.
    windowSeconds: checkInteger(named, `promptLimits.${name}.windowSeconds`, fallback.windowSeconds, 1, 3600),
  };
}

/**
 * The `promptLimits` option checked; `false` turns every limit off. Not given, the limits are on
 * for Duo's own hosts and off for anything else (the emulator, a test double), so that an e2e
 * suite logging one user in many times is not refused; any object turns them on everywhere.
 */
export function resolvePromptLimits(options: DuoPromptLimitOptions | false | undefined, duoHost = true): PromptLimitSettings | undefined {
  if (options === false || (options === undefined && !duoHost)) return undefined;
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new DuoConfigError('Duo option "promptLimits" must be an object ({ perUser, perIp, failedCallbacksPerUser, clientIp }) or false.');
  }
  const given = options ?? {};
  for (const key of Object.keys(given)) {
    if (!LIMIT_KEYS.has(key)) throw new DuoConfigError(`Duo option "promptLimits.${key}" is not an option of "promptLimits" (it has ${[...LIMIT_KEYS].join(', ')}).`);
  }
  if (given.clientIp !== undefined && typeof given.clientIp !== 'function') {
    throw new DuoConfigError('Duo option "promptLimits.clientIp" must be a function (request) => string | undefined.');
  }
  const settings: PromptLimitSettings = {
    perUser: rule('perUser', given.perUser, DEFAULT_PROMPT_LIMITS.perUser),
    perIp: rule('perIp', given.perIp, DEFAULT_PROMPT_LIMITS.perIp),
    failedCallbacksPerUser: rule('failedCallbacksPerUser', given.failedCallbacksPerUser, DEFAULT_PROMPT_LIMITS.failedCallbacksPerUser),
    clientIp: given.clientIp ?? defaultClientIp,
  };
  return settings.perUser || settings.perIp || settings.failedCallbacksPerUser ? settings : undefined;
}

interface CountWindow {
  key: string;
  count: number;
  endsAt: number;
}

/** One kind's windows: a map for lookups, and a queue in insertion order (which is expiry order: one length per kind). */
interface WindowsOfKind {
  map: Map<string, CountWindow>;
  queue: CountWindow[];
  head: number;
}

/**
 * Counts in this process: fixed windows, one table per kind of key (`duo:limit:<kind>:...`), each
 * capped (`maxKeys`), so that a flood of client networks can never push a user's window out. In a
 * table, windows of one kind share one length, so insertion order is expiry order: ended windows
 * are dropped from the head of its queue, and at the cap the oldest goes, in constant time per
 * insert (a Map alone would have to walk the holes its deletions leave at its front).
 */
export class MemoryAttemptCounter implements DuoAttemptCounter {
  readonly #kinds = new Map<string, WindowsOfKind>();

  constructor(private readonly maxKeys = 100_000) {}

  countAttempt(key: string, windowMs: number, increment: 0 | 1, now = Date.now()): Promise<DuoAttemptCount> {
    const kindName = key.slice(0, key.lastIndexOf(':') + 1);
    let kind = this.#kinds.get(kindName);
    if (!kind) this.#kinds.set(kindName, (kind = { map: new Map(), queue: [], head: 0 }));
    let window = kind.map.get(key);
    if (window && window.endsAt <= now) {
      kind.map.delete(key);
      window = undefined;
    }
    if (!window) {
      if (increment === 0) return Promise.resolve({ count: 0, resetInMs: 0 });
      this.#makeRoom(kind, now);
      window = { key, count: 0, endsAt: now + windowMs };
      kind.map.set(key, window);
      kind.queue.push(window);
    }
    window.count += increment;
    return Promise.resolve({ count: window.count, resetInMs: window.endsAt - now });
  }

  /** Windows held, all kinds together. */
  get size(): number {
    let size = 0;
    for (const kind of this.#kinds.values()) size += kind.map.size;
    return size;
  }

  #makeRoom(kind: WindowsOfKind, now: number): void {
    const { map, queue } = kind;
    while (kind.head < queue.length) {
      const oldest = queue[kind.head]!;
      // A window already replaced or dropped on a lookup is a stale queue entry: skip it.
      const current = map.get(oldest.key) === oldest;
      if (current && oldest.endsAt > now && map.size < this.maxKeys) break;
      kind.head++;
      if (!current) continue;
      map.delete(oldest.key); // ended, or the oldest of a full table
      if (oldest.endsAt > now) break;
    }
    // The queue's consumed head is cut off now and then, so it stays about as long as the table.
    if (kind.head > 1024 && kind.head * 2 > queue.length) {
      kind.queue = queue.slice(kind.head);
      kind.head = 0;
    }
  }
}

/** IPv4 as it is (also when IPv4-mapped), IPv6 as its /64 (one subscriber's network), else undefined. */
export function clientNetwork(ip: string | undefined): string | undefined {
  if (typeof ip !== 'string') return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1];
  if (isIPv4(ip)) return ip;
  const address = ip.split('%')[0]!; // a zone id (fe80::1%eth0) is not part of the address
  if (!isIPv6(address)) return undefined;
  // WHATWG URL serialises an IPv6 address in its one canonical form: expand its "::" to groups.
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head, tail] = canonical.includes('::') ? canonical.split('::') : [canonical, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups.slice(0, 4).join(':')}::/64`;
}

/**
 * Keys that name a user or a network without storing either: an HMAC under a key derived from a
 * secret the app's instances share (the Duo client secret), so that neither can be recovered
 * from Redis by hashing guesses (all of IPv4 is only 2^32 of them).
 */
function keyer(secret: string | undefined): (kind: string, value: string) => string {
  const key = secret === undefined ? undefined : createHmac('sha256', secret).update('nestjs-duo prompt limits').digest();
  return (kind, value) => {
    const digest = key === undefined ? createHash('sha256').update(value) : createHmac('sha256', key).update(value);
    return `duo:limit:${kind}:${digest.digest('base64url').slice(0, 22)}`;
  };
}

/** The callback failures that are the user's or an attacker's doing, not Duo's or ours. */
const COUNTED_FAILURES = new Set<string>([
  'access_denied',
  'second_factor_denied',
  'duo_error',
  'code_invalid',
  'username_mismatch',
  'nonce_mismatch',
  'token_invalid',
  'transaction_expired',
  // A login a route's factor rule refused (Duo Push where the route wants a security key): a user
  // who approves out of habit must not be pushed again and again on that route.
  'factor_rule_not_met',
] satisfies DuoErrorCode[]);

export type PromptLimitScope = 'user' | 'ip' | 'failed_callbacks';

/** A refused prompt start: which limit, and when it ends. */
export class PromptLimitError extends DuoError<'prompt_rate_limited'> {
  constructor(
    readonly scope: PromptLimitScope,
    retryAfterSeconds: number,
  ) {
    const why =
      scope === 'failed_callbacks'
        ? 'Too many Duo logins for this account failed recently'
        : scope === 'user'
          ? 'Too many Duo prompts were requested for this account'
          : 'Too many Duo prompts were requested from this network';
    super('prompt_rate_limited', `${why}; try again in ${retryAfterSeconds} s. If you did not ask for these prompts, tell your administrator.`, { retryAfterSeconds });
  }
}

export interface PromptLimiterOptions {
  /** Keys the counts' digests (the Duo client secret): without it they are plain SHA-256. */
  secret?: string;
  /** How the user's name is compared (`usernameMatch: 'case-insensitive'` counts Alice and alice once). */
  caseInsensitive?: boolean;
  /** Told, at most once a minute, when `clientIp` gives something that is not an address. */
  warn?: (message: string) => void;
}

/** Applies the limits: before a prompt starts, and when a callback fails. */
export class PromptLimiter {
  readonly #key: (kind: string, value: string) => string;
  readonly #caseInsensitive: boolean;
  readonly #warn: ((message: string) => void) | undefined;
  #lastWarning = Number.NEGATIVE_INFINITY;

  constructor(
    readonly settings: PromptLimitSettings,
    private readonly counter: DuoAttemptCounter,
    private readonly application: string,
    options: PromptLimiterOptions = {},
  ) {
    this.#key = keyer(options.secret);
    this.#caseInsensitive = options.caseInsensitive === true;
    this.#warn = options.warn;
  }

  /**
   * Counts this prompt start, or throws `PromptLimitError` (429) when a limit is reached. The
   * user's own counts come first, and a refused start counts nowhere else: a flood from one
   * account over many networks creates no per-network windows.
   */
  async admit(request: DuoRequest, username: string): Promise<void> {
    const { perUser, perIp, failedCallbacksPerUser } = this.settings;
    const user = this.#user(username);
    if (failedCallbacksPerUser) {
      const failures = await this.counter.countAttempt(this.#key('fail', user), failedCallbacksPerUser.windowSeconds * 1000, 0);
      if (failures.count >= failedCallbacksPerUser.max) throw new PromptLimitError('failed_callbacks', seconds(failures.resetInMs));
    }
    if (perUser) {
      const count = await this.counter.countAttempt(this.#key('user', user), perUser.windowSeconds * 1000, 1);
      if (count.count > perUser.max) throw new PromptLimitError('user', seconds(count.resetInMs));
    }
    if (perIp) {
      const given = this.settings.clientIp(request);
      const network = clientNetwork(given);
      if (network === undefined) {
        this.#warnOnce(
          `promptLimits: the client IP of a request is ${given === undefined ? 'unknown' : 'not an IP address'}, so the per-IP limit did not count it. ` +
            'Return one address from promptLimits.clientIp (not a list, not address:port), or leave clientIp out to use the request\'s ip.',
        );
        return;
      }
      const ip = await this.counter.countAttempt(this.#key('ip', network), perIp.windowSeconds * 1000, 1);
      if (ip.count > perIp.max) throw new PromptLimitError('ip', seconds(ip.resetInMs));
    }
  }

  /** Counts a failed callback of a known user, when the failure is one the limit is for. */
  async failed(username: string, code: string): Promise<void> {
    const rule = this.settings.failedCallbacksPerUser;
    if (!rule || !COUNTED_FAILURES.has(code)) return;
    await this.counter.countAttempt(this.#key('fail', this.#user(username)), rule.windowSeconds * 1000, 1);
  }

  #user(username: string): string {
    return `${this.application}\u0000${this.#caseInsensitive ? username.toLowerCase() : username}`;
  }

  #warnOnce(message: string): void {
    const now = Date.now();
    if (!this.#warn || now - this.#lastWarning < 60_000) return;
    this.#lastWarning = now;
    this.#warn(message);
  }
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
