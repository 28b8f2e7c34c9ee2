import { describe, expect, it } from 'vitest';
import { resolveDuoSettings, type DuoModuleOptions } from '../../src/duo.options.js';
import { DuoConfigError } from '../../src/protocol/index.js';

const base: DuoModuleOptions = {
  clientId: 'DIXXXXXXXXXXXXXXXXXX',
  clientSecret: 'x'.repeat(40),
  apiHost: 'api-xxxxxxxx.duosecurity.com',
  redirectUri: 'https://app.example.com/duo/callback',
};

describe('resolveDuoSettings: the module options of its own', () => {
  it('checks both startup checks are on by default, and off with false', () => {
    expect(resolveDuoSettings(base)).toMatchObject({ checkSessionCookie: true, checkCallbackRoute: true });
    expect(resolveDuoSettings({ ...base, checkSessionCookie: false, checkCallbackRoute: false })).toMatchObject({ checkSessionCookie: false, checkCallbackRoute: false });
  });

  it('names a flag that is not a boolean', () => {
    expect(() => resolveDuoSettings({ ...base, checkCallbackRoute: 'no' as never })).toThrow(new DuoConfigError('Duo option "checkCallbackRoute" must be true or false.'));
    expect(() => resolveDuoSettings({ ...base, checkSessionCookie: 0 as never })).toThrow(/"checkSessionCookie" must be true or false/);
  });

  it("limits prompts by default on Duo's hosts, not against the emulator unless asked, and takes promptLimits: false as off", () => {
    expect(resolveDuoSettings(base).promptLimits?.perUser).toEqual({ max: 10, windowSeconds: 600 });
    expect(resolveDuoSettings(base, { duoHost: false }).promptLimits).toBeUndefined();
    expect(resolveDuoSettings({ ...base, promptLimits: {} }, { duoHost: false }).promptLimits?.perIp).toEqual({ max: 600, windowSeconds: 600 });
    expect(resolveDuoSettings({ ...base, promptLimits: false }).promptLimits).toBeUndefined();
    expect(() => resolveDuoSettings({ ...base, promptLimits: { perIp: { max: -1, windowSeconds: 60 } } })).toThrow(/"promptLimits\.perIp\.max"/);
  });
});

describe('DuoContext: the prompt limits in force', () => {
  it("are on for Duo's own host and off for the emulator's, unless the option says", async () => {
    const { DuoContext } = await import('../../src/duo.context.js');
    expect(new DuoContext({ ...base }).limiter).toBeDefined();
    const emulator = { ...base, apiBaseUrl: 'http://127.0.0.1:9' };
    expect(new DuoContext({ ...emulator }).limiter).toBeUndefined();
    expect(new DuoContext({ ...emulator, promptLimits: {} }).limiter).toBeDefined();
    expect(new DuoContext({ ...base, promptLimits: false }).limiter).toBeUndefined();
  });
});

describe('DuoContext: the prompt limits as wired', () => {
  it('key their counts with the client secret (two apps with other secrets count under other keys) and fold case under usernameMatch case-insensitive', async () => {
    const { DuoContext } = await import('../../src/duo.context.js');
    const keysOf = async (options: Partial<typeof base>, names: string[]) => {
      const keys: string[] = [];
      const store = {
        create: () => Promise.resolve(),
        take: () => Promise.resolve(undefined),
        countAttempt: (key: string) => (keys.push(key), Promise.resolve({ count: 1, resetInMs: 1000 })),
      };
      const context = new DuoContext({ ...base, ...options, transactionStore: store, promptLimits: { perIp: false, failedCallbacksPerUser: false } });
      for (const name of names) await context.limiter!.admit({ headers: {}, ip: '192.0.2.1' }, name);
      return keys;
    };
    const [a] = await keysOf({ clientSecret: 'a'.repeat(40) }, ['alice']);
    const [b] = await keysOf({ clientSecret: 'b'.repeat(40) }, ['alice']);
    expect(a).not.toBe(b);
    const folded = await keysOf({ usernameMatch: 'case-insensitive' }, ['Alice', 'alice']);
    expect(folded[0]).toBe(folded[1]);
    const exact = await keysOf({}, ['Alice', 'alice']);
    expect(exact[0]).not.toBe(exact[1]);
  });
});
