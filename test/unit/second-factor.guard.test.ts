import 'reflect-metadata';
import { Reflector } from '@nestjs/core';
import type { ExecutionContext } from '@nestjs/common';
import { describe, expect, it } from 'vitest';
import { RequireSecondFactor, SecondFactorGuard, type DuoService } from '../../src/index.js';

class Handlers {
  @RequireSecondFactor()
  decorated(): void {}
  plain(): void {}
}

function rpcContext(handler: () => void): ExecutionContext {
  return {
    getType: () => 'rpc',
    getHandler: () => handler,
    getClass: () => Handlers,
  } as unknown as ExecutionContext;
}

describe('SecondFactorGuard outside HTTP', () => {
  // The guard must not touch the service for these: a service that throws on any use proves it.
  const service = new Proxy({}, { get: () => { throw new Error('DuoService must not be used'); } }) as DuoService;
  const guard = new SecondFactorGuard(new Reflector(), service);

  it('refuses an RPC handler explicitly decorated with @RequireSecondFactor() (it can never pass Duo there)', async () => {
    await expect(guard.canActivate(rpcContext(Handlers.prototype.decorated))).resolves.toBe(false);
  });

  it('leaves undecorated RPC handlers alone when bound globally', async () => {
    await expect(guard.canActivate(rpcContext(Handlers.prototype.plain))).resolves.toBe(true);
  });
});
