/**
 * Duo's CA pinning through the Nest module, on Express and Fastify: a Duo whose
 * certificate is outside the pinned roots stops the login with 502
 * duo_tls_pinning_failed, even in fail mode "open", and the log says how to turn
 * pinning off behind an inspecting proxy; `tls: { pinning: 'system' }` with `ca`
 * lets the same login through.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { selfSignedCertificate } from '../support/tls.js';
import { PLATFORMS, createTestApp } from './fixtures.js';

describe.each(PLATFORMS)('Duo CA pinning on %s', (adapter) => {
  const tls = selfSignedCertificate();
  let emulator: DuoEmulator;
  beforeAll(async () => {
    emulator = await DuoEmulator.start({ tls });
  });
  afterAll(async () => {
    await emulator.close();
  });

  it('pinning "duo" against a certificate outside the pinned roots: 502 duo_tls_pinning_failed, never a bypass in fail mode "open"', async () => {
    const t = await createTestApp(emulator, { adapter, duo: { failMode: 'open', tls: { pinning: 'duo' } } });
    try {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const res = await agent.get('/account').set('Accept', 'application/json').expect(502);
      expect(res.body.error).toBe('duo_tls_pinning_failed');
      expect(res.body.message).toContain(`tls: { pinning: 'system' }`);
      expect(t.events.some((event) => event.type === 'second_factor_bypassed')).toBe(false);
      expect(t.logger.text()).toContain('duo_tls_pinning_failed');
      expect(t.logger.text()).not.toContain(emulator.baseUrl);
    } finally {
      await t.close();
    }
  });

  it('pinning "system" with the certificate in ca: the login starts (303 to the emulator)', async () => {
    const t = await createTestApp(emulator, { adapter, duo: { tls: { pinning: 'system' }, ca: tls.cert } });
    try {
      const agent = t.agent();
      await agent.post('/login').send({ username: 'alice' }).expect(201);
      const res = await agent.get('/account').set('Accept', 'text/html').expect(303);
      expect(res.headers.location).toMatch(new RegExp(`^${emulator.baseUrl.replaceAll('.', '\\.')}/`));
      expect(new URL(res.headers.location as string).pathname).toBe('/oauth/v1/authorize');
    } finally {
      await t.close();
    }
  });
});
