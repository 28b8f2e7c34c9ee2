/**
 * What one emulator knows: its configuration, Duo's clock, the switches a test
 * flips (mode, failure), its counters, and the records of logins under way,
 * each kept within a cap and taken once.
 */
import { HsKey } from '../protocol/jwt.js';
import { DEFAULT_CLIENT_ID, MAX_CODES, MAX_SEEN_JTIS, MAX_TRANSACTIONS } from './emulator.constants.js';
import type { DuoEmulatorFailure } from './emulator.defects.js';
import { randomAlphanumeric } from './emulator.random.js';
import type { DuoEmulatorAuthorizeRequest, DuoEmulatorEndpoint, DuoEmulatorMode, DuoEmulatorOptions, DuoEmulatorStats } from './emulator.types.js';

/** The `auth_context` values of one login (null: left out of the token). */
export interface AuthContextValues {
  readonly factor: string | null;
  readonly reason: string | null;
  readonly result: string | null;
}

/** What a remembered device's login reports: Duo did not ask the user. */
export const REMEMBERED_DEVICE_CONTEXT: AuthContextValues = Object.freeze({ factor: 'remembered_device', reason: 'remembered_device', result: 'success' });

/** One Duo application the emulator stands in for: its client ID and secret. */
export interface EmulatorApplication {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly key: HsKey;
}

/** One approved login, waiting for its code to be exchanged. */
export interface CodeRecord {
  /** The application the login was for: only its client may exchange the code. */
  clientId: string;
  username: string;
  redirectUri: string;
  nonce?: string;
  authTime: number;
  expiresAtMs: number;
  accessIp: string;
  browser: string;
  os: string;
  /** What the id_token reports in auth_context for this login, fixed when the login was decided. */
  authContext: AuthContextValues;
}

/** One authorize request accepted, waiting for the user's decision (a prompt shown, in mode `prompt`). */
export interface TransactionRecord extends Omit<CodeRecord, 'authTime' | 'expiresAtMs' | 'authContext'> {
  /** The request asked for `prompt=login`: a remembered device does not count. */
  promptLogin: boolean;
  state: string;
  useDuoCodeAttribute: boolean;
  expiresAtMs: number;
}

/** The failure switched on, as `setFailure` resolved it. */
export interface FailureSetting {
  readonly failure: DuoEmulatorFailure;
  readonly endpoints: ReadonlySet<DuoEmulatorEndpoint>;
  readonly slowMs: number;
  readonly retryAfter: string | undefined;
}

export const NO_FAILURE: FailureSetting = { failure: 'none', endpoints: new Set(), slowMs: 1000, retryAfter: undefined };

export function zeroStats(): DuoEmulatorStats {
  return { healthChecks: 0, authorizations: 0, tokenExchanges: 0, tokenExchangesOk: 0, codesIssued: 0 };
}

export class EmulatorState {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly key: HsKey;
  /** The auth_context of the next logins (`setAuthContext`). */
  authContext: AuthContextValues;
  readonly initialAuthContext: AuthContextValues;
  /** While true, a login without `prompt=login` passes without a prompt, as a remembered device ("remember me") does at Duo. */
  rememberedDevice = false;
  readonly codeTtlMs: number;
  readonly initialMode: DuoEmulatorMode;
  /** Set once the server listens. */
  baseUrl = '';
  mode: DuoEmulatorMode;
  failure: FailureSetting = NO_FAILURE;
  clockOffsetSeconds = 0;
  stats: DuoEmulatorStats = zeroStats();
  lastAuthorizeRequest: DuoEmulatorAuthorizeRequest | undefined;
  /** jti -> exp (Duo clock): assertions seen and not yet expired. */
  readonly #seenJtis = new Map<string, number>();
  /** Authorization codes handed out and not yet exchanged. */
  readonly codes = new OnceRecords<CodeRecord>(MAX_CODES);
  /** Prompts shown and not yet answered. */
  readonly transactions = new OnceRecords<TransactionRecord>(MAX_TRANSACTIONS);
  /** Every application by client ID: the first one's, then those of `addApplication()`. */
  readonly applications = new Map<string, EmulatorApplication>();

  constructor(options: DuoEmulatorOptions) {
    this.clientId = options.clientId ?? DEFAULT_CLIENT_ID;
    this.clientSecret = options.clientSecret ?? randomAlphanumeric(40);
    this.key = new HsKey(this.clientSecret);
    this.applications.set(this.clientId, { clientId: this.clientId, clientSecret: this.clientSecret, key: this.key });
    this.mode = options.mode ?? 'approve';
    this.initialMode = this.mode;
    this.codeTtlMs = (options.codeTtlSeconds ?? 60) * 1000;
    this.initialAuthContext = Object.freeze({ factor: options.factor ?? 'duo_push', reason: 'user_approved', result: 'success' });
    this.authContext = this.initialAuthContext;
  }

  /** Adds an application (a client ID not taken yet; default the next `DIEMULATOR…` number) and returns it. */
  addApplication(clientId: string | undefined, clientSecret: string | undefined): EmulatorApplication {
    let id = clientId;
    for (let n = this.applications.size + 1; id === undefined; n++) {
      const candidate = `DIEMULATOR${String(n).padStart(10, '0')}`;
      if (!this.applications.has(candidate)) id = candidate;
    }
    if (this.applications.has(id)) throw new TypeError(`addApplication: the client ID ${id} is taken by another application of this emulator.`);
    const secret = clientSecret ?? randomAlphanumeric(40);
    const application: EmulatorApplication = { clientId: id, clientSecret: secret, key: new HsKey(secret) };
    this.applications.set(id, application);
    return application;
  }

  /** Duo's clock, Unix seconds. */
  now(): number {
    return Math.floor(Date.now() / 1000 + this.clockOffsetSeconds);
  }

  /** The failure a call to `endpoint` meets: the one switched on, where it applies; else `none`. */
  failureAt(endpoint: DuoEmulatorEndpoint): DuoEmulatorFailure {
    return this.failure.endpoints.has(endpoint) ? this.failure.failure : 'none';
  }

  /** Records an assertion's jti until its exp; false when it was seen and has not expired (a replay). */
  rememberJti(jti: string, exp: number): boolean {
    const now = this.now();
    const seen = this.#seenJtis.get(jti);
    if (seen !== undefined && seen >= now) return false;
    this.#seenJtis.delete(jti);
    this.#seenJtis.set(jti, exp);
    pruneOldest(this.#seenJtis, MAX_SEEN_JTIS, (seenExp) => seenExp >= now);
    return true;
  }
}

/** Records looked up once: a take removes the record, and each add drops the expired ones and the oldest beyond `max`. */
export class OnceRecords<V extends { expiresAtMs: number }> {
  readonly #records = new Map<string, V>();

  constructor(private readonly max: number) {}

  add(key: string, record: V): void {
    this.#records.set(key, record);
    const nowMs = Date.now();
    pruneOldest(this.#records, this.max, (kept) => kept.expiresAtMs > nowMs);
  }

  /** The record, expired or not (the caller says which it refuses); gone after this first use, even when that use then fails. */
  take(key: string): V | undefined {
    const record = this.#records.get(key);
    this.#records.delete(key);
    return record;
  }
}

/** Drops the expired records (Map order is insertion order, so oldest first) and the oldest beyond the cap. */
function pruneOldest<V>(records: Map<string, V>, max: number, live: (record: V) => boolean): void {
  for (const [key, record] of records) {
    if (live(record) && records.size <= max) break;
    records.delete(key);
  }
}
