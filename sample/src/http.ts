import type { NextFunction, Request, Response } from 'express';
import { safeReturnPath } from 'nestjs-duo';
import type { SessionUser } from './users.service.js';

declare module 'express-session' {
  interface SessionData {
    /** The primary login (password); the Duo module keeps its own part under `duo`. */
    user?: SessionUser;
  }
}

/** An Express request after the sample's middleware: `user` mirrors the session's primary login. */
export interface SampleRequest extends Request {
  user?: SessionUser;
}

/** req.user from the session, for the guards and the pages (what Passport's session support would do). */
export function sessionUser(req: SampleRequest, _res: Response, next: NextFunction): void {
  if (req.session?.user) req.user = req.session.user;
  next();
}

/**
 * Pages show who is signed in: never cache them, never frame them, run no script.
 * Inline styles are allowed for the error pages nestjs-duo renders itself.
 */
export function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'");
  next();
}

/**
 * The session cookie belongs to one host name, and Duo returns to the redirect
 * URI's: someone who opened http://127.0.0.1:3000 would lose the session on the
 * way back from Duo. Loopback visitors are sent to `publicOrigin`: the redirect
 * URI's origin, or with several instances this instance's own (the same host
 * name on its port, since cookies ignore ports).
 */
export function canonicalLoopbackHost(publicOrigin: string) {
  const canonical = new URL(publicOrigin);
  const loopback = new Set(['localhost', '127.0.0.1', '[::1]']);
  return (req: Request, res: Response, next: NextFunction): void => {
    const host = req.headers.host;
    if (!loopback.has(canonical.hostname) || host === undefined || host === canonical.host || (req.method !== 'GET' && req.method !== 'HEAD')) {
      next();
      return;
    }
    const hostname = host.replace(/:\d+$/, '');
    if (!loopback.has(hostname)) {
      next();
      return;
    }
    res.redirect(308, `${canonical.origin}${safeReturnPath(req.originalUrl)}`);
  };
}
