/**
 * What Duo's official Node SDK (@duosecurity/duo_universal 3.0) accepts and
 * nestjs-duo refuses. Both clients speak real HTTPS to the same emulator; the
 * official client gets the emulator's CA in place of its pinned Duo roots (the
 * only change made to it). Each row asserts both sides, so the table stays true.
 */
import { Client as OfficialClient } from '@duosecurity/duo_universal';
import { Agent as HttpsAgent } from 'node:https';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DuoClient, DuoError, expectNoNonce, generateNonce } from '../../src/protocol/index.js';
import { DuoEmulator, type DuoEmulatorFailure } from '../../src/testing/index.js';
import { selfSignedCertificate } from '../support/tls.js';

const REDIRECT = 'https://app.example.com/duo/callback';
let emulator: DuoEmulator;
let ours: DuoClient;
let official: OfficialClient;
let cert: string;

beforeAll(async () => {
  const tls = selfSignedCertificate();
  cert = tls.cert;
  emulator = await DuoEmulator.start({ tls });
  ours = new DuoClient({ ...emulator.clientOptions(REDIRECT), ca: cert });
  const host = new URL(emulator.baseUrl).host; // 127.0.0.1:PORT: the official SDK takes host:port as apiHost
  official = new OfficialClient({ clientId: emulator.clientId, clientSecret: emulator.clientSecret, apiHost: host, redirectUrl: REDIRECT });
  (official as unknown as { axios: { defaults: { httpsAgent: HttpsAgent } } }).axios.defaults.httpsAgent = new HttpsAgent({ ca: cert });
});

afterAll(async () => {
  await ours.close();
  await emulator.close();
});

beforeEach(() => emulator.setFailure('none'));

/** A code for `username` from a login the official SDK started (it sends no nonce). */
async function officialCode(username: string): Promise<string> {
  const url = await official.createAuthUrl(username, official.generateState());
  return new URL(await emulator.authorize(url)).searchParams.get('duo_code')!;
}

async function ourCode(username: string): Promise<{ code: string; nonce: string }> {
  const { url, nonce } = await ours.startAuthorization(username);
  return { code: new URL(await emulator.authorize(url)).searchParams.get('duo_code')!, nonce };
}

describe('both clients pass a good login', () => {
  it('official SDK and nestjs-duo both accept a correct id_token', async () => {
    await expect(official.exchangeAuthorizationCodeFor2FAResult(await officialCode('alice'), 'alice')).resolves.toMatchObject({ preferred_username: 'alice' });
    const { code, nonce } = await ourCode('alice');
    await expect(ours.exchangeAuthorizationCode(code, 'alice', nonce)).resolves.toMatchObject({ preferred_username: 'alice' });
  });
});

describe('id_tokens the official SDK accepts and nestjs-duo refuses', () => {
  it.each([
    ['token_status_deny', 'auth_result.status is "deny"', 'second_factor_denied'],
    ['token_iat_future', 'iat an hour in the future', 'token_invalid'],
    ['token_multi_aud', 'aud lists another audience besides the client id', 'token_invalid'],
  ] as Array<[DuoEmulatorFailure, string, string]>)('%s (%s)', async (failure, _what, code) => {
    emulator.setFailure(failure);
    await expect(official.exchangeAuthorizationCodeFor2FAResult(await officialCode('alice'), 'alice')).resolves.toMatchObject({ preferred_username: 'alice' });
    const login = await ourCode('alice');
    const error = await ours.exchangeAuthorizationCode(login.code, 'alice', login.nonce).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DuoError);
    expect((error as DuoError).code).toBe(code);
  });

  it('a token without the nonce of this login: the official SDK cannot even send one', async () => {
    emulator.setFailure('token_no_nonce');
    // The official createAuthUrl takes no nonce, so it never checks one: any leaked code of this user is accepted.
    await expect(official.exchangeAuthorizationCodeFor2FAResult(await officialCode('alice'), 'alice')).resolves.toBeTruthy();
    const login = await ourCode('alice');
    await expect(ours.exchangeAuthorizationCode(login.code, 'alice', login.nonce)).rejects.toMatchObject({ code: 'nonce_mismatch' });
  });
});

describe('the nonce: the official SDK lets a caller leave it out without a word; nestjs-duo needs an explicit choice', () => {
  it('a code of a login that had a nonce, exchanged without it', async () => {
    // The official SDK checks a nonce only when given one: leaving it out passes, silently.
    const first = await ourCode('alice');
    await expect(official.exchangeAuthorizationCodeFor2FAResult(first.code, 'alice')).resolves.toMatchObject({ nonce: first.nonce });
    // nestjs-duo: leaving it out is a compile error (so the call is cast here, as JavaScript would make it) and input_invalid...
    const second = await ourCode('alice');
    const omitted = ours.exchangeAuthorizationCode as unknown as (code: string, username: string) => Promise<unknown>;
    await expect(omitted.call(ours, second.code, 'alice')).rejects.toMatchObject({ code: 'input_invalid' });
    // ...and saying "this login had no nonce" about a token that carries one is refused.
    await expect(ours.exchangeAuthorizationCode(second.code, 'alice', expectNoNonce)).rejects.toMatchObject({ code: 'nonce_mismatch' });
  });
});

describe('inputs and configuration the official SDK accepts and nestjs-duo refuses', () => {
  it('a state with "+" and spaces (comes back as a space and breaks logins at random)', async () => {
    const state = 'abc+def ghi+jkl mno+pqrs';
    await expect(official.createAuthUrl('alice', state)).resolves.toContain('authorize');
    await expect(ours.createAuthUrl('alice', state, { nonce: generateNonce() })).rejects.toMatchObject({ code: 'state_invalid' });
  });

  it('a username with control characters', async () => {
    await expect(official.createAuthUrl('alice\r\nbob', official.generateState())).resolves.toContain('authorize');
    await expect(ours.createAuthUrl('alice\r\nbob', ours.generateState(), { nonce: generateNonce() })).rejects.toMatchObject({ code: 'input_invalid' });
  });

  it.each([
    ['a plain-http redirect URL to a public host', { redirectUrl: 'http://app.example.com/cb' }, 'redirectUri'],
    ['a redirect URL to an IP address', { redirectUrl: 'https://10.1.2.3/cb' }, 'redirectUri'],
    ['a redirect URL with a trailing newline', { redirectUrl: 'https://app.example.com/cb\n' }, 'redirectUri'],
    ['an apiHost with a scheme', { apiHost: 'https://api-12345678.duosecurity.com' }, 'apiHost'],
    ['a client id with punctuation', { clientId: 'DI!@#$%^&*()12345678' }, 'clientId'],
    ['a secret with a trailing newline', { clientSecret: `${'s'.repeat(39)}\n` }, 'clientSecret'],
  ])('%s', (_what, change, option) => {
    const base = { clientId: 'DIAAAAAAAAAAAAAAAAAA', clientSecret: 'S'.repeat(40), apiHost: 'api-12345678.duosecurity.com', redirectUrl: REDIRECT };
    const merged = { ...base, ...change };
    expect(() => new OfficialClient(merged)).not.toThrow();
    expect(() => new DuoClient({ clientId: merged.clientId, clientSecret: merged.clientSecret, apiHost: merged.apiHost, redirectUri: merged.redirectUrl })).toThrow(
      new RegExp(`"${option}"`),
    );
  });
});

describe('transport', () => {
  it('the official SDK waits on a silent Duo with no deadline; nestjs-duo cuts it off', async () => {
    emulator.setFailure('no_answer');
    const quick = new DuoClient({ ...emulator.clientOptions(REDIRECT), ca: cert, timeoutMs: 300 });
    await expect(quick.healthCheck()).rejects.toMatchObject({ code: 'duo_timeout' });
    await quick.close();
    const pending = official.healthCheck().then(() => 'answered', () => 'failed');
    const outcome = await Promise.race([pending, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 1500))]);
    expect(outcome).toBe('still waiting');
    emulator.setFailure('none');
  });
});
