import { randomToken } from './protocol/random.js';
import { DuoError } from './protocol/index.js';
import { DUO_SESSION_KEY } from './duo.constants.js';
import type { DuoRequest } from './duo.options.js';
import type { DuoStoreSessionData, PendingTransaction } from './transaction.store.js';
import type { DuoErrorCode } from './duo.errors.js';


type SessionCall = (callback: (error?: unknown) => void) => unknown;
type SessionLike = Record<string, unknown> & {
  regenerate?: SessionCall;
  reload?: SessionCall;
  save?: SessionCall;
};

/**
 * The module's own part of a session: pending logins (for the session store),
 * the verified and bypass markers. The one application of top-level
 * credentials keeps its markers at `verified` and `bypass`; named applications
 * (`applications`) keep theirs under `apps[name]`, so that two applications
 * never evict each other's.
 */
export interface DuoSessionData extends DuoStoreSessionData {
  verified?: VerifiedMarker;
  bypass?: BypassMarker;
  apps?: Record<string, DuoApplicationMarkers>;
  /** Recently completed states, so a reload of the callback lands where the first one did (`application`: a named application's). */
  completed?: Array<{ state: string; returnTo: string; until: number; application?: string }>;
}

/** One named application's markers in the session. */
export interface DuoApplicationMarkers {
  verified?: VerifiedMarker;
  bypass?: BypassMarker;
}

/**
 * What the session keeps of a passed second factor, and all a later request
 * needs: who, which application, when, and Duo's `auth_context` values that
 * factor rules check (under 200 bytes as JSON). Duo's transaction id and the
 * whole token are in the callback's result (`SecondFactorResult.claims`) and
 * the `second_factor_passed` event, not here.
 */
export interface VerifiedMarker {
  username: string;
  /** The Duo application that verified the user (12 characters of the SHA-256 of its `clientId@host`): a marker counts only for its own application. */
  app: string;
  /**
   * When the user authenticated at Duo, in this server's clock (ms since the
   * epoch): the callback's time, or Duo's `auth_time` corrected by the measured
   * clock offset when that is older. Step-up routes compare their `maxAge` with it.
   */
  at: number;
  /** Duo's `auth_context.factor`, `.reason` and `.result`, as the id_token had them: what factor rules are checked against on each request. */
  factor?: string;
  reason?: string;
  result?: string;
  /** The id_token's `amr` (authentication methods). */
  amr?: string[];
}

export interface BypassMarker {
  username: string;
  /** The Duo application whose outage let the user through (as in `VerifiedMarker.app`). */
  app: string;
  at: number;
  until: number;
  reason: string;
}

/** How far in this server's future a verified marker's time may be and still count for step-up routes (instances' clocks disagree a little). */
export const MARKER_CLOCK_TOLERANCE_MS = 5_000;

/**
 * Whether a marker counts for a route with `maxAgeSeconds` (none: any age does).
 * `future`: dated more than the tolerance in this server's future (another
 * instance's clock is ahead, or the session was edited): its age is unknown, so
 * it is not fresh for a step-up route, which would otherwise stay open that much longer.
 */
export function markerAge(marker: VerifiedMarker, maxAgeSeconds: number | undefined, now: number): 'fresh' | 'old' | 'future' {
  if (maxAgeSeconds === undefined) return 'fresh';
  if (now - marker.at > maxAgeSeconds * 1000) return 'old';
  return marker.at - now > MARKER_CLOCK_TOLERANCE_MS ? 'future' : 'fresh';
}

/**
 * The module's data objects this process made for one request (copy on write).
 * Keyed by the request's session object, which both session plugins create per
 * request, so an entry never outlives the request that made it.
 */
const ownCopies = new WeakMap<object, DuoSessionData>();
/** The module's data as the request loaded it, to put back when a failed callback must leave the session as it was. */
const loaded = new WeakMap<object, unknown>();

/** What a passed second factor writes, and what the callback checks before writing it. */
export interface VerifiedRecord {
  marker: VerifiedMarker;
  /** The state of the completed login, remembered so that a reload of the callback lands where this one did. */
  completed: { state: string; returnTo: string; until: number; application?: string };
  /** The binding the pending login carried: the session must still have it. */
  binding: string;
  /** The named application whose login this was (undefined: the one application of top-level credentials). */
  slot?: string;
  /** The user the login was for: the session must still belong to them. */
  username: string;
  /** Reads the primary user from a request whose session is the one reloaded from the store. */
  usernameOf: (request: DuoRequest) => string | undefined;
  /** Deadline of each session-store call (reload, regenerate, save), in milliseconds. */
  timeoutMs: number;
}

/**
 * Everything that reads or writes the session goes through here: the binding
 * that ties pending logins to this session, the verified marker and the
 * fail-open bypass marker. Works with express-session and @fastify/session.
 *
 * It never mutates an object it did not make for this request: @fastify/session's
 * MemoryStore hands every request the stored objects by reference, so a write
 * into them would reach other requests in flight and the store itself. Writes go
 * to this request's own copy of the module's data (`writable()`), and a passed
 * second factor builds the new session's data afresh (`recordVerified()`).
 */
export class SecondFactorSession {
  private constructor(
    private readonly request: DuoRequest,
    private readonly session: SessionLike,
  ) {}

  /** The session of this request; refuses with 503 when there is none (no session middleware, store down). */
  static of(request: DuoRequest): SecondFactorSession {
    const session = request.session;
    if (session === null || typeof session !== 'object') {
      throw new DuoError<DuoErrorCode>(
        'session_unavailable',
        'No session is available for this request. Install a session middleware (express-session or @fastify/session) before the routes that use Duo, and check that its store is reachable.',
      );
    }
    return new SecondFactorSession(request, session as SessionLike);
  }

  /** The module's data as stored, read-only: reading never makes an anonymous session worth saving. */
  get existing(): Readonly<DuoSessionData> {
    const data = this.session[DUO_SESSION_KEY] as DuoSessionData | undefined;
    return data !== null && typeof data === 'object' ? data : {};
  }

  /**
   * This request's own copy of the module's data, made on first use and put in
   * the session in place of the loaded object, which may be shared. Its `pending`
   * map is copied too; pending logins themselves are replaced, never changed.
   */
  writable(): DuoSessionData {
    const own = ownCopies.get(this.session);
    if (own !== undefined && this.session[DUO_SESSION_KEY] === own) return own;
    const current = this.session[DUO_SESSION_KEY];
    if (!loaded.has(this.session)) loaded.set(this.session, current);
    const copy: DuoSessionData = current !== null && typeof current === 'object' ? { ...(current as DuoSessionData) } : {};
    if (copy.pending !== undefined) copy.pending = { ...copy.pending };
    if (copy.completed !== undefined) copy.completed = [...copy.completed];
    this.session[DUO_SESSION_KEY] = copy;
    ownCopies.set(this.session, copy);
    return copy;
  }

  /** A random value that lives as long as this session's Duo data; pending logins carry it. */
  binding(): string {
    const existing = this.existing.binding;
    if (typeof existing === 'string' && existing.length > 0) return existing;
    const data = this.writable();
    data.binding = randomToken(18);
    return data.binding;
  }

  /** The verified marker, if it belongs to `username` and to this Duo application (its age: `markerAge()`). */
  verifiedFor(username: string, application: string, slot?: string): VerifiedMarker | undefined {
    const marker = this.#markers(slot)?.verified;
    if (!marker || typeof marker !== 'object' || marker.username !== username || marker.app !== application) return undefined;
    if (typeof marker.at !== 'number' || !Number.isFinite(marker.at)) return undefined;
    return marker;
  }

  /** The fail-open bypass marker, if it belongs to `username` and this Duo application and still runs. */
  bypassFor(username: string, application: string, now = Date.now(), slot?: string): BypassMarker | undefined {
    const marker = this.#markers(slot)?.bypass;
    if (!marker || typeof marker !== 'object' || marker.username !== username || marker.app !== application) return undefined;
    if (typeof marker.until !== 'number' || marker.until <= now) return undefined;
    return marker;
  }

  /** Marks the session bypassed for one application (`slot`: a named application's). */
  markBypassed(marker: BypassMarker, slot?: string): void {
    const data = this.writable();
    if (slot === undefined) {
      data.bypass = marker;
      return;
    }
    // A fresh map and entry: the loaded ones may be shared with other requests.
    const apps = isRecord(data.apps) ? { ...data.apps } : {};
    const own = apps[slot];
    apps[slot] = { ...(isRecord(own) ? own : {}), bypass: marker };
    data.apps = apps;
  }

  /** Where one application's markers are: the top level for top-level credentials, `apps[name]` for a named application. */
  #markers(slot: string | undefined): Readonly<DuoApplicationMarkers> | undefined {
    const data = this.existing;
    if (slot === undefined) return data;
    const apps = data.apps;
    if (!isRecord(apps) || !Object.hasOwn(apps, slot)) return undefined;
    const markers: unknown = apps[slot];
    return isRecord(markers) ? (markers as DuoApplicationMarkers) : undefined;
  }

  /** A callback state already completed in this session (a reload), with where it went. */
  completed(state: string, now = Date.now()): { returnTo: string; application?: string } | undefined {
    const completed = this.existing.completed;
    if (!Array.isArray(completed)) return undefined;
    const entry = completed.find((item) => item !== null && typeof item === 'object' && item.state === state && item.until > now);
    if (typeof entry?.returnTo !== 'string') return undefined;
    return typeof entry.application === 'string' ? { returnTo: entry.returnTo, application: entry.application } : { returnTo: entry.returnTo };
  }

  /**
   * Leaves the session as the request found it, for a callback that failed: the
   * module's data goes back to the loaded object, so neither session plugin saves
   * a change. @fastify/session would still save (rolling) and set or clear the
   * cookie; it gets no session at all for the rest of this request, so a failed
   * callback that raced a successful one can neither bring the old session back
   * nor clear the browser's new cookie.
   */
  discardChanges(): void {
    if (loaded.has(this.session)) {
      const original = loaded.get(this.session);
      if (original === undefined) delete this.session[DUO_SESSION_KEY];
      else this.session[DUO_SESSION_KEY] = original;
      ownCopies.delete(this.session);
      loaded.delete(this.session);
    }
    if (isFastifySession(this.session)) this.request.session = null;
  }

  /**
   * Records a passed second factor, in four steps, each bounded by `timeoutMs`:
   * 1. reload the session from the store, and refuse when it is gone (signed out
   *    in another tab), lost this login's binding, or belongs to another user now;
   * 2. build the module's new data afresh: the marker, the other tabs' pending
   *    logins, no bypass;
   * 3. regenerate the session (a new id against fixation), keeping a deep copy of
   *    everything else in it (the primary login first of all);
   * 4. save it before the answer goes out, so that a store failure is a 503 and
   *    not a redirect to a page that will not know the user.
   */
  async recordVerified(record: VerifiedRecord): Promise<void> {
    const { timeoutMs } = record;
    const signedOut = (): DuoError<DuoErrorCode> =>
      new DuoError<DuoErrorCode>('session_changed', 'The session was signed out or changed while Duo was open; the second factor was not recorded. Sign in and start again.');

    await sessionCall(this.session, 'reload', timeoutMs).catch((error: unknown) => {
      // express-session reports a session that is no longer in the store as an error of its own.
      if (error instanceof Error && /failed to load session/i.test(error.message)) throw signedOut();
      throw storeFailed('reloading');
    });
    const reloaded = this.request.session;
    if (reloaded === null || typeof reloaded !== 'object') throw signedOut();
    const current = reloaded as SessionLike;
    const data = current[DUO_SESSION_KEY] as DuoSessionData | undefined;
    if (data === null || typeof data !== 'object' || data.binding !== record.binding) throw signedOut();
    // The reloaded session, seen through the app's own getUsername.
    const view = Object.create(this.request, { session: { value: current, enumerable: true } }) as DuoRequest;
    const user = record.usernameOf(view);
    if (user !== undefined && user !== record.username) throw signedOut();

    const now = Date.now();
    const fresh: DuoSessionData = { binding: data.binding };
    // The other applications' markers of this user stay (passing admin keeps staff); this application's bypass ends.
    const sameUser = (marker: unknown): boolean => isRecord(marker) && marker.username === record.username;
    if (record.slot === undefined) fresh.verified = record.marker;
    else if (sameUser(data.verified)) fresh.verified = { ...(data.verified as VerifiedMarker) };
    if (record.slot !== undefined && sameUser(data.bypass)) fresh.bypass = { ...(data.bypass as BypassMarker) };
    const apps: Record<string, DuoApplicationMarkers> = {};
    if (isRecord(data.apps)) {
      for (const [name, markers] of Object.entries(data.apps)) {
        if (name === record.slot || !isRecord(markers)) continue;
        const kept: DuoApplicationMarkers = {};
        if (sameUser(markers.verified)) kept.verified = { ...(markers.verified as VerifiedMarker) };
        if (sameUser(markers.bypass)) kept.bypass = { ...(markers.bypass as BypassMarker) };
        if (kept.verified || kept.bypass) apps[name] = kept;
      }
    }
    if (record.slot !== undefined) apps[record.slot] = { verified: record.marker };
    if (Object.keys(apps).length > 0) fresh.apps = apps;
    const pending = otherPending(data.pending, record.completed.state, now);
    if (pending !== undefined) fresh.pending = pending;
    const completed = Array.isArray(data.completed) ? data.completed.filter((entry) => entry && typeof entry === 'object' && entry.until > now) : [];
    fresh.completed = [...completed.map((entry) => ({ ...entry })), record.completed].slice(-5);

    const kept: Record<string, unknown> = {};
    for (const key of Object.keys(current)) {
      if (key === 'cookie' || key === DUO_SESSION_KEY || typeof current[key] === 'function') continue;
      kept[key] = deepCopy(current[key]);
    }
    await sessionCall(current, 'regenerate', timeoutMs).catch(() => {
      throw storeFailed('renewing the session id of');
    });
    const next = this.request.session as SessionLike | null;
    if (next === null || typeof next !== 'object' || next === current) throw storeFailed('renewing the session id of');
    Object.assign(next, kept);
    next[DUO_SESSION_KEY] = fresh;
    ownCopies.set(next, fresh);
    await sessionCall(next, 'save', timeoutMs).catch(() => {
      throw storeFailed('saving');
    });
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** @fastify/session's sessions have an encrypted id; express-session's do not. */
function isFastifySession(session: SessionLike): boolean {
  return typeof (session as { encryptedSessionId?: unknown }).encryptedSessionId === 'string';
}

function storeFailed(what: string): DuoError<DuoErrorCode> {
  return new DuoError<DuoErrorCode>(
    'session_unavailable',
    `The session store failed or did not answer in time while ${what} the session; the second factor was not recorded. Try again shortly.`,
  );
}

/** A session method with a callback (both plugins take one), bounded by a deadline. A late answer is ignored. */
function sessionCall(session: SessionLike, method: 'reload' | 'regenerate' | 'save', timeoutMs: number): Promise<void> {
  const call = session[method];
  if (typeof call !== 'function') {
    return Promise.reject(new DuoError<DuoErrorCode>('session_unavailable', `The session has no ${method}() method; use express-session or @fastify/session.`));
  }
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The session store did not answer within ${timeoutMs} ms.`)), timeoutMs);
    try {
      call.call(session, (error?: unknown) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
    } catch (error) {
      clearTimeout(timer);
      reject(error);
    }
  });
}

/** The other tabs' pending logins, still valid, as new objects. */
function otherPending(pending: unknown, taken: string, now: number): Record<string, PendingTransaction> | undefined {
  if (pending === null || typeof pending !== 'object') return undefined;
  const kept = Object.entries(pending as Record<string, PendingTransaction>).filter(
    ([state, tx]) => state !== taken && tx !== null && typeof tx === 'object' && typeof tx.expiresAt === 'number' && tx.expiresAt > now,
  );
  return kept.length === 0 ? undefined : Object.fromEntries(kept.map(([state, tx]) => [state, { ...tx }]));
}

/** Session values are data (stores serialise them): a structured clone, or a JSON copy of what cannot be cloned. */
function deepCopy(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  try {
    return structuredClone(value);
  } catch {
    return JSON.parse(JSON.stringify(value)) as unknown;
  }
}
