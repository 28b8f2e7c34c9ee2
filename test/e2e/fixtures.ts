import 'reflect-metadata';
import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import supertest from 'supertest';
import { DuoService, type DuoEvent, type DuoModuleOptions } from '../../src/index.js';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { DuoEmulator as DuoEmulatorClass, type DuoEmulator } from '../../src/testing/index.js';
import {
  AccountController,
  CallbackController,
  CapturingLogger,
  GlobalModeController,
  PagesController,
  PrimaryLoginController,
  PublicController,
  REDIRECT_URI,
  SessionProbeController,
  buildDuoTestApp,
  gates,
  type Platform,
} from '../support/app.js';
import { faultyStore, type StoreFaults } from '../support/session-stores.js';

export { CapturingLogger, Gate, PLATFORMS, REDIRECT_URI, gates, type Platform } from '../support/app.js';
export type { StoreFaults } from '../support/session-stores.js';

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
  /** More modules for the app module to import (e.g. @nestjs/throttler with its global guard). */
  imports?: Array<Type | DynamicModule>;
  /** Session middleware settings beyond the defaults used here. */
  session?: { rolling?: boolean; saveUninitialized?: boolean };
  /** Cookie settings beyond the defaults used here. */
  cookie?: Record<string, unknown>;
  /** One session store object shared with another app (same platform). */
  sharedStore?: object;
  /** Express: wrap the session middleware in guardSessionStore() with this deadline (ms). */
  guardStoreMs?: number;
}

/** The shared app builder (test/support/app.ts) with every e2e page, a capturing logger, the events, and supertest on top. */
export async function createTestApp(emulator: DuoEmulator, options: TestAppOptions = {}): Promise<TestApp> {
  const events: DuoEvent[] = [];
  const controllers: Type[] = [PrimaryLoginController, SessionProbeController, AccountController, PagesController, PublicController];
  if (!options.noCallbackRoute) controllers.push(CallbackController);
  if (options.globalGuard) controllers.push(GlobalModeController);
  const logger = new CapturingLogger();
  const store = options.sharedStore ?? (options.storeFaults ? faultyStore(options.adapter, options.storeFaults) : undefined);
  const { app, baseUrl } = await buildDuoTestApp({
    duo: { ...emulator.clientOptions(REDIRECT_URI), onEvent: (event) => events.push(event), ...options.duo },
    controllers,
    logger,
    adapter: options.adapter,
    globalGuard: options.globalGuard,
    globalFilter: options.globalFilter,
    ...(options.imports ? { imports: options.imports } : {}),
    session: options.noSession
      ? false
      : {
          cookie: { sameSite: options.sameSite ?? 'lax', ...options.cookie },
          ...options.session,
          store,
          guard: options.guardStoreMs === undefined ? undefined : { timeoutMs: options.guardStoreMs },
        },
  });
  return {
    app,
    baseUrl,
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
