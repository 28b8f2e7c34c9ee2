/**
 * One emulator standing in for several Duo applications (`addApplication()`):
 * each client ID with its own secret at the same base URL, codes bound to the
 * application that issued them, the switches shared, the secrets never shown.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { approvedLogin, client, emulator, expectDuoError, REDIRECT, useEmulator } from './support.js';

useEmulator();

describe('several applications on one emulator', () => {
  it('each application passes its own health check and login; its id_token names its client ID', async () => {
    const second = emulator.addApplication();
    expect(second.clientId).not.toBe(emulator.clientId);
    expect(second.clientId).toMatch(/^DIEMULATOR\d{10}$/);
    expect(second.baseUrl).toBe(emulator.baseUrl);
    const duo = client(second.clientOptions(REDIRECT));
    expect((await duo.healthCheck()).timestamp).toBeGreaterThan(0);
    const { code, nonce } = await approvedLogin(duo);
    const claims = await duo.exchangeAuthorizationCode(code, 'alice', nonce);
    expect(claims.aud).toBe(second.clientId);
    expect(claims.auth_context).toMatchObject({ application: { key: second.clientId } });
    // The first application still works beside it.
    const first = client();
    const login = await approvedLogin(first);
    expect((await first.exchangeAuthorizationCode(login.code, 'alice', login.nonce)).aud).toBe(emulator.clientId);
  });

  it("a code issued to one application cannot be exchanged by another's client (and is spent by the attempt)", async () => {
    const other = emulator.addApplication();
    const staff = client();
    const admin = client(other.clientOptions(REDIRECT));
    const { code, nonce } = await approvedLogin(staff);
    await expectDuoError(admin.exchangeAuthorizationCode(code, 'alice', nonce), 'code_invalid');
    await expectDuoError(staff.exchangeAuthorizationCode(code, 'alice', nonce), 'code_invalid');
  });

  it("a request signed with another application's secret is refused at authorize and at the token call", async () => {
    const other = emulator.addApplication();
    const forged = client({ ...other.clientOptions(REDIRECT), clientSecret: emulator.clientSecret });
    const start = await forged.startAuthorization('alice');
    await expect(emulator.authorize(start.url)).rejects.toThrow();
    await expectDuoError(forged.healthCheck(), 'duo_invalid_client');
  });

  it('takes a client ID and secret of its own, refuses a taken or malformed one, and never shows the secret', () => {
    const named = emulator.addApplication({ clientId: 'DIADMINAPP0000000001', clientSecret: 'a-secret-of-forty-characters-0123456789' });
    expect(named.clientId).toBe('DIADMINAPP0000000001');
    expect(named.clientOptions(REDIRECT)).toMatchObject({ clientId: 'DIADMINAPP0000000001', clientSecret: 'a-secret-of-forty-characters-0123456789', apiBaseUrl: emulator.baseUrl });
    expect(JSON.stringify(named)).not.toContain('a-secret-of-forty');
    expect(inspect(named, { showHidden: true, getters: true })).not.toContain('a-secret-of-forty');
    expect(() => emulator.addApplication({ clientId: 'DIADMINAPP0000000001' })).toThrow(/taken/);
    expect(() => emulator.addApplication({ clientId: emulator.clientId })).toThrow(/taken/);
    expect(() => emulator.addApplication({ clientId: 'has space' })).toThrow(/clientId must be 1 to 256 printable ASCII/);
    expect(() => emulator.addApplication({ clientSecret: '' })).toThrow(/clientSecret must be/);
  });

  it("the mode is the emulator's, shared by its applications", async () => {
    const other = emulator.addApplication();
    emulator.setMode('deny');
    const start = await client(other.clientOptions(REDIRECT)).startAuthorization('alice');
    const back = new URL(await emulator.authorize(start.url));
    expect(back.searchParams.get('error')).toBe('access_denied');
  });
});
