/**
 * The one app builder of the e2e suites (test/e2e/fixtures.ts), the Redis
 * suites (test/redis/instances.ts) and the benchmarks (bench/app-process.ts):
 * a Nest app as a user writes it, with a stand-in primary login, sessions,
 * DuoModule and pages behind `@RequireSecondFactor()`. No supertest here (the
 * benchmarks compile this file), and Fastify's packages load only for Fastify.
 */
import 'reflect-metadata';
import {
  Body,
  Catch,
  Controller,
  Get,
  HttpException,
  Module,
  Post,
  Req,
  type ArgumentsHost,
  type DynamicModule,
  type ExceptionFilter,
  type INestApplication,
  type LoggerService,
  type Type,
} from '@nestjs/common';
import { APP_GUARD, BaseExceptionFilter, HttpAdapterHost, NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import session from 'express-session';
import {
  DuoCallback,
  DuoCallbackResult,
  DuoModule,
  RequireSecondFactor,
  SecondFactorGuard,
  SkipSecondFactor,
  guardSessionStore,
  type DuoCallbackOutcome,
  type DuoModuleOptions,
  type GuardSessionStoreOptions,
} from '../../src/index.js';

export const REDIRECT_URI = 'http://localhost/duo/callback';

export type Platform = 'express' | 'fastify';
/** Every e2e suite that speaks HTTP runs on both platforms. */
export const PLATFORMS: Platform[] = ['express', 'fastify'];

type Req = Record<string, any>;

/** Collects every line the app logs, to scan them for secrets. */
export class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  #push(level: string, message: unknown, rest: unknown[]): void {
    this.lines.push(`${level} ${[message, ...rest].map((part) => (typeof part === 'string' ? part : JSON.stringify(part) ?? String(part))).join(' ')}`);
  }
  log(message: unknown, ...rest: unknown[]): void { this.#push('log', message, rest); }
  error(message: unknown, ...rest: unknown[]): void { this.#push('error', message, rest); }
  warn(message: unknown, ...rest: unknown[]): void { this.#push('warn', message, rest); }
  debug(message: unknown, ...rest: unknown[]): void { this.#push('debug', message, rest); }
  verbose(message: unknown, ...rest: unknown[]): void { this.#push('verbose', message, rest); }
  fatal(message: unknown, ...rest: unknown[]): void { this.#push('fatal', message, rest); }
  text(): string { return this.lines.join('\n'); }
  warnings(): string[] { return this.lines.filter((line) => line.startsWith('warn')); }
}

/**
 * A request held open on purpose (`GET /hold`) until the test releases it: a
 * request of the browser's that is in flight while its callback completes.
 */
export class Gate {
  #release?: () => void;
  #arrived?: () => void;
  arrived = new Promise<void>((resolve) => (this.#arrived = resolve));
  readonly #opened = new Promise<void>((resolve) => (this.#release = resolve));
  async wait(): Promise<void> {
    this.#arrived?.();
    await this.#opened;
  }
  release(): void {
    this.#release?.();
  }
}
export const gates: { current?: Gate } = {};

/** A stand-in for the app's primary login: whatever sets req.user from the session. */
@Controller()
@SkipSecondFactor()
export class PrimaryLoginController {
  @Post('login')
  login(@Req() req: Req, @Body() body: { username?: string }): { ok: true } {
    req.session.user = { username: body.username };
    return { ok: true };
  }

  @Post('logout')
  async logout(@Req() req: Req): Promise<{ ok: true }> {
    await new Promise<void>((resolve, reject) => req.session.destroy((err: unknown) => (err ? reject(err) : resolve())));
    return { ok: true };
  }
}

/** Pages that show the tests what a request sees of its session. */
@Controller()
@SkipSecondFactor()
export class SessionProbeController {
  /** Held open until the test's gate opens; it writes to the session, as many pages do. */
  @Get('hold')
  async hold(@Req() req: Req): Promise<{ ok: true }> {
    req.session.views = (req.session.views ?? 0) + 1;
    await gates.current?.wait();
    return { ok: true };
  }

  @Get('whoami')
  whoami(@Req() req: Req): Record<string, unknown> {
    return { user: req.user ?? null, sessionId: req.sessionID ?? req.session?.sessionId, duo: req.session?.duo ?? null };
  }
}

/** The page every app here protects. */
@Controller()
export class AccountController {
  @Get('account')
  @RequireSecondFactor()
  account(@Req() req: Req): string {
    return `account of ${req.user.username}`;
  }
}

/** The route at the redirect URI's path. */
@Controller()
export class CallbackController {
  @Get('duo/callback')
  @DuoCallback()
  callback(@DuoCallbackResult() outcome: DuoCallbackOutcome): { url: string } | undefined {
    // Leave the default 303 to the return target, but prove the outcome reaches the handler.
    if (!outcome || typeof outcome.returnTo !== 'string') throw new Error('callback outcome missing');
    return undefined;
  }
}

/** More pages of the e2e suites: an open home page, step-up windows, an API route. */
@Controller()
export class PagesController {
  @Get()
  home(): string {
    return 'home';
  }

  @Get('sensitive')
  @RequireSecondFactor({ maxAge: 60 })
  sensitive(): string {
    return 'sensitive';
  }

  @Get('brief')
  @RequireSecondFactor({ maxAge: 1 })
  brief(): string {
    return 'brief';
  }

  @Get('api/data')
  @RequireSecondFactor()
  data(): { data: number[] } {
    return { data: [1, 2, 3] };
  }
}

/** A public controller with one protected handler: the handler's own requirement must win. */
@Controller('public')
@SkipSecondFactor()
export class PublicController {
  @Get()
  open(): string {
    return 'public';
  }

  @Get('settings')
  @RequireSecondFactor()
  settings(): string {
    return 'security settings';
  }
}

/** The same pages with the guard bound globally. */
@Controller('global')
export class GlobalModeController {
  @Get('open')
  @SkipSecondFactor()
  open(): string {
    return 'open';
  }

  @Get('closed')
  closed(): string {
    return 'closed';
  }
}

/** The controllers of the smallest app: login, the account page, the callback. */
export const MINIMAL_CONTROLLERS: Type[] = [PrimaryLoginController, AccountController, CallbackController];

/** An app's catch-all filter as Nest's docs write it: every exception becomes a JSON body with its status. */
@Catch()
export class PlainCatchAllFilter implements ExceptionFilter {
  constructor(private readonly adapterHost: HttpAdapterHost) {}
  catch(exception: unknown, host: ArgumentsHost): void {
    const { httpAdapter } = this.adapterHost;
    const status = exception instanceof HttpException ? exception.getStatus() : 500;
    httpAdapter.reply(host.switchToHttp().getResponse(), { statusCode: status, caughtBy: 'app' }, status);
  }
}

/** An app's catch-all filter that extends Nest's BaseExceptionFilter (how error reporters are added). */
@Catch()
export class ReportingFilter extends BaseExceptionFilter {
  readonly seen: unknown[] = [];
  override catch(exception: unknown, host: ArgumentsHost): void {
    this.seen.push(exception);
    super.catch(exception, host);
  }
}

/** The session middleware: express-session or @fastify/cookie + @fastify/session. */
export interface DuoTestSessionOptions {
  /** The session store (the platform's MemoryStore otherwise); one object may serve several apps. */
  store?: object;
  /** Cookie settings over the defaults: SameSite lax, HttpOnly, not Secure. */
  cookie?: Record<string, unknown>;
  rolling?: boolean;
  /** Default false. */
  saveUninitialized?: boolean;
  /** Express: wrap the middleware in guardSessionStore() with these options. */
  guard?: GuardSessionStoreOptions;
}

export interface DuoTestAppOptions {
  /** DuoModule.forRoot()'s options (always isGlobal). */
  duo: DuoModuleOptions;
  /** Default express. */
  adapter?: Platform;
  /** Default MINIMAL_CONTROLLERS. */
  controllers?: Type[];
  /** More modules for the app module to import (a health module, ...). */
  imports?: Array<Type | DynamicModule>;
  /** Bind SecondFactorGuard with APP_GUARD. */
  globalGuard?: boolean;
  logger?: LoggerService;
  /** The session middleware's settings, or false to leave it out. Default: in memory. */
  session?: DuoTestSessionOptions | false;
  /** An app-wide catch-all exception filter, registered with app.useGlobalFilters(). */
  globalFilter?: 'plain' | 'base';
  /**
   * `testing` (default): @nestjs/testing's TestingModule, as e2e tests do.
   * `factory`: NestFactory.create(), as an app's main.ts does (the benchmarks).
   */
  bootstrap?: 'testing' | 'factory';
  /** Runs before any middleware is added (Express: app.use() here comes first). */
  beforeMiddleware?: (app: INestApplication) => void;
}

export interface DuoTestApp {
  /** Listening on 127.0.0.1 and a free port. */
  app: INestApplication;
  baseUrl: string;
}

/** Every instance of the app signs its cookies with this one secret (long enough for @fastify/session). */
const SESSION_SECRET = 'test-session-secret-that-is-long-enough-for-fastify';

/**
 * Builds the app: DuoModule and the controllers; the session middleware; then
 * one that sets req.user from the session (what a primary login's Passport
 * session would do). Listens on 127.0.0.1 and a free port.
 */
export async function buildDuoTestApp(options: DuoTestAppOptions): Promise<DuoTestApp> {
  @Module({
    imports: [DuoModule.forRoot({ ...options.duo, isGlobal: true }), ...(options.imports ?? [])],
    controllers: options.controllers ?? MINIMAL_CONTROLLERS,
    providers: options.globalGuard ? [{ provide: APP_GUARD, useClass: SecondFactorGuard }] : [],
  })
  class AppModule {}

  const fastify = options.adapter === 'fastify';
  const adapter = fastify ? new (await import('@nestjs/platform-fastify')).FastifyAdapter() : undefined;
  const appOptions = options.logger ? { logger: options.logger } : {};
  let app: INestApplication;
  if (options.bootstrap === 'factory') {
    const factoryOptions = { ...appOptions, abortOnError: false };
    app = adapter ? await NestFactory.create(AppModule, adapter, factoryOptions) : await NestFactory.create(AppModule, factoryOptions);
  } else {
    const { Test } = await import('@nestjs/testing');
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = adapter ? moduleRef.createNestApplication(adapter, appOptions) : moduleRef.createNestApplication(appOptions);
  }
  options.beforeMiddleware?.(app);

  const settings = options.session;
  if (settings !== false) {
    const { store, cookie, guard, ...more } = settings ?? {};
    const common = { secret: SESSION_SECRET, cookie: { sameSite: 'lax', httpOnly: true, secure: false, ...cookie }, saveUninitialized: false, ...more, ...(store ? { store } : {}) };
    if (fastify) {
      const fastifyApp = app as NestFastifyApplication;
      await fastifyApp.register((await import('@fastify/cookie')).default as never);
      await fastifyApp.register((await import('@fastify/session')).default as never, common);
    } else {
      const middleware = session({ resave: false, ...common } as session.SessionOptions);
      app.use(guard ? guardSessionStore(middleware, guard) : middleware);
    }
  }
  if (fastify) {
    (app as NestFastifyApplication).getHttpAdapter().getInstance().addHook('preHandler', (req: Req, _reply: unknown, done: () => void) => {
      if (req.session?.user) req.user = req.session.user;
      done();
    });
  } else {
    app.use((req: Req, _res: unknown, next: () => void) => {
      if (req.session?.user) req.user = req.session.user;
      next();
    });
  }
  if (options.globalFilter === 'plain') app.useGlobalFilters(new PlainCatchAllFilter(app.get(HttpAdapterHost)));
  if (options.globalFilter === 'base') app.useGlobalFilters(new ReportingFilter(app.get(HttpAdapterHost).httpAdapter));
  await app.listen(0, '127.0.0.1');
  return { app, baseUrl: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}
