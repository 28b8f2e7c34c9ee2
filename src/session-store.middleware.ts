import { Logger } from '@nestjs/common';

type Next = (error?: unknown) => void;

/** A Connect/Express middleware such as `session()` from express-session. */
export type SessionMiddleware<Req extends object = object, Res = unknown> = (request: Req, response: Res, next: Next) => void;

export interface GuardSessionStoreOptions {
  /**
   * How long the session middleware may take before the request goes on
   * without a session, in milliseconds. Bounds a hung store, which a client's
   * fail-fast settings do not. Default 2000; 0 turns it off.
   */
  timeoutMs?: number;
  /** Told of every store failure. Default: a warning through Nest's Logger, at most one every 10 s. */
  onError?: (error: unknown) => void;
}

/**
 * Wraps express-session so that a failing session store (Redis down or hung)
 * leaves the request without a session instead of becoming an Express 500:
 * `req.session` stays undefined and nestjs-duo answers 503
 * `session_unavailable` on the routes that need it; nothing is let through.
 *
 * ```ts
 * app.use(guardSessionStore(session({ store: new RedisStore({ client: redis }), ... })));
 * ```
 *
 * Failures reported after the response was written (a save that did not
 * reach the store) only go to `onError`: handed to Express, they would reach
 * its final handler after the response and make it destroy the connection.
 */
export function guardSessionStore<Req extends object, Res>(middleware: SessionMiddleware<Req, Res>, options: GuardSessionStoreOptions = {}): SessionMiddleware<Req, Res> {
  if (typeof middleware !== 'function') throw new TypeError('guardSessionStore() takes the session middleware, such as session({ ... }) from express-session.');
  const timeoutMs = options.timeoutMs ?? 2000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0) throw new TypeError('guardSessionStore() option "timeoutMs" must be a whole number of milliseconds (0 for none).');
  const report = options.onError ?? throttledWarning();

  return (request, response, next) => {
    let passed = false;
    let timer: NodeJS.Timeout | undefined;
    const pass = (error?: unknown): void => {
      if (passed) {
        if (error !== undefined && error !== null) report(error);
        return;
      }
      passed = true;
      clearTimeout(timer);
      if (error === undefined || error === null) {
        if (timeoutMs > 0) boundStore(request, timeoutMs);
        next();
        return;
      }
      report(error);
      detachSession(request);
      next();
    };
    if (timeoutMs > 0) {
      timer = setTimeout(() => pass(new Error(`The session store did not answer within ${timeoutMs} ms.`)), timeoutMs);
    }
    try {
      middleware(request, response, pass);
    } catch (error) {
      pass(error);
    }
  };
}

type StoreMethod = (...args: unknown[]) => unknown;

/**
 * The session's own calls to the store during this request (save, regenerate's
 * destroy, reload) get the same deadline: express-session saves again when the
 * response ends, and a hung store would hold the answer as long as it hangs.
 * It reaches the store through `req.sessionStore`, so this request gets a view
 * of the store whose calls are bounded; the store object itself is not changed.
 */
function boundStore(request: object, timeoutMs: number): void {
  const store = (request as { sessionStore?: unknown }).sessionStore;
  if (store === null || typeof store !== 'object') return;
  const view = Object.create(store) as Record<string, unknown>;
  for (const name of ['get', 'set', 'destroy', 'touch']) {
    const method = (store as Record<string, unknown>)[name];
    if (typeof method !== 'function') continue;
    view[name] = (...args: unknown[]): unknown => {
      const callback = args[args.length - 1];
      if (typeof callback !== 'function') return (method as StoreMethod).apply(store, args);
      let done = false;
      const finish = (...results: unknown[]): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        (callback as StoreMethod)(...results);
      };
      const timer = setTimeout(() => finish(new Error(`The session store did not answer a ${name} within ${timeoutMs} ms.`)), timeoutMs);
      return (method as StoreMethod).apply(store, [...args.slice(0, -1), finish]);
    };
  }
  try {
    Object.defineProperty(request, 'sessionStore', { value: view, configurable: true, writable: true, enumerable: true });
  } catch {
    // A request that will not take it keeps the store as it is.
  }
}

/**
 * No session for the rest of this request, even if the store answers late:
 * express-session then neither sets one nor saves or destroys anything.
 */
function detachSession(request: object): void {
  const ignore = (): void => {};
  for (const key of ['session', 'sessionID']) {
    Object.defineProperty(request, key, { configurable: true, enumerable: false, get: () => undefined, set: ignore });
  }
}

function throttledWarning(): (error: unknown) => void {
  const logger = new Logger('DuoModule');
  let last = 0;
  let dropped = 0;
  return (error) => {
    const now = Date.now();
    if (now - last < 10_000) {
      dropped++;
      return;
    }
    const more = dropped > 0 ? ` (${dropped} more since the last warning)` : '';
    last = now;
    dropped = 0;
    const message = (error instanceof Error ? error.message : String(error)).replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
    logger.warn(`The session store failed; requests go on without a session and Duo-protected routes answer 503${more}: ${message}`);
  };
}
