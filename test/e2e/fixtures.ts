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
  type ExceptionFilter,
  type INestApplication,
  type LoggerService,
  type Type,
} from '@nestjs/common';
import { APP_GUARD, BaseExceptionFilter, HttpAdapterHost } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import session from 'express-session';
import supertest from 'supertest';
import {
  DuoCallback,
  DuoCallbackResult,
  DuoModule,
  DuoService,
  RequireSecondFactor,
  SecondFactorGuard,
  SkipSecondFactor,
  guardSessionStore,
  type DuoCallbackOutcome,
  type DuoEvent,
  type DuoModuleOptions,
} from '../../src/index.js';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { DuoEmulator as DuoEmulatorClass, type DuoEmulator } from '../../src/testing/index.js';

export const REDIRECT_URI = 'http://localhost/duo/callback';

/** Every state, code and request JWT the tests saw on the wire, to scan the app's logs for. */
export const wireSecrets = new Set<string>();

export function rememberWireSecrets(location: string | undefined): void {
  if (!location) return;
  const url = new URL(location, 'http://localhost');
  for (const key of ['state', 'duo_code', 'code', 'request']) {
    const value = url.searchParams.get(key);
    if (value) wireSecrets.add(value);
  }
  const request = url.searchParams.get('request');
  if (request) {
    const claims = JSON.parse(Buffer.from(request.split('.')[1] ?? '', 'base64url').toString() || '{}') as { nonce?: string };
    if (claims.nonce) wireSecrets.add(claims.nonce);
  }
}

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

type Req = Record<string, any>;

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

/** What a test's session store does with each kind of call: answer, fail, or never answer. */
export interface StoreFaults {
  get?: 'fail' | 'hang';
  set?: 'fail' | 'hang';
  destroy?: 'fail' | 'hang';
  /** Let this many more sets through, then hang every one after. */
  setsBeforeHang?: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type StoreCallback = (error?: any, value?: any) => void;
function faulty(faults: StoreFaults, op: 'get' | 'set' | 'destroy', callback: StoreCallback, run: () => void): void {
  if (op === 'set' && faults.setsBeforeHang !== undefined) {
    if (faults.setsBeforeHang <= 0) return;
    faults.setsBeforeHang--;
  }
  if (faults[op] === 'hang') return;
  if (faults[op] === 'fail') {
    setImmediate(() => callback(new Error(`test store: ${op} failed`)));
    return;
  }
  run();
}

/** express-session's MemoryStore with switchable faults. */
export class FaultyExpressStore extends session.MemoryStore {
  constructor(private readonly faults: StoreFaults) {
    super();
  }
  override get(sid: string, callback: StoreCallback): void {
    faulty(this.faults, 'get', callback, () => super.get(sid, callback as never));
  }
  override set(sid: string, data: session.SessionData, callback?: StoreCallback): void {
    faulty(this.faults, 'set', callback ?? (() => undefined), () => super.set(sid, data, callback as never));
  }
  override destroy(sid: string, callback?: StoreCallback): void {
    faulty(this.faults, 'destroy', callback ?? (() => undefined), () => super.destroy(sid, callback as never));
  }
}

/** @fastify/session's MemoryStore (which keeps session objects by reference) with switchable faults. */
export function faultyFastifyStore(faults: StoreFaults): object {
  const store = new (fastifySession as unknown as { MemoryStore: new () => Record<string, (...args: any[]) => void> }).MemoryStore();
  for (const op of ['get', 'set', 'destroy'] as const) {
    const original = store[op]!.bind(store);
    store[op] = (...args: any[]) => {
      const callback = args[args.length - 1] as StoreCallback;
      faulty(faults, op, callback, () => original(...args));
    };
  }
  return store;
}

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

/** A stand-in for the app's primary login: whatever sets req.user from the session. */
@Controller()
@SkipSecondFactor()
class PrimaryLoginController {
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

@Controller()
class ProtectedController {
  @Get()
  home(): string {
    return 'home';
  }

  @Get('account')
  @RequireSecondFactor()
  account(@Req() req: Req): string {
    return `account of ${req.user.username}`;
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

  @Get('duo/callback')
  @DuoCallback()
  callback(@DuoCallbackResult() outcome: DuoCallbackOutcome): { url: string } | undefined {
    // Leave the default 303 to the return target, but prove the outcome reaches the handler.
    if (!outcome || typeof outcome.returnTo !== 'string') throw new Error('callback outcome missing');
    return undefined;
  }
}

/** The protected pages of an app that forgot its callback route. */
@Controller()
class ProtectedWithoutCallback {
  @Get('account')
  @RequireSecondFactor()
  account(): string {
    return 'account';
  }
}

/** A public controller with one protected handler: the handler's own requirement must win. */
@Controller('public')
@SkipSecondFactor()
class PublicController {
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
class GlobalModeController {
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

export type Platform = 'express' | 'fastify';
/** Every e2e suite that speaks HTTP runs on both platforms. */
export const PLATFORMS: Platform[] = ['express', 'fastify'];

export interface TestApp {
  app: INestApplication;
  /** The session store, when the test gave or asked for one. */
  store?: object;
  baseUrl: string;
  logger: CapturingLogger;
  events: DuoEvent[];
  duo: DuoService;
  agent(): ReturnType<typeof supertest.agent>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  duo?: Partial<DuoModuleOptions>;
  sameSite?: 'lax' | 'strict';
  /** Bind SecondFactorGuard with APP_GUARD. */
  globalGuard?: boolean;
  /** Leave out the session middleware. */
  noSession?: boolean;
  adapter?: Platform;
  /** A session store whose calls can be made to fail or hang (MemoryStore otherwise). */
  storeFaults?: StoreFaults;
  /** An app-wide catch-all exception filter, registered with app.useGlobalFilters(). */
  globalFilter?: 'plain' | 'base';
  /** Leave out the @DuoCallback() route. */
  noCallbackRoute?: boolean;
  /** Session middleware settings beyond the defaults used here. */
  session?: { rolling?: boolean; saveUninitialized?: boolean };
  /** Cookie settings beyond the defaults used here. */
  cookie?: Record<string, unknown>;
  /** One session store object shared with another app (same platform). */
  sharedStore?: object;
  /** Express: wrap the session middleware in guardSessionStore() with this deadline (ms). */
  guardStoreMs?: number;
}

export async function createTestApp(emulator: DuoEmulator, options: TestAppOptions = {}): Promise<TestApp> {
  const events: DuoEvent[] = [];
  const controllers: Type[] = [PrimaryLoginController, options.noCallbackRoute ? ProtectedWithoutCallback : ProtectedController, PublicController];
  if (options.globalGuard) controllers.push(GlobalModeController);

  @Module({
    imports: [
      DuoModule.forRoot({
        ...emulator.clientOptions(REDIRECT_URI),
        onEvent: (event) => events.push(event),
        ...options.duo,
        isGlobal: true,
      }),
    ],
    controllers,
    providers: options.globalGuard ? [{ provide: APP_GUARD, useClass: SecondFactorGuard }] : [],
  })
  class AppModule {}

  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const sessionSecret = 'test-session-secret-that-is-long-enough-for-fastify';
  const cookie = { sameSite: options.sameSite ?? 'lax', httpOnly: true, secure: false, ...options.cookie } as const;
  const store = options.sharedStore ?? (options.storeFaults ? (options.adapter === 'fastify' ? faultyFastifyStore(options.storeFaults) : new FaultyExpressStore(options.storeFaults)) : undefined);
  let app: INestApplication;
  if (options.adapter === 'fastify') {
    const fastifyApp = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger });
    if (!options.noSession) {
      await fastifyApp.register(fastifyCookie as never);
      await fastifyApp.register(fastifySession as never, {
        secret: sessionSecret,
        cookie,
        saveUninitialized: false,
        ...options.session,
        ...(store ? { store } : {}),
      });
    }
    fastifyApp.getHttpAdapter().getInstance().addHook('preHandler', (req: Req, _reply: unknown, done: () => void) => {
      if (req.session?.user) req.user = req.session.user;
      done();
    });
    app = fastifyApp;
  } else {
    app = moduleRef.createNestApplication({ logger });
    if (!options.noSession) {
      const middleware = session({
          secret: sessionSecret,
          resave: false,
          saveUninitialized: false,
          cookie,
          ...options.session,
          ...(store ? { store: store as session.Store } : {}),
      });
      app.use(options.guardStoreMs === undefined ? middleware : guardSessionStore(middleware, { timeoutMs: options.guardStoreMs }));
    }
    app.use((req: Req, _res: unknown, next: () => void) => {
      if (req.session?.user) req.user = req.session.user;
      next();
    });
  }
  if (options.globalFilter === 'plain') app.useGlobalFilters(new PlainCatchAllFilter(app.get(HttpAdapterHost)));
  if (options.globalFilter === 'base') app.useGlobalFilters(new ReportingFilter(app.get(HttpAdapterHost).httpAdapter));
  await app.listen(0, '127.0.0.1');
  const baseUrl = await app.getUrl();
  return {
    app,
    baseUrl: baseUrl.replace('[::1]', '127.0.0.1'),
    logger,
    events,
    ...(store ? { store } : {}),
    duo: app.get(DuoService),
    agent: () => supertest.agent(app.getHttpServer()),
    close: () => app.close(),
  };
}

/**
 * For suites that start an app per test on one platform: an emulator for the
 * suite (reset before each test) and `app(options)`, whose apps are closed after
 * each test. Call it inside `describe`.
 */
export function perTestApps(adapter: Platform): { emulator: () => DuoEmulator; app: (options?: TestAppOptions) => Promise<TestApp> } {
  let emulator: DuoEmulator | undefined;
  let apps: TestApp[] = [];
  beforeAll(async () => {
    emulator = await DuoEmulatorClass.start();
  });
  afterAll(async () => {
    await emulator?.close();
  });
  beforeEach(() => emulator?.reset());
  afterEach(async () => {
    gates.current?.release();
    gates.current = undefined;
    await Promise.all(apps.map((t) => t.close()));
    apps = [];
  });
  return {
    emulator: () => emulator!,
    app: async (options = {}) => {
      const t = await createTestApp(emulator!, { adapter, ...options });
      apps.push(t);
      return t;
    },
  };
}

/** The path and query of a Location header aimed at the app (the redirect URI's host is not where the test app listens). */
export function pathOf(location: string): string {
  const url = new URL(location, 'http://localhost');
  return `${url.pathname}${url.search}`;
}

/** Logs in as `username` and walks the whole Duo flow for `path`; returns the callback response. */
export async function loginWithDuo(
  emulator: DuoEmulator,
  agent: ReturnType<typeof supertest.agent>,
  username: string,
  path = '/account',
): Promise<{ callback: supertest.Response; state: string; back: string }> {
  await agent.post('/login').send({ username }).expect(201);
  const start = await agent.get(path).set('Accept', 'text/html').expect(303);
  rememberWireSecrets(start.headers.location);
  const back = await emulator.authorize(start.headers.location!);
  rememberWireSecrets(back);
  const state = new URL(back).searchParams.get('state')!;
  const callback = await agent.get(pathOf(back)).set('Accept', 'text/html');
  return { callback, state, back };
}
