/** One login sent to Duo and not yet back: kept server-side, keyed by state, taken once. */
export interface PendingTransaction {
  state: string;
  nonce: string;
  username: string;
  /** A path on this site to return to. */
  returnTo: string;
  /** Ties the transaction to the session that started it. */
  binding: string;
  /** Milliseconds since the epoch. */
  startedAt: number;
  expiresAt: number;
  /** The step-up age this login was started for, in seconds. */
  maxAge?: number;
  /**
   * The factor rule of the route that started this login, compactly: its
   * factor names joined by commas, or `*` for `requireInteraction` alone.
   * The callback checks Duo's id_token against it. A store must keep it as
   * given, or refuse the login.
   */
  factorRule?: string;
  /**
   * The named Duo application that started this login (`applications`);
   * absent for top-level credentials. The callback exchanges the code with
   * this application's client. A store must keep it as given, or refuse the login.
   */
  application?: string;
}

/** The part of the module's session data a store works with: the session's binding and, for the in-session store, its pending logins. */
export interface DuoStoreSessionData {
  binding?: string;
  pending?: Record<string, PendingTransaction>;
}

export interface DuoStoreContext {
  /**
   * The module's part of the current session: this request's own copy, which a
   * store may change (the in-session store keeps pending logins in it). Never keep
   * a reference to it beyond the call.
   */
  session: DuoStoreSessionData;
  maxPendingPerSession: number;
}

/**
 * Where pending transactions live. `create` must not overwrite an existing
 * state; `take` must be atomic: of any number of concurrent calls with one
 * state, at most one gets the transaction.
 */
export interface DuoTransactionStore {
  create(transaction: PendingTransaction, context: DuoStoreContext): Promise<void>;
  take(state: string, context: DuoStoreContext): Promise<PendingTransaction | undefined>;
}

/**
 * The default store: pending transactions in the session itself, for
 * single-instance apps. Sessions are loaded per request, so two parallel
 * callbacks would each see the transaction in their own copy; the store's claim
 * set (one per app instance) makes the take exactly-once within this instance. Several app
 * instances need a shared store (see RedisTransactionStore).
 */
export class SessionTransactionStore implements DuoTransactionStore {
  readonly #claimed = new Map<string, number>();

  async create(transaction: PendingTransaction, { session, maxPendingPerSession }: DuoStoreContext): Promise<void> {
    const now = Date.now();
    const pending = Object.values(session.pending ?? {}).filter((tx) => tx.expiresAt > now && tx.state !== transaction.state);
    pending.sort((a, b) => a.startedAt - b.startedAt);
    const kept = pending.slice(Math.max(0, pending.length - (maxPendingPerSession - 1)));
    session.pending = Object.fromEntries([...kept, transaction].map((tx) => [tx.state, tx]));
  }

  async take(state: string, { session }: DuoStoreContext): Promise<PendingTransaction | undefined> {
    // Own properties only: a state such as "propertyIsEnumerable" must not find Object.prototype.
    const pending = session.pending;
    if (!pending || !Object.hasOwn(pending, state)) return undefined;
    const transaction = pending[state];
    if (!isTransaction(transaction, state)) return undefined;
    const now = Date.now();
    this.#prune(now);
    if (this.#claimed.has(state)) return undefined;
    // Remember the claim until the transaction could no longer be used anyway.
    this.#claimed.set(state, Math.max(transaction.expiresAt, now) + 60_000);
    delete pending[state];
    return transaction;
  }

  /** Claims are inserted in roughly expiry order, so pruning stops at the first live one. */
  #prune(now: number): void {
    for (const [state, until] of this.#claimed) {
      if (until > now) break;
      this.#claimed.delete(state);
    }
  }
}

/** A session's copy of a pending login, checked field by field (sessions are stored data, not trusted code). */
function isTransaction(value: unknown, state: string): value is PendingTransaction {
  if (value === null || typeof value !== 'object') return false;
  const tx = value as Record<string, unknown>;
  return (
    tx.state === state &&
    typeof tx.nonce === 'string' &&
    typeof tx.username === 'string' &&
    typeof tx.returnTo === 'string' &&
    typeof tx.binding === 'string' &&
    Number.isFinite(tx.startedAt) &&
    Number.isFinite(tx.expiresAt) &&
    (tx.maxAge === undefined || Number.isFinite(tx.maxAge)) &&
    (tx.factorRule === undefined || typeof tx.factorRule === 'string') &&
    (tx.application === undefined || typeof tx.application === 'string')
  );
}
