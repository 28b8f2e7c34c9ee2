/**
 * Fail mode "open" lets users through only for a transient outage of a Duo
 * that has worked since this process started; everything that points at a
 * misconfiguration or an attack fails closed, and says so in the log.
 */
import { inspect } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { DUO_MODULE_OPTIONS, DuoService, type DuoModuleOptions } from '../../src/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { selfSignedCertificate } from '../support/tls.js';
import { PLATFORMS, createTestApp, perTestApps, type TestApp } from './fixtures.js';
import { DuoContext } from '../../src/duo.context.js';

describe.each(PLATFORMS)('fail mode and Duo failures on %s', (adapter) => {
  const suite = perTestApps(adapter);
  let emulator: DuoEmulator;
  beforeEach(() => {
    emulator = suite.emulator();
  });
  const app = (duo: Partial<DuoModuleOptions>): Promise<TestApp> => suite.app({ duo });

  const errors = (t: TestApp): string[] => t.logger.lines.filter((line) => line.startsWith('error'));

  it('open: warns at startup and checks Duo once; a Duo that never answered since start lets nobody through', async () => {
    // Nothing listens at this apiBaseUrl: a stale address is a misconfiguration, not an outage.
    const t = await app({ failMode: 'open', apiBaseUrl: 'http://127.0.0.1:9' });
    expect(t.logger.warnings().join('\n')).toMatch(/fail mode "open"/i);
    expect(errors(t).join('\n')).toMatch(/health check/i);
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const res = await agent.get('/account').set('Accept', 'application/json').expect(503);
    expect(res.body.error).toBe('duo_unavailable');
    expect(t.events.some((event) => event.type === 'second_factor_bypassed')).toBe(false);
  });

  it('open: a certificate Duo should not have fails closed with duo_tls_failed, never a bypass', async () => {
    const tlsEmulator = await DuoEmulator.start({ tls: selfSignedCertificate() });
    try {
      // No `ca` for the emulator's self-signed certificate: what an interception looks like.
      const t = await createTestApp(tlsEmulator, { adapter, duo: { failMode: 'open' } });
      try {
        const agent = t.agent();
        await agent.post('/login').send({ username: 'alice' }).expect(201);
        const res = await agent.get('/account').set('Accept', 'application/json').expect(502);
        expect(res.body.error).toBe('duo_tls_failed');
        expect(t.events.some((event) => event.type === 'second_factor_bypassed')).toBe(false);
      } finally {
        await t.close();
      }
    } finally {
      await tlsEmulator.close();
    }
  });

  it('open: a 429 from Duo is 503 duo_rate_limited with its Retry-After passed on, never a bypass', async () => {
    const t = await app({ failMode: 'open', healthCheckCacheSeconds: 0 });
    emulator.setFailure('rate_limited', { endpoints: ['health'], retryAfter: 30 });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const res = await agent.get('/account').set('Accept', 'application/json').expect(503);
    expect(res.body.error).toBe('duo_rate_limited');
    expect(res.headers['retry-after']).toBe('30');
    const html = await agent.get('/account').set('Accept', 'text/html').expect(503);
    expect(html.headers['retry-after']).toBe('30');
    expect(t.events.some((event) => event.type === 'second_factor_bypassed')).toBe(false);
  });

  it('logs a wrong secret (invalid_client) once, with the fix, however many logins hit it', async () => {
    const t = await app({ clientSecret: 'Z'.repeat(40), healthCheckCacheSeconds: 0 });
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    for (let i = 0; i < 5; i++) {
      const res = await agent.get('/account').set('Accept', 'application/json').expect(502);
      expect(res.body.error).toBe('duo_invalid_client');
    }
    const lines = errors(t).filter((line) => line.includes('invalid_client'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/clientSecret/);
    expect(t.logger.text()).not.toContain('Z'.repeat(40));
  });

  it('logs Duo answering 5xx to the health check, once per interval', async () => {
    const t = await app({ healthCheckCacheSeconds: 0 });
    emulator.setFailure('http_500');
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    for (let i = 0; i < 3; i++) await agent.get('/account').set('Accept', 'application/json').expect(503);
    expect(errors(t).filter((line) => /health check/i.test(line) && /500/.test(line))).toHaveLength(1);
  });

  it('open: refuses a timeoutMs that would turn a slow Duo into a bypass, and warns about a long bypassTtlSeconds', async () => {
    await expect(app({ failMode: 'open', timeoutMs: 500 })).rejects.toThrow(/timeoutMs.*at least 3000.*failMode "open"/);
    const t = await app({ failMode: 'open', bypassTtlSeconds: 86_400 });
    expect(t.logger.warnings().join('\n')).toMatch(/bypassTtl/);
  });

  it('hides proxy credentials and the secret from util.inspect and JSON of the service and the options', async () => {
    const t = await app({ proxy: 'http://proxyuser:pr0xy-Pa55word@127.0.0.1:9' });
    const service = t.app.get(DuoService);
    const options = t.app.get(DUO_MODULE_OPTIONS);
    for (const view of [
      inspect(service, { showHidden: true, depth: Infinity, getters: true }),
      inspect(options, { showHidden: true, depth: Infinity, getters: true }),
      JSON.stringify(options),
      JSON.stringify(t.app.get(DuoContext).client),
      inspect(t.app.get(DuoContext), { showHidden: true, depth: Infinity, getters: true }),
    ]) {
      expect(view).not.toContain('pr0xy-Pa55word');
      expect(view).not.toContain(emulator.clientSecret);
    }
    expect((options as DuoModuleOptions).proxy).toContain('pr0xy-Pa55word'); // still usable
  });

  it('sends a nonce on every login, in the request JWT and as the outer nonce parameter, the same value', async () => {
    const t = await app({});
    const agent = t.agent();
    await agent.post('/login').send({ username: 'alice' }).expect(201);
    const start = await agent.get('/account').set('Accept', 'text/html').expect(303);
    const url = new URL(start.headers.location!);
    const claims = JSON.parse(Buffer.from(url.searchParams.get('request')!.split('.')[1]!, 'base64url').toString()) as { nonce?: string };
    expect(claims.nonce).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(url.searchParams.get('nonce')).toBe(claims.nonce);
    const duo = t.app.get(DuoService);
    // Duo's SDK workflow by hand: leaving the nonce out is refused, not silently accepted.
    await expect((duo.exchangeAuthorizationCodeFor2FAResult as (...args: unknown[]) => Promise<unknown>)('code', 'alice')).rejects.toMatchObject({ code: 'input_invalid' });
  });
});
