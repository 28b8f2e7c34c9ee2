import type { INestApplication } from '@nestjs/common';
import session from 'express-session';

/** What main.ts does before listen(), shared with the e2e tests: the session, and its user on the request. */
export function configureApp(app: INestApplication): void {
  app.use(
    session({
      secret: process.env.SESSION_SECRET ?? 'a session secret for local runs only',
      resave: false,
      saveUninitialized: false,
      cookie: { sameSite: 'lax', secure: process.env.NODE_ENV === 'production', httpOnly: true },
    }),
  );
  app.use((req: { session?: { user?: unknown }; user?: unknown }, _res: unknown, next: () => void) => {
    req.user = req.session?.user;
    next();
  });
}
