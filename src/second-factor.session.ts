import { randomToken } from './protocol/random.js';
import { DuoError } from './protocol/index.js';
import type { DuoRequest } from './duo.options.js';
import type { BypassMarker, DuoSessionData, VerifiedMarker } from './transaction.store.js';

/** The key of the module's data inside the session. */
export const DUO_SESSION_KEY = 'duo';

type SessionLike = Record<string, unknown> & {
  regenerate?: (...args: unknown[]) => unknown;
  destroy?: (...args: unknown[]) => unknown;
};

/**
 * Everything that reads or writes the session goes through here: the binding
 * that ties pending logins to this session, the verified marker and the
 * fail-open bypass marker. Works with express-session and @fastify/session.
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
      throw new DuoError(
        'session_unavailable',
        'No session is available for this request. Install a session middleware (express-session or @fastify/session) before the routes that use Duo, and check that its store is reachable.',
      );
    }
    return new SecondFactorSession(request, session as SessionLike);
  }

  /** The module's data without creating it: reading never makes an anonymous session worth saving. */
  get existing(): DuoSessionData {
    const data = this.session[DUO_SESSION_KEY] as DuoSessionData | undefined;
    return data !== null && typeof data === 'object' ? data : {};
  }

  /** The module's data, created on first write. */
  get data(): DuoSessionData {
    let data = this.session[DUO_SESSION_KEY] as DuoSessionData | undefined;
    if (data === null || typeof data !== 'object') {
      data = {};
      this.session[DUO_SESSION_KEY] = data;
    }
    return data;
  }

  /** A random value that lives as long as this session's Duo data; pending logins carry it. */
  binding(): string {
    const data = this.data;
    data.binding ??= randomToken(18);
    return data.binding;
  }

  /** The verified marker, if it belongs to `username` and (with maxAge) is recent enough. */
  verifiedFor(username: string, maxAgeSeconds?: number, now = Date.now()): VerifiedMarker | undefined {
    const marker = (this.session[DUO_SESSION_KEY] as DuoSessionData | undefined)?.verified;
    if (!marker || marker.username !== username || typeof marker.at !== 'number') return undefined;
    if (maxAgeSeconds !== undefined && now - authenticatedAt(marker) > maxAgeSeconds * 1000) return undefined;
    return marker;
  }

  bypassFor(username: string, now = Date.now()): BypassMarker | undefined {
    const marker = (this.session[DUO_SESSION_KEY] as DuoSessionData | undefined)?.bypass;
    if (!marker || marker.username !== username || marker.until <= now) return undefined;
    return marker;
  }

  markBypassed(marker: BypassMarker): void {
    this.data.bypass = marker;
  }

  /**
   * Marks the session verified and gives it a new id (session fixation), keeping
   * everything else in it: the primary login, other tabs' pending logins.
   */
  async markVerified(marker: VerifiedMarker, completed: { state: string; returnTo: string; until: number }): Promise<void> {
    const now = Date.now();
    const data = this.data;
    delete data.bypass;
    data.verified = marker;
    data.completed = [...(data.completed ?? []).filter((entry) => entry.until > now), completed].slice(-5);
    await this.regenerate();
  }

  /** A callback state already completed in this session (a reload), with where it went. */
  completed(state: string, now = Date.now()): string | undefined {
    const entry = (this.session[DUO_SESSION_KEY] as DuoSessionData | undefined)?.completed?.find((item) => item.state === state && item.until > now);
    return entry?.returnTo;
  }

  async regenerate(): Promise<void> {
    const session = this.session;
    if (typeof session.regenerate !== 'function') {
      throw new DuoError('session_unavailable', 'The session cannot be regenerated; use express-session or @fastify/session.');
    }
    const kept: Record<string, unknown> = {};
    for (const key of Object.keys(session)) {
      if (key !== 'cookie' && typeof session[key] !== 'function') kept[key] = session[key];
    }
    // express-session and @fastify/session both take a callback and put the new session on the request.
    await new Promise<void>((resolve, reject) => {
      (session.regenerate as (cb: (err?: unknown) => void) => void).call(session, (error?: unknown) => (error ? reject(error) : resolve()));
    }).catch(() => {
      throw new DuoError('session_unavailable', 'The session store failed while renewing the session id; the second factor was not recorded. Try again.');
    });
    const fresh = this.request.session as Record<string, unknown>;
    Object.assign(fresh, kept);
  }
}

/**
 * When the user last authenticated interactively at Duo: the callback's time,
 * or Duo's own auth_time when that is older (a login without max_age may carry
 * an old authentication, which must not count as fresh for a step-up route).
 * auth_time gets the token checks' 60 s leeway for clock differences.
 */
function authenticatedAt(marker: VerifiedMarker): number {
  return typeof marker.authTime === 'number' ? Math.min(marker.at, (marker.authTime + 60) * 1000) : marker.at;
}
