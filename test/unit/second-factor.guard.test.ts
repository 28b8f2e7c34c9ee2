import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { Reflector } from '@nestjs/core';
import { ForbiddenException, Logger, UseGuards, type ExecutionContext } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Test, type TestingModule } from '@nestjs/testing';
import { DuoHttpException, DuoModule, DuoService, RequireSecondFactor, SecondFactorGuard, SkipSecondFactor } from '../../src/index.js';
import { DuoEmulator } from '../../src/testing/index.js';

class Handlers {
  @RequireSecondFactor()
  decorated(): void {}
  @UseGuards(SecondFactorGuard)
  bound(): void {}
  plain(): void {}
  @SkipSecondFactor()
  skipped(): void {}
  @RequireSecondFactor({ maxAge: 60 })
  stepUp(): void {}
}

/** A marker names its application by 12 characters of the SHA-256 of clientId@host. */
const markerTag = (application: string): string => createHash('sha256').update(application).digest('base64url').slice(0, 12);

function context(type: string, handler: () => void, args: unknown[] = []): ExecutionContext {
  return {
    getType: () => type,
    getHandler: () => handler,
    getClass: () => Handlers,
    getArgByIndex: (index: number) => args[index],
  } as unknown as ExecutionContext;
}

describe('SecondFactorGuard outside HTTP', () => {
  // The guard must not touch the service for these: a service that throws on any use proves it.
  const service = new Proxy({}, { get: () => { throw new Error('DuoService must not be used'); } }) as DuoService;
  const guard = new SecondFactorGuard(new Reflector(), service);

  it('refuses an RPC handler explicitly decorated with @RequireSecondFactor() (it can never pass Duo there)', async () => {
    expect(await guard.canActivate(context('rpc', Handlers.prototype.decorated))).toBe(false);
  });

  it('refuses RPC and websocket handlers it is bound to with @UseGuards(SecondFactorGuard) (it cannot check them)', async () => {
    expect(await guard.canActivate(context('rpc', Handlers.prototype.bound))).toBe(false);
    expect(await guard.canActivate(context('ws', Handlers.prototype.bound))).toBe(false);
  });

  it('refuses them too when the controller binds it', async () => {
    @UseGuards(SecondFactorGuard)
    class Gateway {
      handle(): void {}
    }
    const ctx = { ...context('ws', Gateway.prototype.handle), getClass: () => Gateway } as unknown as ExecutionContext;
    expect(await guard.canActivate(ctx)).toBe(false);
  });

  it('leaves undecorated RPC and websocket handlers alone when bound globally', async () => {
    expect(await guard.canActivate(context('rpc', Handlers.prototype.plain))).toBe(true);
    expect(await guard.canActivate(context('ws', Handlers.prototype.plain))).toBe(true);
  });

  it('refuses an unknown context type unless the handler is skipped', async () => {
    expect(await guard.canActivate(context('custom', Handlers.prototype.plain))).toBe(false);
    expect(await guard.canActivate(context('custom', Handlers.prototype.skipped))).toBe(true);
  });

  it('refuses a GraphQL resolver without a request in its context', async () => {
    expect(await guard.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, {}]))).toBe(false);
  });
});

describe('SecondFactorGuard on GraphQL (same session as HTTP)', () => {
  let emulator: DuoEmulator;
  let moduleRef: TestingModule;
  let duo: DuoService;
  let guard: SecondFactorGuard;

  beforeAll(async () => {
    emulator = await DuoEmulator.start();
    moduleRef = await Test.createTestingModule({ imports: [DuoModule.forRoot(emulator.clientOptions('http://localhost/duo/callback'))] }).compile();
    await moduleRef.init();
    duo = moduleRef.get(DuoService);
    guard = moduleRef.get(SecondFactorGuard);
  });
  afterAll(async () => {
    await moduleRef.close();
    await emulator.close();
  });

  const stackTraceLimit = Error.stackTraceLimit;
  const gqlRequest = (duoData?: unknown) => ({ headers: {}, user: { username: 'alice' }, session: duoData === undefined ? {} : { duo: duoData } });

  it('an undecorated resolver under a global guard refuses an unverified session like an API client (401 with location)', async () => {
    const error = await Promise.resolve(guard.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, { req: gqlRequest() }]))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DuoHttpException);
    const body = (error as DuoHttpException).getResponse() as { error: string; location?: string };
    expect(body.error).toBe('second_factor_required');
    expect(body.location).toMatch(/\/oauth\/v1\/authorize\?/);
    // An answer, not a failure: built without a stack trace, and the process's limit is left as it was.
    expect((error as Error).stack).not.toMatch(/\n\s+at /);
    expect(Error.stackTraceLimit).toBe(stackTraceLimit);
  });

  it('lets a verified session through', async () => {
    const app = markerTag(duo.application);
    const req = gqlRequest({ verified: { username: 'alice', app, at: Date.now() } });
    // Decided without a promise: the verified path is synchronous.
    expect(guard.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, { req }]))).toBe(true);
  });

  it("a subclass's check() is still asked for a verified session (the synchronous path steps aside)", async () => {
    const asked: string[] = [];
    class AuditedGuard extends SecondFactorGuard {
      protected override async check(request: Parameters<SecondFactorGuard['check']>[0], maxAge?: number): Promise<boolean> {
        asked.push('check');
        return (await super.check(request, maxAge)) && request.headers['x-blocked'] === undefined;
      }
    }
    // Made by Nest as a user's guard is, with the module's providers.
    const own = await Test.createTestingModule({ imports: [DuoModule.forRoot(emulator.clientOptions('http://localhost/duo/callback'))], providers: [AuditedGuard] }).compile();
    const audited = own.get(AuditedGuard);
    const app = markerTag(duo.application);
    const verified = { verified: { username: 'alice', app, at: Date.now() } };
    const blocked = { ...gqlRequest(verified), headers: { 'x-blocked': '1' } };
    expect(await audited.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, { req: gqlRequest(verified) }]))).toBe(true);
    expect(await audited.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, { req: blocked }]))).toBe(false);
    expect(asked).toEqual(['check', 'check']);
    await own.close();
  });

  it("a subclass's own HttpException from check() is its answer, not a 503 duo_unavailable", async () => {
    class RefusingGuard extends SecondFactorGuard {
      protected override async check(): Promise<boolean> {
        throw new ForbiddenException('Not from this network.');
      }
    }
    const own = await Test.createTestingModule({ imports: [DuoModule.forRoot(emulator.clientOptions('http://localhost/duo/callback'))], providers: [RefusingGuard] }).compile();
    const refusing = own.get(RefusingGuard);
    const error = await Promise.resolve(refusing.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, { req: gqlRequest() }]))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ForbiddenException);
    expect((error as ForbiddenException).getStatus()).toBe(403);
    await own.close();
  });

  it("a marker dated in this server's future (another instance's clock ahead) is not fresh for a step-up route", async () => {
    const app = markerTag(duo.application);
    const at = (offsetMs: number) => gqlRequest({ verified: { username: 'alice', app, at: Date.now() + offsetMs } });
    const stepUp = (req: unknown) => Promise.resolve(guard.canActivate(context('graphql', Handlers.prototype.stepUp, [{}, {}, { req }])));
    // 45 s ahead (inside Duo's own 60 s leeway, so the login passed there) and a year ahead: asked again.
    for (const ahead of [45_000, 365 * 86_400_000]) {
      const error = await stepUp(at(ahead)).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DuoHttpException);
      expect((error as DuoHttpException).code).toBe('step_up_required');
    }
    // A little ahead (clocks a few seconds apart), or in the past within maxAge: fresh.
    expect(await stepUp(at(3_000))).toBe(true);
    expect(await stepUp(at(-30_000))).toBe(true);
    // Routes without maxAge do not look at the time.
    expect(await guard.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, { req: at(365 * 86_400_000) }]))).toBe(true);
  });

  it('says once a minute, with the fix, that a future-dated login asked for Duo again', async () => {
    // A module of its own, so that no earlier test has used its once-a-minute line.
    const own = await Test.createTestingModule({ imports: [DuoModule.forRoot(emulator.clientOptions('http://localhost/duo/callback'))] }).compile();
    const ownGuard = own.get(SecondFactorGuard);
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      const req = () => gqlRequest({ verified: { username: 'alice', app: markerTag(duo.application), at: Date.now() + 45_000 } });
      for (let i = 0; i < 3; i++) await Promise.resolve(ownGuard.canActivate(context('graphql', Handlers.prototype.stepUp, [{}, {}, { req: req() }]))).catch(() => undefined);
      const lines = warn.mock.calls.map(([message]) => String(message)).filter((message) => message.includes("in this server's future"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/dated 45 s in this server's future.*synchronise the servers' clocks \(NTP\)/);
      expect(lines[0]).not.toContain(emulator.clientSecret);
    } finally {
      warn.mockRestore();
      await own.close();
    }
  });

  it('a marker of another application, or too old for a step-up route, is not passed synchronously', async () => {
    const other = { verified: { username: 'alice', app: 'AAAAAAAAAAAA', at: Date.now() } };
    const result = guard.canActivate(context('graphql', Handlers.prototype.plain, [{}, {}, { req: gqlRequest(other) }]));
    expect(result).toBeInstanceOf(Promise);
    await expect(result).rejects.toBeInstanceOf(DuoHttpException);
  });
});

describe('@RequireSecondFactor({ maxAge })', () => {
  it('refuses maxAge 0, which would expire before the page it returns to (a loop)', () => {
    expect(() => RequireSecondFactor({ maxAge: 0 })).toThrow(/1 or more/);
    expect(() => RequireSecondFactor({ maxAge: -5 })).toThrow(/1 or more/);
    expect(() => RequireSecondFactor({ maxAge: 1.5 })).toThrow(/whole number/);
    expect(() => RequireSecondFactor({ maxAge: 1 })).not.toThrow();
  });
});
