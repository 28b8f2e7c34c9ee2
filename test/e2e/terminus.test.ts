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
