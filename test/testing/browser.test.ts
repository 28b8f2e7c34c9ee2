/**
 * DuoEmulator.authorize(), the browser of the tests: it runs an authorize URL
 * of this emulator and, in mode prompt, posts the decision.
 */
import { describe, expect, it } from 'vitest';
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
});
