import { createHash } from 'node:crypto';
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

function rule(name: string, value: unknown, fallback: DuoLimitRule): DuoLimitRule | undefined {
  if (value === false) return undefined;
  if (value === undefined) return fallback;
  if (value === null || typeof value !== 'object') {
    throw new DuoConfigError(`Duo option "promptLimits.${name}" must be { max, windowSeconds } or false (no limit).`);
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

/**
 * Counts in this process: a map of fixed windows, swept of ended ones as it fills, and capped
 * (the oldest window goes first), so a flood of addresses cannot grow it without bound.
 */
export class MemoryAttemptCounter implements DuoAttemptCounter {
  readonly #windows = new Map<string, { count: number; endsAt: number }>();

  constructor(private readonly maxKeys = 100_000) {}

  countAttempt(key: string, windowMs: number, increment: 0 | 1, now = Date.now()): Promise<DuoAttemptCount> {
    let window = this.#windows.get(key);
    if (window && window.endsAt <= now) {
      this.#windows.delete(key);
      window = undefined;
    }
    if (!window) {
      if (increment === 0) return Promise.resolve({ count: 0, resetInMs: 0 });
      if (this.#windows.size >= this.maxKeys) this.#makeRoom(now);
      window = { count: 0, endsAt: now + windowMs };
      this.#windows.set(key, window);
    }
    window.count += increment;
    return Promise.resolve({ count: window.count, resetInMs: window.endsAt - now });
  }

  get size(): number {
    return this.#windows.size;
  }

  #makeRoom(now: number): void {
    for (const [key, window] of this.#windows) if (window.endsAt <= now) this.#windows.delete(key);
    if (this.#windows.size < this.maxKeys) return;
    const oldest = this.#windows.keys().next().value;
    if (oldest !== undefined) this.#windows.delete(oldest);
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

/** A key that names the user without storing the name: Redis keys are read by operators. */
function digest(kind: string, value: string): string {
  return `duo:limit:${kind}:${createHash('sha256').update(value).digest('base64url').slice(0, 22)}`;
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

/** Applies the limits: before a prompt starts, and when a callback fails. */
export class PromptLimiter {
  constructor(
    readonly settings: PromptLimitSettings,
    private readonly counter: DuoAttemptCounter,
    private readonly application: string,
  ) {}

  /** Counts this prompt start, or throws `PromptLimitError` (429) when a limit is reached. */
  async admit(request: DuoRequest, username: string): Promise<void> {
    const { perUser, perIp, failedCallbacksPerUser } = this.settings;
    const user = `${this.application}\u0000${username}`;
    if (failedCallbacksPerUser) {
      const failures = await this.counter.countAttempt(digest('fail', user), failedCallbacksPerUser.windowSeconds * 1000, 0);
      if (failures.count >= failedCallbacksPerUser.max) throw new PromptLimitError('failed_callbacks', seconds(failures.resetInMs));
    }
    if (perIp) {
      const network = clientNetwork(this.settings.clientIp(request));
      if (network !== undefined) {
        const ip = await this.counter.countAttempt(digest('ip', network), perIp.windowSeconds * 1000, 1);
        if (ip.count > perIp.max) throw new PromptLimitError('ip', seconds(ip.resetInMs));
      }
    }
    if (perUser) {
      const count = await this.counter.countAttempt(digest('user', user), perUser.windowSeconds * 1000, 1);
      if (count.count > perUser.max) throw new PromptLimitError('user', seconds(count.resetInMs));
    }
  }

  /** Counts a failed callback of a known user, when the failure is one the limit is for. */
  async failed(username: string, code: string): Promise<void> {
    const rule = this.settings.failedCallbacksPerUser;
    if (!rule || !COUNTED_FAILURES.has(code)) return;
    await this.counter.countAttempt(digest('fail', `${this.application}\u0000${username}`), rule.windowSeconds * 1000, 1);
  }
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}
