/**
 * The emulator's options and switches: start(), credentials, what it never
 * shows, the checks of what a test hands it, and reset().
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DuoClient } from '../../src/protocol/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { emulator, REDIRECT, useEmulator } from './support.js';

useEmulator();

describe('DuoEmulator basics', () => {
  it('listens on 127.0.0.1 with Duo-shaped credentials and hands out client options', () => {
    expect(emulator.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(emulator.clientId).toBe('DIEMULATOR0000000001');
    expect(emulator.clientSecret).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(emulator.apiHost).toMatch(/^api-[a-z0-9-]+\.duosecurity\.com$/);
    expect(emulator.clientOptions(REDIRECT)).toEqual({
      clientId: emulator.clientId,
      clientSecret: emulator.clientSecret,
      apiBaseUrl: emulator.baseUrl,
      redirectUri: REDIRECT,
    });
  });

  it('makes a fresh secret per instance and takes given credentials', async () => {
    const other = await DuoEmulator.start({ clientId: 'DIOTHER0000000000002', clientSecret: 'x'.repeat(40) });
    const third = await DuoEmulator.start();
    try {
      expect(other.clientId).toBe('DIOTHER0000000000002');
      expect(other.clientSecret).toBe('x'.repeat(40));
      expect(third.clientSecret).not.toBe(emulator.clientSecret);
      expect(third.baseUrl).not.toBe(emulator.baseUrl);
    } finally {
      await Promise.all([other.close(), third.close()]);
    }
  });

  it('never shows its secret in JSON or inspect output', () => {
    expect(JSON.stringify(emulator)).not.toContain(emulator.clientSecret);
    expect(inspect(emulator, { depth: 5 })).not.toContain(emulator.clientSecret);
    expect(JSON.stringify(emulator)).toContain(emulator.baseUrl);
  });

  it('refuses unknown modes, failures and bad options', async () => {
    expect(() => emulator.setMode('maybe' as never)).toThrow(TypeError);
    expect(() => emulator.setFailure('explode' as never)).toThrow(TypeError);
    expect(() => emulator.setFailure('http_500', { endpoints: ['userinfo' as never] })).toThrow(TypeError);
    expect(() => emulator.setClockOffset(Number.NaN)).toThrow(TypeError);
    await expect(DuoEmulator.start({ codeTtlSeconds: 0 })).rejects.toThrow(TypeError);
    await expect(DuoEmulator.start({ port: 70000 })).rejects.toThrow(TypeError);
  });
});

describe('setFailure options', () => {
  it('refuses a retryAfter that is not a whole number of seconds or a printable header value', () => {
    for (const retryAfter of [0, 30, 86_400, 'Thu, 15 Jan 2026 12:01:30 GMT', 'soon']) {
      expect(() => emulator.setFailure('rate_limited', { retryAfter }), String(retryAfter)).not.toThrow();
    }
    for (const retryAfter of [-1, 1.5, Number.NaN, '', 'a\r\nset-cookie: x=1', 'x'.repeat(300)]) {
      expect(() => emulator.setFailure('rate_limited', { retryAfter: retryAfter as never }), String(retryAfter)).toThrow(TypeError);
    }
  });
});

describe('reset()', () => {
  it('restores the starting mode, clears failure and clock offset, and zeroes the stats', async () => {
    const fresh = await DuoEmulator.start({ mode: 'deny' });
    try {
      fresh.setMode('approve');
      fresh.setFailure('http_500');
      fresh.setClockOffset(120);
      await fetch(`${fresh.baseUrl}/oauth/v1/health_check`, { method: 'POST' });
      expect(fresh.stats.healthChecks).toBe(1);
      fresh.reset();
      expect(fresh.mode).toBe('deny');
      expect(fresh.failure).toBe('none');
      expect(fresh.stats.healthChecks).toBe(0);
      const duo = new DuoClient(fresh.clientOptions('http://localhost/duo/callback'));
      const health = await duo.healthCheck();
      expect(Math.abs(health.clockOffsetSeconds)).toBeLessThan(5);
      await duo.close();
    } finally {
      await fresh.close();
    }
  });
});
