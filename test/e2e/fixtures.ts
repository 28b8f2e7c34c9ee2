import 'reflect-metadata';
import { Body, Controller, Get, Module, Post, Req, type INestApplication, type LoggerService, type Type } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
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
  type DuoCallbackOutcome,
  type DuoEvent,
  type DuoModuleOptions,
} from '../../src/index.js';
import type { DuoEmulator } from '../../src/testing/index.js';

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
}

export async function createTestApp(emulator: DuoEmulator, options: TestAppOptions = {}): Promise<TestApp> {
  const events: DuoEvent[] = [];
  const controllers: Type[] = [PrimaryLoginController, ProtectedController, PublicController];
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
  const cookie = { sameSite: options.sameSite ?? 'lax', httpOnly: true, secure: false } as const;
  let app: INestApplication;
  if (options.adapter === 'fastify') {
    const fastifyApp = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger });
    if (!options.noSession) {
      await fastifyApp.register(fastifyCookie as never);
      await fastifyApp.register(fastifySession as never, { secret: sessionSecret, cookie, saveUninitialized: false });
    }
    fastifyApp.getHttpAdapter().getInstance().addHook('preHandler', (req: Req, _reply: unknown, done: () => void) => {
      if (req.session?.user) req.user = req.session.user;
      done();
    });
    app = fastifyApp;
  } else {
    app = moduleRef.createNestApplication({ logger });
    if (!options.noSession) {
      app.use(session({ secret: sessionSecret, resave: false, saveUninitialized: false, cookie }));
    }
    app.use((req: Req, _res: unknown, next: () => void) => {
      if (req.session?.user) req.user = req.session.user;
      next();
    });
  }
  await app.listen(0, '127.0.0.1');
  const baseUrl = await app.getUrl();
  return {
    app,
    baseUrl: baseUrl.replace('[::1]', '127.0.0.1'),
    logger,
    events,
    duo: app.get(DuoService),
    agent: () => supertest.agent(app.getHttpServer()),
    close: () => app.close(),
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
