/**
 * DuoEmulator.authorize(), the browser of the tests: it runs an authorize URL
 * of this emulator and, in mode prompt, posts the decision.
 */
import { describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { selfSignedCertificate } from '../support/tls.js';
import { authorizeUrl, client, emulator, requestJwt, useEmulator } from './support.js';

useEmulator();

describe('authorize()', () => {
  it('authorize() throws on a refused request and on a URL of another server', async () => {
    await expect(emulator.authorize(authorizeUrl(await requestJwt({ state: 'short' })))).rejects.toThrow(/HTTP 400.*state/);
    await expect(emulator.authorize('https://api-1234.duosecurity.com/oauth/v1/authorize?x=1')).rejects.toThrow(/not this emulator/);
  });

  it('authorize() posts the decision: deny gives access_denied, no decision is an error', async () => {
    emulator.setMode('prompt');
    const start = await client().startAuthorization('alice');
    const denied = new URL(await emulator.authorize(start.url, 'deny'));
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('state')).toBe(start.state);
    const approved = new URL(await emulator.authorize(start.url, 'approve'));
    expect(approved.searchParams.get('duo_code')).toBeTruthy();
    await expect(emulator.authorize(start.url)).rejects.toThrow(/decision/);
  });

  it('authorize() refuses a relative URL, another path of this emulator and an unknown decision, saying which', async () => {
    await expect(emulator.authorize('/oauth/v1/authorize?x=1')).rejects.toThrow(new TypeError('authorize: authUrl is not an absolute URL.'));
    await expect(emulator.authorize(`${emulator.baseUrl}/oauth/v1/token?x=1`)).rejects.toThrow(
      `authorize: the URL is not this emulator's authorize endpoint (${emulator.baseUrl}/oauth/v1/authorize).`,
    );
    const start = await client().startAuthorization('alice');
    await expect(emulator.authorize(start.url, 'maybe' as never)).rejects.toThrow(new TypeError('authorize: decision must be approve or deny.'));
    expect(emulator.stats.authorizations).toBe(0);
  });

  it('authorize() over HTTPS trusts the emulator through tls.ca when given, so a wrong CA fails the handshake', async () => {
    const own = selfSignedCertificate();
    const other = selfSignedCertificate();
    const pinned = await DuoEmulator.start({ tls: own });
    const wrongCa = await DuoEmulator.start({ tls: { ...own, ca: other.cert } });
    try {
      const url = (target: DuoEmulator): string => `${target.baseUrl}/oauth/v1/authorize?response_type=code`;
      await expect(pinned.authorize(url(pinned))).rejects.toThrow(/HTTP 400/);
      await expect(wrongCa.authorize(url(wrongCa))).rejects.toThrow(/certificate/i);
      expect(wrongCa.stats.authorizations).toBe(0);
    } finally {
      await Promise.all([pinned.close(), wrongCa.close()]);
    }
  });
});
