/**
 * `nestjs-duo/terminus`: DuoHealthIndicator in a Nest app with TerminusModule,
 * on Express and Fastify, against the emulator: up, down, degraded (bypasses
 * still running, a skewed clock), and cached so that probes do not hammer Duo.
 */
import 'reflect-metadata';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import supertest from 'supertest';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoService, type DuoModuleOptions } from '../../src/index.js';
import { DuoHealthIndicator } from '../../src/terminus/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { CapturingLogger, MINIMAL_CONTROLLERS, PLATFORMS, REDIRECT_URI, buildDuoTestApp, type Platform } from '../support/app.js';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly duo: DuoHealthIndicator,
  ) {}

  @Get('duo')
  @HealthCheck()
  check() {
    return this.health.check([() => this.duo.isHealthy('duo')]);
  }
}

@Module({ imports: [TerminusModule], controllers: [HealthController], providers: [DuoHealthIndicator] })
class HealthModule {}

describe.each(PLATFORMS)('DuoHealthIndicator with @nestjs/terminus on %s', (adapter: Platform) => {
  let emulator: DuoEmulator;
  let app: INestApplication | undefined;
  beforeAll(async () => {
    emulator = await DuoEmulator.start();
  });
  afterAll(async () => {
    await emulator.close();
  });
  beforeEach(() => emulator.reset());
  afterEach(async () => {
    emulator.setFailure('none');
    await app?.close();
    app = undefined;
  });

  async function start(duo: Partial<DuoModuleOptions> = {}) {
    const built = await buildDuoTestApp({
      duo: { ...emulator.clientOptions(REDIRECT_URI), ...duo },
      adapter,
      controllers: MINIMAL_CONTROLLERS,
      imports: [HealthModule],
      logger: new CapturingLogger(),
    });
    app = built.app;
    emulator.resetStats();
    return { agent: supertest.agent(app.getHttpServer()), duo: app.get(DuoService) };
  }

  it('is up while Duo answers: reachable, the clock offset, the fail mode, no bypass', async () => {
    const { agent } = await start();
    const res = await agent.get('/health/duo').expect(200);
    expect(res.body.status).toBe('ok');
    expect(res.body.details.duo).toEqual({
      status: 'up',
      reachable: true,
      checkedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      clockOffsetSeconds: expect.any(Number),
      clockSkewed: false,
      failMode: 'closed',
      bypassing: false,
    });
    expect(Math.abs(res.body.details.duo.clockOffsetSeconds)).toBeLessThanOrEqual(2);
  });

  it('is cached: twenty probes make one call to Duo (default cache, and with healthCheckCacheSeconds 0 the 5 s floor)', async () => {
    for (const healthCheckCacheSeconds of [30, 0]) {
      const { agent } = await start({ healthCheckCacheSeconds });
      for (let i = 0; i < 20; i++) await agent.get('/health/duo').expect(200);
      expect(emulator.stats.healthChecks).toBe(1);
      await app!.close();
      app = undefined;
    }
  });

  it('is down (503) when Duo fails its health check, with the code and nothing of Duo\'s text', async () => {
    const { agent } = await start({ healthCheckCacheSeconds: 0 });
    emulator.setFailure('http_500');
    const res = await agent.get('/health/duo').expect(503);
    expect(res.body.status).toBe('error');
    expect(res.body.error.duo).toMatchObject({ status: 'down', reachable: false, error: 'duo_unavailable', failMode: 'closed', bypassing: false });
    expect(JSON.stringify(res.body)).not.toMatch(/HTTP 500|emulated|status\.duo\.com/);
    expect(emulator.stats.healthChecks).toBe(1);
  });

  it('is degraded (200) when Duo is back but fail-open bypasses still run, and down while Duo is out', async () => {
    const { agent, duo } = await start({ failMode: 'open', healthCheckCacheSeconds: 0 });
    emulator.setFailure('http_500');
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    await agent.get('/account').expect(200, 'account of alice'); // let through without Duo
    const out = await agent.get('/health/duo').expect(503);
    expect(out.body.error.duo).toMatchObject({ status: 'down', reachable: false, error: 'duo_unavailable', failMode: 'open', bypassing: true });
    emulator.setFailure('none');
    await duo.healthCheck(); // a fresh check: Duo is back
    const back = await agent.get('/health/duo').expect(200);
    expect(back.body.status).toBe('degraded');
    expect(back.body.details.duo).toMatchObject({ status: 'degraded', reachable: true, failMode: 'open', bypassing: true });
  });

  it('is degraded (200) when this server\'s clock is off Duo\'s beyond clockSkewWarningSeconds', async () => {
    emulator.setClockOffset(120);
    const { agent } = await start();
    const res = await agent.get('/health/duo').expect(200);
    expect(res.body.status).toBe('degraded');
    expect(res.body.details.duo).toMatchObject({ status: 'degraded', reachable: true, clockSkewed: true });
    expect(res.body.details.duo.clockOffsetSeconds).toBeGreaterThanOrEqual(118);
  });
});

describe.each(PLATFORMS)('DuoHealthIndicator with several Duo applications on %s', (adapter: Platform) => {
  it('checks every application: down when the admin application is down, with each one under applications; { application } reports one', async () => {
    const staff = await DuoEmulator.start();
    const admin = await DuoEmulator.start();
    const built = await buildDuoTestApp({
      duo: { applications: { staff: staff.clientOptions(REDIRECT_URI), admin: admin.clientOptions(REDIRECT_URI) }, defaultApplication: 'staff' } as DuoModuleOptions,
      adapter,
      controllers: MINIMAL_CONTROLLERS,
      imports: [HealthModule],
      logger: new CapturingLogger(),
    });
    try {
      const http = supertest(built.app.getHttpServer());
      const up = await http.get('/health/duo').expect(200);
      expect(up.body.info.duo.status).toBe('up');
      expect(Object.keys(up.body.info.duo.applications).sort()).toEqual(['admin', 'staff']);
      admin.setFailure('http_500');
      // The status is cached for at most 5 s after a healthy answer: ask the admin application afresh.
      await built.app.get(DuoService).forApplication('admin').healthCheck().catch(() => undefined);
      const indicator = built.app.get(DuoHealthIndicator);
      const all = await indicator.isHealthy('duo');
      expect(all.duo.status).toBe('down');
      expect((all.duo as unknown as { applications: Record<string, { reachable: boolean }> }).applications.admin!.reachable).toBe(false);
      expect((all.duo as unknown as { applications: Record<string, { reachable: boolean }> }).applications.staff!.reachable).toBe(true);
      const staffOnly = await indicator.isHealthy('duo', { application: 'staff' });
      expect(staffOnly.duo.status).toBe('up');
    } finally {
      await built.app.close();
      await staff.close();
      await admin.close();
    }
  });
});
