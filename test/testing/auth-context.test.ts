/**
 * What the emulator's id_tokens report in `auth_context` (factor, reason,
 * result) and `amr`, chosen per login with `setAuthContext()` / `setFactor()`,
 * and the remembered device that `prompt=login` overrides.
 */
import { describe, expect, it } from 'vitest';
import type { DuoClient } from '../../src/protocol/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { approvedLogin, client, emulator, useEmulator } from './support.js';

useEmulator();

/** A login through our client; the id_token's claims. */
async function login(duo: DuoClient, promptLogin = false): Promise<Record<string, any>> {
  const start = await duo.startAuthorization('alice', promptLogin ? { promptLogin: true } : {});
  const location = new URL(await emulator.authorize(start.url, emulator.mode === 'prompt' ? 'approve' : undefined));
  return (await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'alice', start.nonce)) as Record<string, any>;
}

describe('auth_context of the emulator\'s id_tokens', () => {
  it('by default Duo Push, user_approved, success; amr mfa + swk', async () => {
    const claims = await login(client());
    expect(claims.auth_context).toMatchObject({ factor: 'duo_push', reason: 'user_approved', result: 'success' });
    expect(claims.amr).toEqual(['mfa', 'swk']);
    expect(emulator.authContext).toEqual({ factor: 'duo_push', reason: 'user_approved', result: 'success' });
  });

  it.each([
    ['WebAuthn Security Key', 'user_approved', ['mfa', 'hwk', 'user']],
    ['WebAuthn Chrome Touch ID', 'user_approved', ['mfa', 'hwk', 'user']],
    ['u2f_token', 'user_approved', ['mfa', 'hwk', 'user']],
    ['sms_passcode', 'valid_passcode', ['mfa', 'sms']],
    ['duo_mobile_passcode', 'valid_passcode', ['mfa', 'otp']],
    ['hardware_token', 'valid_passcode', ['mfa', 'otp']],
    ['yubikey_code', 'valid_passcode', ['mfa', 'otp']],
    ['phone_call', 'user_approved', ['mfa', 'tel']],
    ['bypass_code', 'bypass_user', []],
    ['trusted_network', 'trusted_network', []],
    ['not_available', 'allow_unenrolled_user', []],
  ])('factor %s with reason %s: reported as set, amr %j', async (factor, reason, amr) => {
    emulator.setAuthContext({ factor, reason });
    const claims = await login(client());
    expect(claims.auth_context).toMatchObject({ factor, reason, result: 'success' });
    expect(claims.amr).toEqual(amr);
  });

  it('setFactor() changes the factor only; keys left out keep their values; null leaves a claim out of the token', async () => {
    emulator.setAuthContext({ reason: 'valid_passcode', result: 'denied' });
    emulator.setFactor('sms_passcode');
    expect(emulator.authContext).toEqual({ factor: 'sms_passcode', reason: 'valid_passcode', result: 'denied' });
    emulator.setAuthContext({ factor: null, result: null });
    const claims = await login(client());
    expect(claims.auth_context).not.toHaveProperty('factor');
    expect(claims.auth_context).not.toHaveProperty('result');
    expect(claims.auth_context.reason).toBe('valid_passcode');
    expect(claims.amr).toEqual(['mfa']);
  });

  it('each login keeps the values set when it was decided, not when its code is exchanged', async () => {
    const duo = client();
    emulator.setFactor('WebAuthn Security Key');
    const { code, nonce } = await approvedLogin(duo);
    emulator.setFactor('phone_call');
    const claims = await duo.exchangeAuthorizationCode(code, 'alice', nonce);
    expect(claims.auth_context?.factor).toBe('WebAuthn Security Key');
    expect((await login(duo)).auth_context.factor).toBe('phone_call');
  });

  it('in prompt mode the page names the factor, and the approved login reports it', async () => {
    emulator.setMode('prompt');
    emulator.setFactor('WebAuthn Credential');
    const duo = client();
    const start = await duo.startAuthorization('alice');
    const page = await (await fetch(start.url)).text();
    expect(page).toContain('WebAuthn Credential');
    const claims = await login(duo);
    expect(claims.auth_context.factor).toBe('WebAuthn Credential');
  });

  it('the start option factor is the default, and reset() goes back to it', async () => {
    const own = await DuoEmulator.start({ factor: 'phone_call' });
    try {
      expect(own.authContext).toEqual({ factor: 'phone_call', reason: 'user_approved', result: 'success' });
      own.setAuthContext({ factor: 'bypass_code', reason: 'bypass_user', result: 'fraud' });
      own.setRememberedDevice(true);
      own.reset();
      expect(own.authContext).toEqual({ factor: 'phone_call', reason: 'user_approved', result: 'success' });
      expect(own.rememberedDevice).toBe(false);
    } finally {
      await own.close();
    }
  });

  it.each([
    [[], 'setAuthContext: pass an object like'],
    [null, 'setAuthContext: pass an object like'],
    [{ factors: 'duo_push' }, 'setAuthContext: unknown key "factors"; the keys are factor, reason and result.'],
    [{ factor: '' }, 'setAuthContext: factor must be 1 to 64 printable ASCII characters'],
    [{ reason: 'x'.repeat(65) }, 'setAuthContext: reason must be 1 to 64 printable ASCII characters'],
    [{ result: 1 }, 'setAuthContext: result must be 1 to 64 printable ASCII characters'],
    [{ factor: 'duo\npush' }, 'setAuthContext: factor must be 1 to 64 printable ASCII characters'],
  ])('refuses %j, naming the key, and changes nothing', (context, says) => {
    expect(() => emulator.setAuthContext(context as never)).toThrow(TypeError);
    expect(() => emulator.setAuthContext(context as never)).toThrow(says);
    expect(emulator.authContext).toEqual({ factor: 'duo_push', reason: 'user_approved', result: 'success' });
  });
});

describe('a remembered device', () => {
  it('passes a login without a prompt, whatever the mode, as remembered_device; prompt=login is asked and reports the values set', async () => {
    emulator.setRememberedDevice(true);
    emulator.setMode('prompt');
    emulator.setFactor('WebAuthn Security Key');
    const duo = client();
    // No decision given: a prompt page would make authorize() throw.
    const start = await duo.startAuthorization('alice');
    const location = new URL(await emulator.authorize(start.url));
    const skipped = await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'alice', start.nonce);
    expect(skipped.auth_context).toMatchObject({ factor: 'remembered_device', reason: 'remembered_device', result: 'success' });
    expect(skipped.amr).toEqual([]);
    expect(emulator.lastAuthorizeRequest?.prompt).toBeUndefined();

    const asked = await duo.startAuthorization('alice', { promptLogin: true });
    await expect(emulator.authorize(asked.url)).rejects.toThrow(/decision/);
    const fresh = await login(duo, true);
    expect(emulator.lastAuthorizeRequest?.prompt).toBe('login');
    expect(fresh.auth_context).toMatchObject({ factor: 'WebAuthn Security Key', reason: 'user_approved', result: 'success' });
  });

  it('overrides mode deny (Duo does not ask), but not with prompt=login', async () => {
    emulator.setRememberedDevice(true);
    emulator.setMode('deny');
    const duo = client();
    const start = await duo.startAuthorization('alice');
    expect(new URL(await emulator.authorize(start.url)).searchParams.get('duo_code')).toBeTruthy();
    const asked = await duo.startAuthorization('alice', { promptLogin: true });
    expect(new URL(await emulator.authorize(asked.url)).searchParams.get('error')).toBe('access_denied');
  });

  it('setRememberedDevice takes only true or false', () => {
    expect(() => emulator.setRememberedDevice('yes' as never)).toThrow('setRememberedDevice: pass true or false.');
    expect(emulator.rememberedDevice).toBe(false);
  });
});
