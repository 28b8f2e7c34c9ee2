import 'reflect-metadata';
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DUO_MODULE_OPTIONS, DuoModule, DuoService, type DuoModuleOptions } from '../../src/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { CapturingLogger, createTestApp, pathOf, REDIRECT_URI } from './fixtures.js';
import { DuoContext } from '../../src/duo.context.js';
import { DuoFlow } from '../../src/duo.flow.js';

let emulator: DuoEmulator;

beforeAll(async () => {
  emulator = await DuoEmulator.start();
});
afterAll(async () => {
  await emulator.close();
});

@Controller('probe')
class ProbeController {
  constructor(private readonly duo: DuoService) {}
  @Get('health')
  async health(): Promise<unknown> {
    return this.duo.healthCheck();
  }
}

async function bootstrap(imports: unknown[], controllers: unknown[] = []) {
  @Module({ imports: imports as never[], controllers: controllers as never[] })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = moduleRef.createNestApplication({ logger: new CapturingLogger() });
  await app.init();
  return app;
}

describe('DuoModule configuration', () => {
  it('forRoot provides an injectable DuoService that speaks to Duo', async () => {
    const app = await bootstrap([DuoModule.forRoot({ ...emulator.clientOptions(REDIRECT_URI) })]);
    const duo = app.get(DuoService);
    const health = await duo.healthCheck();
    expect(Math.abs(health.clockOffsetSeconds)).toBeLessThan(5);
    const { url, state, nonce } = await duo.startAuthorization('alice');
    expect(url.startsWith(`${emulator.baseUrl}/oauth/v1/authorize?`)).toBe(true);
    const back = new URL(await emulator.authorize(url));
    expect(back.searchParams.get('state')).toBe(state);
    const claims = await duo.exchangeAuthorizationCodeFor2FAResult(back.searchParams.get('duo_code')!, 'alice', nonce);
    expect(claims.preferred_username).toBe('alice');
    expect(claims.auth_result.status).toBe('allow');
    expect(claims.nonce).toBe(nonce);
    await app.close();
  });

  it('forRootAsync with ConfigService reads DUO_* variables, and isGlobal reaches other modules', async () => {
    const env = {
      DUO_CLIENT_ID: emulator.clientId,
      DUO_CLIENT_SECRET: emulator.clientSecret,
      DUO_API_HOST: 'api-12345678.duosecurity.com',
      DUO_REDIRECT_URI: REDIRECT_URI,
      DUO_API_BASE_URL: emulator.baseUrl,
    };
    @Module({ controllers: [ProbeController] })
    class FeatureModule {}
    const app = await bootstrap([
      ConfigModule.forRoot({ ignoreEnvFile: true, load: [() => env], isGlobal: true }),
      DuoModule.forRootAsync({
        isGlobal: true,
        inject: [ConfigService],
        useFactory: (config: ConfigService): DuoModuleOptions => ({
          clientId: config.getOrThrow('DUO_CLIENT_ID'),
          clientSecret: config.getOrThrow('DUO_CLIENT_SECRET'),
          apiHost: config.getOrThrow('DUO_API_HOST'),
          redirectUri: config.getOrThrow('DUO_REDIRECT_URI'),
          apiBaseUrl: config.get('DUO_API_BASE_URL'),
        }),
      }),
      FeatureModule,
    ]);
    await app.listen(0, '127.0.0.1');
    const res = await fetch(`${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/probe/health`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { timestamp: unknown }).timestamp).toEqual(expect.any(Number));
    await app.close();
  });

  it('forRootAsync with useClass', async () => {
    @Injectable()
    class DuoConfig {
      createDuoOptions(): DuoModuleOptions {
        return emulator.clientOptions(REDIRECT_URI);
      }
    }
    const app = await bootstrap([DuoModule.forRootAsync({ useClass: DuoConfig })]);
    expect(app.get(DuoContext).client.config.clientId).toBe(emulator.clientId);
    await app.close();
  });

  it('forRootAsync with useExisting, and events$ delivers the audit events', async () => {
    @Injectable()
    class DuoConfig {
      createDuoOptions(): DuoModuleOptions {
        return emulator.clientOptions(REDIRECT_URI);
      }
    }
    @Module({ providers: [DuoConfig], exports: [DuoConfig] })
    class ConfigHolder {}
    const app = await bootstrap([DuoModule.forRootAsync({ imports: [ConfigHolder], useExisting: DuoConfig })]);
    const duo = app.get(DuoService);
    const seen: string[] = [];
    const subscription = duo.events$.subscribe((event) => seen.push(`${event.type}:${event.username ?? ''}`));
    const request = { headers: {}, user: { username: 'alice' }, session: {} };
    const start = await app.get(DuoFlow).start(request, 'alice', '/account');
    expect(start.kind).toBe('redirect');
    expect(seen).toEqual(['prompt_started:alice']);
    subscription.unsubscribe();
    await app.close();
  });

  it('without isGlobal, a module that does not import DuoModule cannot inject DuoService', async () => {
    @Module({ controllers: [ProbeController] })
    class FeatureModule {}
    await expect(bootstrap([DuoModule.forRoot(emulator.clientOptions(REDIRECT_URI)), FeatureModule])).rejects.toThrow(/DuoService/);
  });

  it.each([
    ['clientId', { clientId: 'short' }],
    ['clientSecret', { clientSecret: 'x'.repeat(39) }],
    ['redirectUri', { redirectUri: 'http://app.example.com/duo/callback' }],
    ['apiBaseUrl', { apiBaseUrl: 'http://10.0.0.5:4000' }],
    ['failMode', { failMode: 'sometimes' }],
    ['transactionTtlSeconds', { transactionTtlSeconds: -1 }],
    ['loginPath', { loginPath: 'https://evil.example/login' }],
  ])('invalid option %s stops the app at startup, naming the option', async (option, bad) => {
    const attempt = bootstrap([DuoModule.forRoot({ ...emulator.clientOptions(REDIRECT_URI), ...(bad as object) } as DuoModuleOptions)]);
    const error = await attempt.then(() => undefined, (e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toContain(`"${option}"`);
    expect(error!.message).not.toContain(emulator.clientSecret);
  });

  it('the options provider and the service never show the client secret', async () => {
    const app = await bootstrap([DuoModule.forRoot(emulator.clientOptions(REDIRECT_URI))]);
    const duo = app.get(DuoService);
    expect(inspect(duo, { depth: 10 })).not.toContain(emulator.clientSecret);
    const context = app.get(DuoContext);
    expect(inspect(context, { depth: 10 })).not.toContain(emulator.clientSecret);
    expect(JSON.stringify(context.client)).not.toContain(emulator.clientSecret);
    expect(inspect(context.client.config, { depth: 10 })).not.toContain(emulator.clientSecret);
    const options = app.get(DUO_MODULE_OPTIONS);
    expect(options.clientId).toBe(emulator.clientId);
    expect(options.clientSecret).toBe(emulator.clientSecret); // still readable
    expect(inspect(options)).not.toContain(emulator.clientSecret);
    expect(inspect(options, { showHidden: true, depth: 5 })).not.toContain(emulator.clientSecret);
    expect(JSON.stringify(options)).not.toContain(emulator.clientSecret);
    await app.close();
  });

  it('leaves the options object usable: a copy spread from it after a module used it still starts a module, and stays hidden there', async () => {
    // forRootAsync (and overrideProvider(DUO_MODULE_OPTIONS).useValue) hand the module the app's own object.
    const options = emulator.clientOptions(REDIRECT_URI);
    const first = await bootstrap([DuoModule.forRootAsync({ useFactory: () => options })]);
    expect(first.get(DUO_MODULE_OPTIONS)).toBe(options);
    await first.close();
    expect(JSON.stringify(options)).not.toContain(emulator.clientSecret);
    expect(inspect(options, { showHidden: true, getters: true })).not.toContain(emulator.clientSecret);
    const copy = { ...options, loginPath: '/login' };
    expect(copy.clientSecret).toBe(emulator.clientSecret);
    const second = await bootstrap([DuoModule.forRoot(copy)]);
    expect(JSON.stringify(second.get(DUO_MODULE_OPTIONS))).not.toContain(emulator.clientSecret);
    expect(Math.abs((await second.get(DuoService).healthCheck()).clockOffsetSeconds)).toBeLessThan(5);
    await second.close();
  });
});

describe('the guard around the session', () => {
  it('refuses with 503 when there is no session, never lets the request through', async () => {
    const t = await createTestApp(emulator, { noSession: true });
    const res = await fetch(`${t.baseUrl}/account`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: unknown }).error).toBe('session_unavailable');
    await t.close();
  });

  it('warns in words at the first protected request when the session cookie is SameSite=Strict', async () => {
    const t = await createTestApp(emulator, { sameSite: 'strict' });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    await agent.get('/account').set('Accept', 'text/html').expect(303);
    expect(t.logger.warnings().join('\n')).toMatch(/SameSite=Strict.*"lax"/);
    await t.close();
  });

  it('sends browsers with no primary user to loginPath with a safe returnTo', async () => {
    const t = await createTestApp(emulator, { duo: { loginPath: '/login' } });
    const res = await t.agent().get('/account?x=1').set('Accept', 'text/html').expect(303);
    expect(res.headers.location).toBe(`/login?returnTo=${encodeURIComponent('/account?x=1')}`);
    await t.agent().get('/account').set('Accept', 'application/json').expect(401);
    await t.close();
  });
});

describe('global mode (APP_GUARD)', () => {
  it('protects every route but those marked @SkipSecondFactor()', async () => {
    const t = await createTestApp(emulator, { globalGuard: true });
    const agent = t.agent();
    await agent.get('/global/open').expect(200, 'open');
    const anonymous = await agent.get('/global/closed').set('Accept', 'application/json').expect(401);
    expect(anonymous.body.error).toBe('primary_auth_required');
    // The module's filter renders the guard's answer for browsers too (HTML page, 303 to Duo).
    const page = await agent.get('/global/closed').set('Accept', 'text/html').expect(401);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.text).toContain('Start again');
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/global/closed?from=global').set('Accept', 'text/html').expect(303);
    const back = await emulator.authorize(start.headers.location!);
    // The callback route is not itself held by the global guard.
    const done = await agent.get(pathOf(back)).set('Accept', 'text/html').expect(303);
    expect(done.headers.location).toBe('/global/closed?from=global');
    await agent.get('/global/closed').expect(200, 'closed');
    await t.close();
  });
});

describe('fail mode', () => {
  it('open: lets the user through when Duo is down, marked bypassed (not verified), warns, and still refuses step-up', async () => {
    // Duo answered the health check at bootstrap (fail-open needs one pass since start); no cache, so its outage shows at once.
    const t = await createTestApp(emulator, { duo: { failMode: 'open', healthCheckCacheSeconds: 0 } });
    emulator.setFailure('http_500');
    try {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      await agent.get('/account').expect(200, 'account of alice');
      const who = await agent.get('/whoami').expect(200);
      expect(who.body.duo.verified).toBeUndefined();
      expect(who.body.duo.bypass).toMatchObject({ username: 'alice', reason: 'duo_unavailable' });
      expect(t.logger.warnings().join('\n')).toMatch(/alice.*WITHOUT a second factor.*duo_unavailable/);
      expect(t.events).toContainEqual(expect.objectContaining({ type: 'second_factor_bypassed', username: 'alice', reason: 'duo_unavailable' }));
      const stepUp = await agent.get('/sensitive').set('Accept', 'application/json').expect(503);
      expect(stepUp.body.error).toBe('duo_unavailable');
    } finally {
      emulator.setFailure('none');
      await t.close();
    }
  });

  it('open: does not fail open when Duo rejects our credentials (a configuration error)', async () => {
    const t = await createTestApp(emulator, { duo: { failMode: 'open', clientSecret: 'Z'.repeat(40) } });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const res = await agent.get('/account').set('Accept', 'application/json').expect(502);
    expect(res.body.error).toBe('duo_invalid_client');
    await t.close();
  });

  it('open: a full cap of our own calls to Duo never lets anyone through', async () => {
    // No health cache: every start asks Duo, while the cap is full.
    const t = await createTestApp(emulator, { duo: { failMode: 'open', maxConcurrentRequests: 1, healthCheckCacheSeconds: 0 } });
    try {
      const a = t.agent();
      await a.post('/login').send({ username: 'alice' }).expect(201);
      const start = await a.get('/account').set('Accept', 'text/html').expect(303);
      const back = await emulator.authorize(start.headers.location!);
      emulator.setFailure('slow', { endpoints: ['token'], slowMs: 800 });
      const held = a.get(pathOf(back)).set('Accept', 'application/json').then((res) => res.status); // fills the cap
      await new Promise((resolve) => setTimeout(resolve, 150));
      const b = t.agent();
      await b.post('/login').send({ username: 'bob' }).expect(201);
      const res = await b.get('/account').set('Accept', 'text/html');
      expect(res.status).toBe(303); // sent to Duo, not let through
      expect(t.events.some((e) => e.type === 'second_factor_bypassed')).toBe(false);
      const c = t.agent();
      await c.post('/login').send({ username: 'carol' }).expect(201);
      const startC = await c.get('/account').set('Accept', 'text/html').expect(303);
      const backC = await emulator.authorize(startC.headers.location!);
      const overloaded = await c.get(pathOf(backC)).set('Accept', 'application/json').expect(503);
      expect(overloaded.body.error).toBe('duo_overloaded');
      await c.get('/account').set('Accept', 'application/json').expect(401);
      expect(await held).toBe(303);
    } finally {
      emulator.setFailure('none');
      await t.close();
    }
  });

  it('open: a bad callback never fails open', async () => {
    const t = await createTestApp(emulator, { duo: { failMode: 'open' } });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    const back = await emulator.authorize(start.headers.location!);
    emulator.setFailure('http_500', { endpoints: ['token'] });
    try {
      const url = new URL(back);
      await agent.get(`${url.pathname}${url.search}`).set('Accept', 'application/json').expect(503);
      await agent.get('/account').set('Accept', 'application/json').expect((res) => expect([401, 503]).toContain(res.status));
    } finally {
      emulator.setFailure('none');
      await t.close();
    }
  });

  it('closed: a silent Duo gives 504 within the deadline', async () => {
    const t = await createTestApp(emulator, { duo: { timeoutMs: 300 } });
    emulator.setFailure('no_answer');
    try {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const started = Date.now();
      const res = await agent.get('/account').set('Accept', 'application/json').expect(504);
      expect(res.body.error).toBe('duo_timeout');
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      emulator.setFailure('none');
      await t.close();
    }
  });
});
