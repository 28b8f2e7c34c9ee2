import { describe, expect, it } from 'vitest';
import { DuoConfigError, isDuoError } from '../../src/protocol/index.js';
import {
  DEFAULT_PROMPT_LIMITS,
  MemoryAttemptCounter,
  PromptLimitError,
  PromptLimiter,
  clientNetwork,
  resolvePromptLimits,
  type DuoAttemptCounter,
} from '../../src/prompt-limits.js';

const request = (ip: string) => ({ headers: {}, ip });

describe('resolvePromptLimits', () => {
  it('limits by default, per user, per IP and failed callbacks', () => {
    const settings = resolvePromptLimits(undefined)!;
    expect(settings.perUser).toEqual(DEFAULT_PROMPT_LIMITS.perUser);
    expect(settings.perIp).toEqual(DEFAULT_PROMPT_LIMITS.perIp);
    expect(settings.failedCallbacksPerUser).toEqual(DEFAULT_PROMPT_LIMITS.failedCallbacksPerUser);
  });

  it('turns every limit off with false, and one with its own false', () => {
    expect(resolvePromptLimits(false)).toBeUndefined();
    expect(resolvePromptLimits({ perUser: false, perIp: false, failedCallbacksPerUser: false })).toBeUndefined();
    expect(resolvePromptLimits({ perIp: false })!.perIp).toBeUndefined();
  });

  it('names the option that is wrong', () => {
    expect(() => resolvePromptLimits({ perUser: { max: 0, windowSeconds: 60 } })).toThrow(/"promptLimits\.perUser\.max" must be a whole number from 1/);
    expect(() => resolvePromptLimits({ perIp: { max: 5, windowSeconds: 7200 } })).toThrow(/"promptLimits\.perIp\.windowSeconds" must be a whole number from 1 to 3600/);
    expect(() => resolvePromptLimits({ perUser: 5 as never })).toThrow(DuoConfigError);
    expect(() => resolvePromptLimits('on' as never)).toThrow(/"promptLimits" must be an object/);
    expect(() => resolvePromptLimits({ clientIp: 'x-forwarded-for' as never })).toThrow(/"promptLimits\.clientIp" must be a function/);
    // A typo must not silently keep the default.
    expect(() => resolvePromptLimits({ perUsr: { max: 1, windowSeconds: 60 } } as never)).toThrow(/"promptLimits\.perUsr" is not an option of "promptLimits"/);
    expect(() => resolvePromptLimits({ perUser: { max: 1, window: 60 } } as never)).toThrow(/"promptLimits\.perUser\.window" is not an option of a limit/);
  });
});

describe('MemoryAttemptCounter', () => {
  it('counts in a fixed window that starts with the first hit, and reads without counting', async () => {
    const counter = new MemoryAttemptCounter();
    expect(await counter.countAttempt('k', 1000, 0, 0)).toEqual({ count: 0, resetInMs: 0 });
    expect(await counter.countAttempt('k', 1000, 1, 0)).toEqual({ count: 1, resetInMs: 1000 });
    expect(await counter.countAttempt('k', 1000, 1, 400)).toEqual({ count: 2, resetInMs: 600 });
    expect(await counter.countAttempt('k', 1000, 0, 999)).toEqual({ count: 2, resetInMs: 1 });
    expect(await counter.countAttempt('k', 1000, 1, 1000)).toEqual({ count: 1, resetInMs: 1000 });
  });

  it('stays within its cap under a flood of keys, dropping ended windows first, then the oldest', async () => {
    const counter = new MemoryAttemptCounter(3);
    await counter.countAttempt('old', 10, 1, 0);
    await counter.countAttempt('a', 1000, 1, 0);
    await counter.countAttempt('b', 1000, 1, 0);
    await counter.countAttempt('c', 1000, 1, 20); // 'old' has ended: it goes
    expect(counter.size).toBe(3);
    expect(await counter.countAttempt('a', 1000, 0, 20)).toEqual({ count: 1, resetInMs: 980 });
    await counter.countAttempt('d', 1000, 1, 30); // none ended: the oldest ('a') goes
    expect(counter.size).toBe(3);
    expect((await counter.countAttempt('a', 1000, 0, 30)).count).toBe(0);
    for (let i = 0; i < 1000; i++) await counter.countAttempt(`flood-${i}`, 1000, 1, 40);
    expect(counter.size).toBe(3);
  });
});

describe('MemoryAttemptCounter under a flood of networks (a finding of the outside review)', () => {
  it("keeps each kind's windows apart: 200 network windows through a cap of 50 never push out a user's window", async () => {
    const counter = new MemoryAttemptCounter(50);
    await counter.countAttempt('duo:limit:user:victim', 600_000, 1, 0);
    for (let i = 0; i < 200; i++) await counter.countAttempt(`duo:limit:ip:net${i}`, 600_000, 1, 1);
    expect(await counter.countAttempt('duo:limit:user:victim', 600_000, 0, 2)).toEqual({ count: 1, resetInMs: 599_998 });
    expect(counter.size).toBe(51);
  });

  it('makes room from the front: ended windows go first, then the oldest, whatever the map holds', async () => {
    const counter = new MemoryAttemptCounter(3);
    for (const [key, at] of [['duo:limit:ip:a', 0], ['duo:limit:ip:b', 1], ['duo:limit:ip:c', 2]] as const) await counter.countAttempt(key, 100, 1, at);
    await counter.countAttempt('duo:limit:ip:d', 100, 1, 100); // a has ended: it goes, b and c stay
    expect((await counter.countAttempt('duo:limit:ip:b', 100, 0, 100)).count).toBe(1);
    await counter.countAttempt('duo:limit:ip:e', 100, 1, 100); // full of live windows: the oldest (b) goes
    expect((await counter.countAttempt('duo:limit:ip:b', 100, 0, 100)).count).toBe(0);
    expect((await counter.countAttempt('duo:limit:ip:c', 100, 0, 100)).count).toBe(1);
  });
});

describe('clientNetwork', () => {
  it('keeps IPv4 addresses, also IPv4-mapped ones', () => {
    expect(clientNetwork('203.0.113.7')).toBe('203.0.113.7');
    expect(clientNetwork('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(clientNetwork('::FFFF:203.0.113.7')).toBe('203.0.113.7');
  });

  it('counts IPv6 per /64, whatever the spelling', () => {
    const network = '2001:db8:0:1::/64';
    expect(clientNetwork('2001:db8:0:1::1')).toBe(network);
    expect(clientNetwork('2001:0db8:0000:0001:ffff:ffff:ffff:ffff')).toBe(network);
    expect(clientNetwork('2001:DB8::1:0:0:0:5')).toBe(network);
    expect(clientNetwork('2001:db8:0:2::1')).toBe('2001:db8:0:2::/64');
    expect(clientNetwork('::1')).toBe('0:0:0:0::/64');
    expect(clientNetwork('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('gives nothing for what is not an address', () => {
    for (const value of [undefined, '', 'localhost', '1.2.3', '::ffff:1.2.3', '2001:db8::1::2', '[::1]']) expect(clientNetwork(value)).toBeUndefined();
  });
});

describe('PromptLimiter', () => {
  const limiter = (counter: DuoAttemptCounter = new MemoryAttemptCounter(), options = {}) =>
    new PromptLimiter(resolvePromptLimits({ perUser: { max: 3, windowSeconds: 60 }, perIp: { max: 5, windowSeconds: 60 }, failedCallbacksPerUser: { max: 2, windowSeconds: 900 }, ...options })!, counter, 'DIAPP@api-x');

  it('refuses the start after max per user, with 429 and the seconds until the window ends', async () => {
    const limits = limiter();
    for (let i = 0; i < 3; i++) await limits.admit(request(`198.51.100.${i}`), 'alice');
    const refused = await limits.admit(request('198.51.100.9'), 'alice').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(PromptLimitError);
    expect(isDuoError(refused) && refused.code).toBe('prompt_rate_limited');
    expect((refused as PromptLimitError).scope).toBe('user');
    expect((refused as PromptLimitError).retryAfterSeconds).toBe(60);
    expect((refused as Error).message).toMatch(/Too many Duo prompts were requested for this account; try again in 60 s/);
    expect((refused as Error).message).not.toContain('alice');
    await limits.admit(request('198.51.100.9'), 'bob'); // another user is not affected
  });

  it('refuses the start after max per IP network, for any user', async () => {
    const limits = limiter();
    for (let i = 0; i < 5; i++) await limits.admit(request(`2001:db8:0:1::${i}`), `user${i}`);
    await expect(limits.admit(request('2001:db8:0:1::99'), 'user99')).rejects.toMatchObject({ scope: 'ip' });
    await limits.admit(request('2001:db8:0:2::1'), 'user99');
  });

  it('stops prompts for a user whose callbacks failed max times, counting only the failures that are the user\'s', async () => {
    const limits = limiter();
    await limits.failed('alice', 'duo_unavailable'); // Duo's outage is not alice's doing
    await limits.failed('alice', 'session_unavailable');
    await limits.admit(request('192.0.2.1'), 'alice');
    await limits.failed('alice', 'access_denied');
    await limits.admit(request('192.0.2.1'), 'alice');
    await limits.failed('alice', 'second_factor_denied');
    await expect(limits.admit(request('192.0.2.1'), 'alice')).rejects.toMatchObject({ scope: 'failed_callbacks', retryAfterSeconds: 900 });
  });

  it('keys by a digest, never by the user name or the address', async () => {
    const keys: string[] = [];
    const counter: DuoAttemptCounter = { countAttempt: (key) => (keys.push(key), Promise.resolve({ count: 1, resetInMs: 1000 })) };
    await limiter(counter).admit(request('192.0.2.44'), 'alice@example.com');
    await limiter(counter).failed('alice@example.com', 'access_denied');
    expect(keys).toHaveLength(4);
    for (const key of keys) {
      expect(key).toMatch(/^duo:limit:(fail|ip|user):[\w-]{22}$/);
      expect(key).not.toMatch(/alice|192\.0\.2/);
    }
  });

  it("a refused start counts nowhere else: a user over the limit, from a new network each time, creates no network windows", async () => {
    const counter = new MemoryAttemptCounter();
    const limits = limiter(counter);
    for (let i = 0; i < 3; i++) await limits.admit(request(`2001:db8:${i}::1`), 'mallory');
    const before = counter.size;
    for (let i = 3; i < 100; i++) await expect(limits.admit(request(`2001:db8:${i}::1`), 'mallory')).rejects.toMatchObject({ scope: 'user' });
    expect(counter.size).toBe(before);
  });

  it('counts Alice and alice once with usernameMatch case-insensitive, and apart without it', async () => {
    const settings = resolvePromptLimits({ perUser: { max: 2, windowSeconds: 60 }, perIp: false })!;
    const folded = new PromptLimiter(settings, new MemoryAttemptCounter(), 'app', { caseInsensitive: true });
    await folded.admit(request('192.0.2.1'), 'carol');
    await folded.admit(request('192.0.2.1'), 'Carol');
    await expect(folded.admit(request('192.0.2.1'), 'CAROL')).rejects.toMatchObject({ scope: 'user' });
    const exact = new PromptLimiter(settings, new MemoryAttemptCounter(), 'app');
    for (const name of ['carol', 'Carol', 'CAROL', 'carol']) await exact.admit(request('192.0.2.1'), name);
  });

  it('keys the digests with the secret: a network or a name cannot be recovered by hashing guesses', async () => {
    const keys: string[] = [];
    const counter: DuoAttemptCounter = { countAttempt: (key) => (keys.push(key), Promise.resolve({ count: 1, resetInMs: 1000 })) };
    const settings = resolvePromptLimits({ failedCallbacksPerUser: false })!;
    await new PromptLimiter(settings, counter, 'app', { secret: 's'.repeat(40) }).admit(request('127.0.0.1'), 'jane');
    await new PromptLimiter(settings, counter, 'app', { secret: 't'.repeat(40) }).admit(request('127.0.0.1'), 'jane');
    const { createHash } = await import('node:crypto');
    const plain = `duo:limit:ip:${createHash('sha256').update('127.0.0.1').digest('base64url').slice(0, 22)}`;
    expect(keys).toHaveLength(4);
    expect(keys).not.toContain(plain);
    expect(new Set(keys).size).toBe(4); // another secret, other keys
  });

  it('warns (at most once a minute) when clientIp gives something that is not an address, and still limits per user', async () => {
    const warnings: string[] = [];
    const settings = resolvePromptLimits({ perUser: { max: 2, windowSeconds: 60 }, perIp: { max: 1, windowSeconds: 60 }, clientIp: (req) => req.headers['x-forwarded-for'] as string })!;
    const limits = new PromptLimiter(settings, new MemoryAttemptCounter(), 'app', { warn: (message) => warnings.push(message) });
    const forwarded = { headers: { 'x-forwarded-for': '203.0.113.10, 10.0.0.1' } };
    await limits.admit(forwarded, 'u1');
    await limits.admit(forwarded, 'u1');
    await expect(limits.admit(forwarded, 'u1')).rejects.toMatchObject({ scope: 'user' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/not an IP address, so the per-IP limit did not count it\. Return one address from promptLimits\.clientIp/);
    expect(warnings[0]).not.toContain('203.0.113.10');
  });

  it('keeps applications apart: one user on two applications has two counts', async () => {
    const counter = new MemoryAttemptCounter();
    const settings = resolvePromptLimits({ perUser: { max: 1, windowSeconds: 60 }, perIp: false })!;
    await new PromptLimiter(settings, counter, 'staff').admit(request('192.0.2.1'), 'alice');
    await new PromptLimiter(settings, counter, 'admin').admit(request('192.0.2.1'), 'alice');
    await expect(new PromptLimiter(settings, counter, 'admin').admit(request('192.0.2.1'), 'alice')).rejects.toMatchObject({ scope: 'user' });
  });

  it('fails closed when the counter fails: the error goes to the caller', async () => {
    const broken: DuoAttemptCounter = { countAttempt: () => Promise.reject(new Error('Redis down')) };
    await expect(limiter(broken).admit(request('192.0.2.1'), 'alice')).rejects.toThrow('Redis down');
  });

  it('uses the app\'s clientIp when given (e.g. a header the app\'s own proxy sets)', async () => {
    const limits = limiter(undefined, { clientIp: (req: { headers: Record<string, unknown> }) => req.headers['x-client-ip'] as string, perUser: false });
    for (let i = 0; i < 5; i++) await limits.admit({ headers: { 'x-client-ip': '192.0.2.200' }, ip: `10.0.0.${i}` }, 'u');
    await expect(limits.admit({ headers: { 'x-client-ip': '192.0.2.200' }, ip: '10.0.0.9' }, 'u')).rejects.toMatchObject({ scope: 'ip' });
  });
});
