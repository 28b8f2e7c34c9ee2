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

describe('start() options', () => {
  it.each<[string, unknown, string]>([
    ['options not an object', null, 'DuoEmulator.start: options must be an object.'],
    ['an empty clientId', { clientId: '' }, 'DuoEmulator.start: clientId must be 1 to 256 printable ASCII characters.'],
    ['a clientSecret with a space', { clientSecret: 'a b' }, 'DuoEmulator.start: clientSecret must be 1 to 256 printable ASCII characters.'],
    ['an unknown mode', { mode: 'maybe' }, 'DuoEmulator.start: mode must be approve, deny or prompt.'],
    ['a port out of range', { port: -1 }, 'DuoEmulator.start: port must be 0 to 65535.'],
    ['a codeTtlSeconds of a week', { codeTtlSeconds: 7 * 86_400 }, 'DuoEmulator.start: codeTtlSeconds must be more than 0 and at most 86400.'],
    ['an empty factor', { factor: '' }, 'DuoEmulator.start: factor must be a short string.'],
    ['a logger that is not a function', { logger: 'console' }, 'DuoEmulator.start: logger must be a function.'],
    ['tls without cert', { tls: { key: 'k' } }, 'DuoEmulator.start: tls needs key and cert (PEM).'],
  ])('refuses %s with a TypeError naming the option', async (_name, options, message) => {
    await expect(DuoEmulator.start(options as never)).rejects.toThrow(new TypeError(message));
  });

  it('setMode, setFailure and setClockOffset say what they accept', () => {
    expect(() => emulator.setMode('maybe' as never)).toThrow(new TypeError('Unknown Duo emulator mode "maybe"; use approve, deny or prompt.'));
    expect(() => emulator.setFailure('none', { endpoints: ['userinfo' as never] })).toThrow(
      new TypeError('setFailure: endpoints must be a list of "health", "authorize" and "token".'),
    );
    expect(() => emulator.setFailure('slow', { slowMs: 600_001 })).toThrow(new TypeError('setFailure: slowMs must be 0 to 600000.'));
    expect(() => emulator.setClockOffset(Number.POSITIVE_INFINITY)).toThrow(new TypeError('setClockOffset: seconds must be a finite number.'));
    expect(emulator.mode).toBe('approve');
    expect(emulator.failure).toBe('none');
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
