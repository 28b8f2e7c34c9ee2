import { Module, type DynamicModule, type INestApplication } from '@nestjs/common';
import session from 'express-session';
import { DuoModule, type DuoModuleOptions } from 'nestjs-duo';
import { AppController } from './app.controller';

@Module({})
export class AppModule {
  /** The app with Duo's settings: the real Duo's in production, the emulator's in the e2e test. */
  static register(duo: DuoModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [DuoModule.forRoot({ ...duo, isGlobal: true })],
      controllers: [AppController],
    };
  }
}

/** What main.ts does before listen(): the session, and the session's user on the request. */
export function configureApp(app: INestApplication): void {
  app.use(
    session({
      secret: 'nest11-compat-session-secret',
      resave: false,
      saveUninitialized: false,
      cookie: { httpOnly: true, sameSite: 'lax', secure: false },
    }),
  );
  app.use((req: { session?: { user?: unknown }; user?: unknown }, _res: unknown, next: () => void) => {
    if (req.session?.user) req.user = req.session.user;
    next();
  });
}
