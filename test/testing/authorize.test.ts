/**
 * GET /oauth/v1/authorize and the prompt page (mode prompt): the request JWT's
 * checks, the redirect with a code or an error, the decision form.
 */
import { describe, expect, it } from 'vitest';
import { authorizeUrl, client, compactJwt, emulator, now, postForm, REDIRECT, requestJwt, useEmulator } from './support.js';

useEmulator();

describe('authorize', () => {
  it('approve: 302 to the redirect URI with a fresh duo_code and the state', async () => {
    const duo = client();
    const start = await duo.startAuthorization('alice');
    const res = await fetch(start.url, { redirect: 'manual' });
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
    expect(location.searchParams.get('state')).toBe(start.state);
    expect(location.searchParams.get('duo_code')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const again = new URL(await emulator.authorize(start.url));
    expect(again.searchParams.get('duo_code')).not.toBe(location.searchParams.get('duo_code'));
    expect(emulator.stats).toMatchObject({ authorizations: 2, codesIssued: 2 });
  });

  it('sends "code" instead of "duo_code" when use_duo_code_attribute is false', async () => {
    const location = new URL(await emulator.authorize(authorizeUrl(await requestJwt({ use_duo_code_attribute: false }))));
    expect(location.searchParams.get('code')).toBeTruthy();
    expect(location.searchParams.get('duo_code')).toBeNull();
  });

  it('deny: 302 to the redirect URI with error=access_denied and the state, no code', async () => {
    emulator.setMode('deny');
    const start = await client().startAuthorization('alice');
    const location = new URL(await emulator.authorize(start.url));
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('error_description')).toBeTruthy();
    expect(location.searchParams.get('state')).toBe(start.state);
    expect(location.searchParams.get('duo_code')).toBeNull();
    expect(emulator.stats.codesIssued).toBe(0);
  });

  it('remembers the optional parameters of the request', async () => {
    const duo = client();
    const url = await duo.createAuthUrl('alice', 'T'.repeat(32), {
      nonce: 'N'.repeat(32),
      destAppName: 'Payroll',
      displayUsername: 'Alice A.',
      maxAge: 0,
      promptLogin: true,
    });
    await emulator.authorize(url);
    expect(emulator.lastAuthorizeRequest).toEqual({
      username: 'alice',
      redirectUri: REDIRECT,
      useDuoCodeAttribute: true,
      nonce: 'N'.repeat(32),
      destAppName: 'Payroll',
      displayUsername: 'Alice A.',
      maxAge: 0,
      prompt: 'login',
    });
  });

  it.each<[string, { jwt?: string; query?: string }, string]>([
    ['in the query alone (as Python and Java send it)', { query: 'Q'.repeat(32) }, 'Q'.repeat(32)],
    ['in the request JWT alone (as Node and PHP send it)', { jwt: 'J'.repeat(32) }, 'J'.repeat(32)],
    ['in both, the same value (as nestjs-duo sends it)', { jwt: 'B'.repeat(32), query: 'B'.repeat(32) }, 'B'.repeat(32)],
  ])('a nonce %s is taken and echoed in the id_token', async (_name, where, echoed) => {
    const duo = client();
    const request = await requestJwt(where.jwt === undefined ? {} : { nonce: where.jwt });
    const location = new URL(await emulator.authorize(authorizeUrl(request, where.query === undefined ? {} : { nonce: where.query })));
    expect(emulator.lastAuthorizeRequest?.nonce).toBe(echoed);
    const claims = await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'alice', echoed);
    expect(claims.nonce).toBe(echoed);
  });

  it('a query nonce that differs from the request JWT\'s is a bad request: 400, no code', async () => {
    const res = await fetch(authorizeUrl(await requestJwt({ nonce: 'J'.repeat(32) }), { nonce: 'Q'.repeat(32) }), { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(await res.text()).toMatch(/nonce differs between the query and the request JWT/);
    expect(emulator.stats.codesIssued).toBe(0);
  });

  const bad: Array<[string, () => Promise<string>]> = [
    ['request signed with another secret', async () => authorizeUrl(await requestJwt({}, [], 'z'.repeat(40)))],
    ['request with alg none', async () => authorizeUrl(compactJwt({ alg: 'none' }, { client_id: emulator.clientId }, () => Buffer.alloc(0)))],
    ['request aud wrong', async () => authorizeUrl(await requestJwt({ aud: 'https://api-other.duosecurity.com' }))],
    ['request iss wrong', async () => authorizeUrl(await requestJwt({ iss: 'DIOTHER0000000000002' }))],
    ['request expired', async () => authorizeUrl(await requestJwt({ iat: now() - 600, exp: now() - 300 }))],
    ['request without exp', async () => authorizeUrl(await requestJwt({}, ['exp']))],
    ['state too short', async () => authorizeUrl(await requestJwt({ state: 'short' }))],
    ['state too long', async () => authorizeUrl(await requestJwt({ state: 'L'.repeat(1025) }))],
    ['no duo_uname', async () => authorizeUrl(await requestJwt({}, ['duo_uname']))],
    ['response_type token', async () => authorizeUrl(await requestJwt({ response_type: 'token' }))],
    ['scope not openid', async () => authorizeUrl(await requestJwt({ scope: 'profile' }))],
    ['client_id claim wrong', async () => authorizeUrl(await requestJwt({ client_id: 'DIOTHER0000000000002' }))],
    ['redirect_uri differs from the query', async () => authorizeUrl(await requestJwt({ redirect_uri: 'https://evil.example.com/cb' }))],
    ['use_duo_code_attribute not a boolean', async () => authorizeUrl(await requestJwt({ use_duo_code_attribute: 'yes' }))],
    ['prompt other than login', async () => authorizeUrl(await requestJwt({ prompt: 'none' }))],
    ['unknown client_id in the query', async () => authorizeUrl(await requestJwt(), { client_id: 'DIOTHER0000000000002' })],
    ['response_type token in the query', async () => authorizeUrl(await requestJwt(), { response_type: 'token' })],
    ['no request', async () => `${emulator.baseUrl}/oauth/v1/authorize?response_type=code&client_id=${emulator.clientId}`],
    ['repeated parameters', async () => `${authorizeUrl(await requestJwt())}&redirect_uri=${encodeURIComponent(REDIRECT)}`],
  ];

  it.each(bad)('refuses %s with a 400 page and no redirect', async (_name, make) => {
    const res = await fetch(await make(), { redirect: 'manual' });
    expect(res.status).toBe(400);
    expect(res.headers.get('location')).toBeNull();
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await res.text()).toContain('Duo emulator');
    expect(emulator.stats.codesIssued).toBe(0);
  });
});

describe('prompt mode', () => {
  it('shows a labelled, escaped page with Approve and Deny; the decision redirects with a code', async () => {
    emulator.setMode('prompt');
    const duo = client();
    const state = 'P'.repeat(40);
    const url = await duo.createAuthUrl('alice', state, { nonce: 'n'.repeat(32), displayUsername: '<b>Alice</b> & "co"', destAppName: "Bob's <App>" });
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    const page = await res.text();
    expect(page).toContain('Duo emulator — not real Duo');
    expect(page).toMatch(/<button[^>]*value="approve"[^>]*>Approve<\/button>/);
    expect(page).toMatch(/<button[^>]*value="deny"[^>]*>Deny<\/button>/);
    expect(page).toContain('&lt;b&gt;Alice&lt;/b&gt; &amp; &quot;co&quot;');
    expect(page).toContain('Bob&#39;s &lt;App&gt;');
    expect(page).not.toContain('<b>Alice</b>');
    expect(page).not.toContain(state);
    expect(page).toContain('action="/emulator/decision"');
    expect(emulator.stats.codesIssued).toBe(0);

    const txn = /name="txn" value="([^"]+)"/.exec(page)![1]!;
    const decided = await postForm('/emulator/decision', { txn, decision: 'approve' });
    expect([302, 303]).toContain(decided.status);
    const location = new URL(decided.headers.get('location')!);
    expect(location.searchParams.get('state')).toBe(state);
    const claims = await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'alice', 'n'.repeat(32));
    expect(claims.auth_result.status).toBe('allow');

    // The transaction is single-use.
    const replay = await postForm('/emulator/decision', { txn, decision: 'approve' });
    expect(replay.status).toBe(400);
    expect(replay.headers.get('location')).toBeNull();
    expect((await postForm('/emulator/decision', { txn: 'forged', decision: 'approve' })).status).toBe(400);
  });
});
