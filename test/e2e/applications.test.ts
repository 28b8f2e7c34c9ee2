/**
 * Several Duo applications in one app (issue 13 item 1) through the public
 * API, on Express and Fastify with the in-session store: `applications` with
 * a default, `@RequireSecondFactor({ application })`, `resolveApplication`
 * (the host name picks a tenant), one callback route serving every
 * application (or each its own), markers per application, events naming the
 * application, and the startup errors. One emulator stands in for every
 * application (`addApplication()`).
 */
import { createHash } from 'node:crypto';
import 'reflect-metadata';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { Controller, Get, Injectable, Module, Req, type Type } from '@nestjs/common';
import supertest from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DuoCallback,
  DuoConfigError,
  DuoService,
  RequireSecondFactor,
  type DuoApplicationOptions,
  type DuoEvent,
  type DuoModuleOptions,
} from '../../src/index.js';
import { DuoEmulator, type DuoEmulatorApplication } from '../../src/testing/index.js';
import {
  AccountController,
  CallbackController,
  CapturingLogger,
  PLATFORMS,
  PrimaryLoginController,
  REDIRECT_URI,
  SessionProbeController,
  buildDuoTestApp,
  type Platform,
} from '../support/app.js';
import { pathOf } from './fixtures.js';

type Req = Record<string, any>;

/** The admin application's own redirect URI (each application its own callback route). */
const ADMIN_REDIRECT_URI = 'http://localhost/duo/admin-callback';
type Agent = ReturnType<typeof supertest.agent>;

/** The admin area: its own Duo application, with a factor rule on one page. */
@Controller('admin')
class AdminController {
  @Get()
  @RequireSecondFactor({ application: 'admin' })
  dashboard(): string {
    return 'admin dashboard';
  }

  @Get('keys')
  @RequireSecondFactor({ application: 'admin', factors: ['webauthn'] })
  keys(): string {
    return 'admin keys';
  }
}

/**
 * The controller names the application and a rule; its handlers add their own options (the
 * pattern the outside review found dropping both): each handler must keep them.
 */
@Controller('vault')
@RequireSecondFactor({ application: 'admin', factors: ['webauthn'] })
class VaultController {
  @Get()
  open(): string {
    return 'vault';
  }

  @Get('delete')
  @RequireSecondFactor({ maxAge: 300 })
  remove(): string {
    return 'vault delete';
  }

  @Get('interactive')
  @RequireSecondFactor({ requireInteraction: true })
  interactive(): string {
    return 'vault interactive';
  }
}

/** What the current session passed, per application, through DuoService. */
@Controller('passed')
class PassedController {
  constructor(private readonly duo: DuoService) {}

  @Get()
  passed(@Req() req: Req): Record<string, unknown> {
    return {
      default: this.duo.applicationName,
      names: this.duo.applicationNames,
      staff: this.duo.verification(req)?.app ?? null,
      admin: this.duo.forApplication('admin').verification(req)?.app ?? null,
    };
  }
}

/** The admin application's own callback route (for "each its own"). */
@Controller('duo')
class AdminCallbackController {
  @Get('admin-callback')
  @DuoCallback()
  callback(): undefined {
    return undefined;
  }
}

const CONTROLLERS: Type[] = [PrimaryLoginController, SessionProbeController, AccountController, CallbackController, AdminController, PassedController];

interface AppsApp {
  agent(): Agent;
  duo: DuoService;
  events: DuoEvent[];
  logger: CapturingLogger;
  close(): Promise<void>;
}

/** A metric reader the test collects by hand. */
class ManualReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** The request JWT's claims of an authorize URL. */
function requestClaims(location: string): Record<string, unknown> {
  const request = new URL(location).searchParams.get('request')!;
  return JSON.parse(Buffer.from(request.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
}

describe.each(PLATFORMS)('several Duo applications on %s (in-session store)', (adapter: Platform) => {
  let emulator: DuoEmulator;
  let admin: DuoEmulatorApplication;
  let apps: AppsApp[] = [];
  beforeAll(async () => {
    emulator = await DuoEmulator.start();
    admin = emulator.addApplication();
  });
  afterAll(async () => {
    await emulator.close();
  });
  beforeEach(() => emulator.reset());
  afterEach(async () => {
    await Promise.all(apps.map((t) => t.close()));
    apps = [];
  });

  const staffAndAdmin = (adminRedirect = REDIRECT_URI): Partial<DuoModuleOptions> => ({
    applications: { staff: emulator.clientOptions(REDIRECT_URI), admin: admin.clientOptions(adminRedirect) },
    defaultApplication: 'staff',
  });

  const app = async (duo: Partial<DuoModuleOptions> = staffAndAdmin(), controllers: Type[] = CONTROLLERS): Promise<AppsApp> => {
    const events: DuoEvent[] = [];
    const logger = new CapturingLogger();
    const built = await buildDuoTestApp({ duo: { onEvent: (event) => events.push(event), ...duo } as DuoModuleOptions, controllers, adapter, logger });
    const t = { agent: () => supertest.agent(built.app.getHttpServer()), duo: built.app.get(DuoService), events, logger, close: () => built.app.close() };
    apps.push(t);
    return t;
  };

  /** One round through Duo for `path`: the 303 to Duo, Duo's answer, the callback (303 back). */
  async function throughDuo(agent: Agent, path: string, host?: string): Promise<string> {
    const get = (target: string) => (host ? agent.get(target).set('Host', host) : agent.get(target));
    const start = await get(path).set('Accept', 'text/html').expect(303);
    const location = start.headers.location!;
    expect(location.startsWith(emulator.baseUrl)).toBe(true);
    const back = await emulator.authorize(location);
    const callback = await get(pathOf(back)).set('Accept', 'text/html');
    expect(callback.status, callback.text).toBe(303);
    expect(callback.headers.location).toBe(path);
    return location;
  }

  async function loggedIn(t: AppsApp, username = 'alice'): Promise<Agent> {
    const agent = t.agent();
    await agent.post('/login').send({ username }).expect(201);
    return agent;
  }

  it('a staff second factor does not satisfy an admin route: the admin route starts a login with the admin client', async () => {
    const t = await app();
    const agent = await loggedIn(t);
    const staffStart = await throughDuo(agent, '/account');
    expect(new URL(staffStart).searchParams.get('client_id')).toBe(emulator.clientId);
    await agent.get('/account').expect(200, 'account of alice');

    const adminStart = await agent.get('/admin').set('Accept', 'text/html').expect(303);
    const url = new URL(adminStart.headers.location!);
    expect(url.searchParams.get('client_id')).toBe(admin.clientId);
    expect(requestClaims(url.href).client_id).toBe(admin.clientId);
    // An API client gets the 401 that says where to go, never the page.
    const json = await agent.get('/admin').set('Accept', 'application/json').expect(401);
    expect(json.body.error).toBe('second_factor_required');
  });

  it('both markers live in one session side by side; one callback route serves both applications', async () => {
    const t = await app();
    const agent = await loggedIn(t);
    await throughDuo(agent, '/account');
    await throughDuo(agent, '/admin');
    await agent.get('/admin').expect(200, 'admin dashboard');
    // Passing admin renewed the session and kept staff's marker.
    await agent.get('/account').expect(200, 'account of alice');

    const who = await agent.get('/whoami').expect(200);
    expect(who.body.duo.verified).toBeUndefined();
    // A marker names its application by 12 characters of the SHA-256 of clientId@host.
    const tag = (clientId: string): string => createHash('sha256').update(`${clientId}@${new URL(emulator.baseUrl).host}`).digest('base64url').slice(0, 12);
    expect(who.body.duo.apps.staff.verified).toMatchObject({ username: 'alice', app: tag(emulator.clientId) });
    expect(who.body.duo.apps.admin.verified).toMatchObject({ username: 'alice', app: tag(admin.clientId) });
    const passed = await agent.get('/passed').expect(200);
    expect(passed.body).toEqual({
      default: 'staff',
      names: ['staff', 'admin'],
      staff: who.body.duo.apps.staff.verified.app,
      admin: who.body.duo.apps.admin.verified.app,
    });
    // The emulator saw each code exchanged by its own application's client (another client's exchange is refused).
    expect(emulator.stats.tokenExchangesOk).toBe(2);
    // The injected DuoService is the default application's; another is one call away, an unknown name a clear error.
    expect(t.duo.forApplication('staff')).toBe(t.duo);
    expect(t.duo.forApplication('admin')).toBe(t.duo.forApplication('admin'));
    expect(t.duo.forApplication('admin').application).toBe(`${admin.clientId}@${new URL(emulator.baseUrl).host}`);
    expect(() => t.duo.forApplication('ops')).toThrow(/forApplication\("ops"\): no such Duo application; the registered ones are staff, admin/);
    expect((await t.duo.forApplication('admin').status()).reachable).toBe(true);
  });

  it("an admin marker does not satisfy staff either, and another user's markers never count", async () => {
    const t = await app();
    const agent = await loggedIn(t);
    await throughDuo(agent, '/admin');
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    expect(new URL(start.headers.location!).searchParams.get('client_id')).toBe(emulator.clientId);
    await agent.post('/login').send({ username: 'bob' }).expect(201);
    await agent.get('/admin').set('Accept', 'text/html').expect(303);
  });

  it("a factor rule on an admin route is checked against the admin login's factor", async () => {
    const t = await app();
    const agent = await loggedIn(t);
    await throughDuo(agent, '/admin');
    // A push passed admin, but /admin/keys wants a security key: a new admin login with prompt=login.
    const start = await agent.get('/admin/keys').set('Accept', 'text/html').expect(303);
    expect(new URL(start.headers.location!).searchParams.get('client_id')).toBe(admin.clientId);
    expect(requestClaims(start.headers.location!).prompt).toBe('login');
    emulator.setFactor('WebAuthn Security Key');
    const back = await emulator.authorize(start.headers.location!);
    await agent.get(pathOf(back)).set('Accept', 'text/html').expect(303);
    await agent.get('/admin/keys').expect(200, 'admin keys');
  });

  it("a fail-open bypass counts only for its application: Duo down lets /account through, Duo back sends /admin to Duo", async () => {
    const t = await app({ ...staffAndAdmin(), failMode: 'open', healthCheckCacheSeconds: 0 });
    const agent = await loggedIn(t);
    emulator.setFailure('http_500');
    try {
      await agent.get('/account').expect(200, 'account of alice');
    } finally {
      emulator.setFailure('none');
    }
    const who = await agent.get('/whoami').expect(200);
    expect(who.body.duo.apps.staff.bypass).toMatchObject({ username: 'alice', reason: 'duo_unavailable' });
    expect(who.body.duo.apps.admin).toBeUndefined();
    expect(t.events).toContainEqual(expect.objectContaining({ type: 'second_factor_bypassed', application: 'staff', username: 'alice' }));
    expect(t.logger.warnings().some((line) => line.includes('Duo application "staff": Fail mode "open": user "alice" let through'))).toBe(true);
    const start = await agent.get('/admin').set('Accept', 'text/html').expect(303);
    expect(new URL(start.headers.location!).searchParams.get('client_id')).toBe(admin.clientId);
    // Passing admin keeps the staff bypass (it is staff's to end).
    const back = await emulator.authorize(start.headers.location!);
    await agent.get(pathOf(back)).set('Accept', 'text/html').expect(303);
    const after = await agent.get('/whoami').expect(200);
    expect(after.body.duo.apps.staff.bypass).toMatchObject({ username: 'alice' });
    expect(after.body.duo.apps.admin.verified).toMatchObject({ username: 'alice' });
  });

  it('events and log lines name the application', async () => {
    const t = await app();
    const agent = await loggedIn(t);
    await throughDuo(agent, '/account');
    await throughDuo(agent, '/admin');
    const summary = t.events.map((event) => `${event.type}:${event.application}`);
    expect(summary).toEqual(['prompt_started:staff', 'second_factor_passed:staff', 'prompt_started:admin', 'second_factor_passed:admin']);

    emulator.setMode('deny');
    await agent.post('/login').send({ username: 'carol' }).expect(201);
    const start = await agent.get('/admin').set('Accept', 'text/html').expect(303);
    const back = await emulator.authorize(start.headers.location!);
    await agent.get(pathOf(back)).set('Accept', 'text/html').expect(401);
    expect(t.events.at(-1)).toMatchObject({ type: 'second_factor_failed', code: 'access_denied', username: 'carol', application: 'admin' });
    expect(t.logger.warnings().some((line) => line.includes('Duo application "admin": Duo callback refused for user "carol": access_denied'))).toBe(true);
  });

  it("a pending login is finished by its own application even when the callback's route is another application's", async () => {
    const t = await app(staffAndAdmin(ADMIN_REDIRECT_URI), [...CONTROLLERS, AdminCallbackController]);
    expect(t.logger.text()).not.toContain('they would land on a 404');
    const agent = await loggedIn(t);
    // The admin login comes back to the admin route; a staff state sent to it is still the staff login (the store knows).
    const staffStart = await agent.get('/account').set('Accept', 'text/html').expect(303);
    const staffBack = new URL(await emulator.authorize(staffStart.headers.location!));
    await agent.get(`/duo/admin-callback${staffBack.search}`).set('Accept', 'text/html').expect(303);
    await agent.get('/account').expect(200);
    await throughDuo(agent, '/admin');
    await agent.get('/admin').expect(200);
  });

  it('checks the redirect URI of each application at startup, naming the one without a route', async () => {
    const t = await app(staffAndAdmin(ADMIN_REDIRECT_URI));
    const errors = t.logger.lines.filter((line) => line.startsWith('error') && line.includes('would land on a 404'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('Duo application "admin"');
    expect(errors[0]).toContain('applications.admin.redirectUri');
    expect(errors[0]).toContain('/duo/admin-callback');
  });

  it('metrics carry duo.application', async () => {
    const reader = new ManualReader();
    metrics.disable();
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    try {
      const t = await app();
      const agent = await loggedIn(t);
      await throughDuo(agent, '/account');
      await throughDuo(agent, '/admin');
      // A push for the WebAuthn-only page: refused by the admin application's rule.
      const start = await agent.get('/admin/keys').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      await agent.get(pathOf(back)).set('Accept', 'text/html').expect(403);
      const { resourceMetrics } = await reader.collect();
      const all = resourceMetrics.scopeMetrics.filter((scope) => scope.scope.name === 'nestjs-duo').flatMap((scope) => scope.metrics);
      const points = (name: string): Array<Record<string, unknown>> =>
        all.find((metric) => metric.descriptor.name === name)?.dataPoints.map((point) => ({ ...point.attributes, value: point.value })) ?? [];
      expect(points('duo.second_factor.passed')).toEqual(expect.arrayContaining([{ 'duo.application': 'staff', value: 1 }, { 'duo.application': 'admin', value: 1 }]));
      expect(points('duo.prompts.started').map((point) => String(point['duo.application'])).sort()).toEqual(['admin', 'staff']);
      expect(points('duo.second_factor.failed')).toEqual([expect.objectContaining({ 'duo.application': 'admin', 'error.type': 'factor_rule_not_met' })]);
      const calls = points('duo.client.request.duration').map((point) => `${String(point['duo.endpoint'])}:${String(point['duo.application'])}`);
      expect(calls).toEqual(expect.arrayContaining(['health_check:staff', 'token:staff', 'health_check:admin', 'token:admin']));
    } finally {
      metrics.disable();
    }
  });

  it("a handler's own @RequireSecondFactor() keeps its controller's application and factor rule (key by key, not replaced)", async () => {
    const t = await app(staffAndAdmin(), [...CONTROLLERS, VaultController]);
    const agent = await loggedIn(t);
    await throughDuo(agent, '/account'); // the staff application, with Duo Push
    for (const path of ['/vault', '/vault/delete', '/vault/interactive']) {
      // Not 200: the admin application (its client id), with prompt=login for the rule.
      const start = await agent.get(path).set('Accept', 'text/html').expect(303);
      const url = new URL(start.headers.location!);
      expect(url.searchParams.get('client_id'), path).toBe(admin.clientId);
      const request = JSON.parse(Buffer.from(url.searchParams.get('request')!.split('.')[1]!, 'base64url').toString()) as { prompt?: string; max_age?: number };
      expect(request.prompt, path).toBe('login');
      if (path === '/vault/delete') expect(request.max_age).toBe(300);
      // Duo Push at the admin application: the controller's rule (webauthn) refuses it on every handler.
      const back = await emulator.authorize(url.href);
      await agent.get(pathOf(back)).set('Accept', 'text/html').expect(403);
    }
  });

  it("a handler's options that cannot go with its controller's stop the app at startup, naming the handler", async () => {
    @Controller('bad')
    @RequireSecondFactor({ application: 'admin', factors: ['webauthn'] })
    class BadController {
      @Get()
      @RequireSecondFactor({ requireInteraction: false })
      page(): string {
        return 'bad';
      }
    }
    await expect(app(staffAndAdmin(), [...CONTROLLERS, BadController])).rejects.toThrow(/BadController\.page \(with its controller's\)/);
  });

  it('logins refused by a factor rule count as failed callbacks for promptLimits: a user who approves pushes out of habit is not pushed again and again', async () => {
    const t = await app({ ...staffAndAdmin(), promptLimits: { failedCallbacksPerUser: { max: 2, windowSeconds: 300 } } });
    const agent = await loggedIn(t);
    for (let i = 0; i < 2; i++) {
      const start = await agent.get('/admin/keys').set('Accept', 'text/html').expect(303);
      await agent.get(pathOf(await emulator.authorize(start.headers.location!))).set('Accept', 'text/html').expect(403);
    }
    const refused = await agent.get('/admin/keys').set('Accept', 'application/json').expect(429);
    expect(refused.body.message).toMatch(/Too many Duo logins for this account failed recently/);
  });

  it('a resolver that never answers gets the session deadline: 503 application_unavailable, not a request held open', async () => {
    const t = await app({ ...staffAndAdmin(), sessionTimeoutMs: 300, resolveApplication: () => new Promise<string>(() => undefined) });
    const agent = await loggedIn(t);
    const started = Date.now();
    const res = await agent.get('/account').set('Accept', 'application/json').expect(503);
    expect(res.body.error).toBe('application_unavailable');
    expect(Date.now() - started).toBeLessThan(5000);
    expect(t.logger.lines.filter((line) => line.includes('took longer than sessionTimeoutMs'))).toHaveLength(1);
  });

  describe('resolveApplication: the host name picks the tenant', () => {
    let globex: DuoEmulatorApplication;
    beforeAll(() => {
      globex = emulator.addApplication();
    });
    const tenants = (): Partial<DuoModuleOptions> => ({
      applications: { acme: emulator.clientOptions(REDIRECT_URI), globex: globex.clientOptions(REDIRECT_URI), admin: admin.clientOptions(REDIRECT_URI) },
      defaultApplication: 'acme',
      resolveApplication: async (req: Req) => {
        const host = String(req.headers.host ?? '').split(':')[0]!;
        if (host === 'boom.example') throw new Error('the tenant directory is down');
        if (host.endsWith('.example')) return host.slice(0, -'.example'.length);
        return undefined;
      },
    });

    it("each tenant's requests use its own application; one tenant's marker does not count for another", async () => {
      const t = await app(tenants());
      const agent = await loggedIn(t);
      const acmeStart = await throughDuo(agent, '/account', 'acme.example');
      expect(new URL(acmeStart).searchParams.get('client_id')).toBe(emulator.clientId);
      await agent.get('/account').set('Host', 'acme.example').expect(200);
      const globexStart = await agent.get('/account').set('Host', 'globex.example').set('Accept', 'text/html').expect(303);
      expect(new URL(globexStart.headers.location!).searchParams.get('client_id')).toBe(globex.clientId);
      // No tenant in the host: the default application, whose marker the session has.
      await agent.get('/account').expect(200);
      // The route's own application wins over the resolver.
      const adminStart = await agent.get('/admin').set('Host', 'acme.example').set('Accept', 'text/html').expect(303);
      expect(new URL(adminStart.headers.location!).searchParams.get('client_id')).toBe(admin.clientId);
    });

    it('an unknown tenant is a 400 application_unknown (logged once), a failing resolver a 503 application_unavailable; never a 500', async () => {
      const t = await app(tenants());
      const agent = await loggedIn(t);
      for (let i = 0; i < 3; i++) {
        const unknown = await agent.get('/account').set('Host', 'initech.example').set('Accept', 'application/json').expect(400);
        expect(unknown.body.error).toBe('application_unknown');
      }
      const page = await agent.get('/account').set('Host', 'initech.example').set('Accept', 'text/html').expect(400);
      expect(page.headers['content-type']).toContain('text/html');
      expect(page.text).toContain('This site does not know this address');
      expect(t.logger.warnings().filter((line) => line.includes('"initech"'))).toHaveLength(1);
      const down = await agent.get('/account').set('Host', 'boom.example').set('Accept', 'application/json').expect(503);
      expect(down.body.error).toBe('application_unavailable');
      expect(t.logger.lines.filter((line) => line.startsWith('error') && line.includes('resolveApplication threw'))).toHaveLength(1);
      expect(t.logger.text()).not.toContain('the tenant directory is down');
      expect(t.events.filter((event) => event.type === 'prompt_started')).toHaveLength(0);
    });
  });

  it('forRootAsync builds the applications from a config store at startup (async), and checks them then', async () => {
    const { Test } = await import('@nestjs/testing');
    const { DuoModule } = await import('../../src/index.js');
    const directory = async (): Promise<Record<string, DuoApplicationOptions>> => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      return { staff: emulator.clientOptions(REDIRECT_URI), admin: admin.clientOptions(REDIRECT_URI) };
    };
    const moduleRef = await Test.createTestingModule({
      imports: [DuoModule.forRootAsync({ isGlobal: true, useFactory: async () => ({ applications: await directory(), defaultApplication: 'admin' }) })],
      controllers: [CallbackController, AdminController],
    }).compile();
    const nest = adapter === 'fastify' ? moduleRef.createNestApplication(new (await import('@nestjs/platform-fastify')).FastifyAdapter()) : moduleRef.createNestApplication();
    await nest.init();
    try {
      const duo = nest.get(DuoService);
      expect(duo.applicationName).toBe('admin');
      expect(duo.applicationNames).toEqual(['admin', 'staff']);
      expect((await duo.forApplication('staff').status()).reachable).toBe(true);
    } finally {
      await nest.close();
    }
    const broken = await Test.createTestingModule({
      imports: [DuoModule.forRootAsync({ isGlobal: true, useFactory: async () => ({ applications: { ...(await directory()), ops: { ...admin.clientOptions(REDIRECT_URI), redirectUri: 'ftp://x' } }, defaultApplication: 'staff' }) })],
      controllers: [CallbackController],
    })
      .compile()
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(broken).toBeInstanceOf(DuoConfigError);
    expect((broken as Error).message).toMatch(/^applications\.ops: .*redirectUri/);
  });

  describe('startup errors name the option', () => {
    it('a route naming an unregistered application stops the app', async () => {
      @Controller('ops')
      class OpsController {
        @Get()
        @RequireSecondFactor({ application: 'ops' })
        ops(): string {
          return 'ops';
        }
      }
      await expect(app(staffAndAdmin(), [...CONTROLLERS, OpsController])).rejects.toThrow(
        /@RequireSecondFactor\(\{ application: "ops" \}\) on OpsController\.ops names no Duo application: the registered ones are staff, admin/,
      );
    });

    it('so does a provider handler naming one (a GraphQL resolver is a provider, not a controller)', async () => {
      @Injectable()
      class ReportsResolver {
        @RequireSecondFactor({ application: 'reports' })
        reports(): string {
          return 'reports';
        }
      }
      @Module({ providers: [ReportsResolver] })
      class ReportsModule {}
      const events: DuoEvent[] = [];
      const failure = await buildDuoTestApp({ duo: { onEvent: (event) => events.push(event), ...staffAndAdmin() } as DuoModuleOptions, controllers: CONTROLLERS, adapter, imports: [ReportsModule] }).then(
        (built) => built.app.close(),
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(DuoConfigError);
      expect((failure as Error).message).toMatch(/application: "reports" \}\) on ReportsResolver\.reports names no Duo application/);
    });

    it('with top-level credentials, a route naming an application stops the app', async () => {
      await expect(app({ ...emulator.clientOptions(REDIRECT_URI) }, [...CONTROLLERS])).rejects.toThrow(/AdminController\.dashboard names no Duo application: the module has no "applications"/);
    });

    it('refuses options that cannot work', async () => {
      const two = { staff: emulator.clientOptions(REDIRECT_URI), admin: admin.clientOptions(REDIRECT_URI) };
      const cases: Array<[Partial<DuoModuleOptions>, RegExp]> = [
        [{ applications: two }, /"defaultApplication" is required with several applications/],
        [{ applications: two, defaultApplication: 'ops' }, /"defaultApplication" is "ops", which is not in "applications" \(staff, admin\)/],
        [{ applications: two, defaultApplication: 'staff', clientId: 'DIXXXXXXXXXXXXXXXXXX' }, /"clientId" is set at the top level and "applications" too/],
        [{ applications: { 'st aff': emulator.clientOptions(REDIRECT_URI) } }, /names are 1 to 64 letters/],
        [{ applications: Object.defineProperty({}, '__proto__', { value: emulator.clientOptions(REDIRECT_URI), enumerable: true }) }, /names are 1 to 64 letters/],
        [{ applications: {} }, /"applications" names no application/],
        [{ applications: { staff: { ...emulator.clientOptions(REDIRECT_URI), clientSecret: '' } } }, /applications\.staff: .*clientSecret/],
        [{ ...emulator.clientOptions(REDIRECT_URI), defaultApplication: 'staff' }, /"defaultApplication" needs "applications"/],
        [{ applications: two, defaultApplication: 'staff', resolveApplication: 'staff' as never }, /"resolveApplication" must be a function/],
      ];
      for (const [options, message] of cases) {
        const failure = await app(options, [PrimaryLoginController, CallbackController]).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(failure, String(message)).toBeInstanceOf(DuoConfigError);
        expect((failure as Error).message).toMatch(message);
      }
    });
  });

  it('one application under `applications` needs no defaultApplication; its secret stays hidden on the options', async () => {
    const own = emulator.clientOptions(REDIRECT_URI);
    const options = { applications: { staff: own } };
    const t = await app(options, [PrimaryLoginController, SessionProbeController, AccountController, CallbackController]);
    const agent = await loggedIn(t);
    await throughDuo(agent, '/account');
    expect(JSON.stringify(options)).not.toContain(emulator.clientSecret);
    expect(t.events.every((event) => event.application === 'staff')).toBe(true);
    // The same options object, its secret now hidden, starts a second instance (the hidden secret is read, not spread).
    const again = await app(options, [PrimaryLoginController, SessionProbeController, AccountController, CallbackController]);
    await throughDuo(await loggedIn(again), '/account');
  });
});
