/**
 * The emulator's HTTP(S) server: routes and methods, body limits, malformed
 * input, keep-alive, its log lines, close(), and TLS.
 */
import { Agent, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { selfSignedCertificate } from '../support/tls.js';
import { authorizeUrl, client, emulator, expectDuoError, logLines, postForm, rawToken, requestJwt, tokenForm, useEmulator } from './support.js';

useEmulator();

describe('HTTP behaviour', () => {
  it('unknown paths are 404 JSON, wrong methods 405 with Allow', async () => {
    const missing = await fetch(`${emulator.baseUrl}/oauth/v1/userinfo`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ stat: 'FAIL' });
    const wrong = await fetch(`${emulator.baseUrl}/oauth/v1/token`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    const wrongAuthorize = await postForm('/oauth/v1/authorize', 'a=b');
    expect(wrongAuthorize.status).toBe(405);
    expect(wrongAuthorize.headers.get('allow')).toBe('GET');
  });

  it('refuses bodies over 16 KiB with 413', async () => {
    const res = await postForm('/oauth/v1/token', `grant_type=${'a'.repeat(20 * 1024)}`);
    expect(res.status).toBe(413);
    await res.arrayBuffer();
    // Without a Content-Length (chunked), the cap holds while reading.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${emulator.baseUrl}/oauth/v1/health_check`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (answer) => {
        answer.resume();
        resolve(answer.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write(`client_id=${'c'.repeat(1024)}&`);
      req.end();
    });
    expect(chunked).toBe(413);
    await expect(client().healthCheck()).resolves.toBeTruthy();
  });

  it('survives malformed input and keeps answering', async () => {
    const inputs = [
      'client_id=%%%&client_assertion=%E0%A4%A',
      'client_id=a&client_id=b&client_assertion=x',
      Buffer.from([0xff, 0xfe, 0x3d, 0x00]).toString('latin1'),
      '&&&===',
      `client_id=${emulator.clientId}&client_assertion=${'a.b.c'}`,
      `client_id=${emulator.clientId}&client_assertion=${Buffer.from('{"alg":"HS512"}').toString('base64url')}.W10.AAAA`,
    ];
    for (const body of inputs) {
      for (const path of ['/oauth/v1/health_check', '/oauth/v1/token', '/emulator/decision']) {
        const res = await postForm(path, body);
        expect(res.status, `${path} ${body}`).toBe(400);
        await res.arrayBuffer();
      }
    }
    // Invalid UTF-8 bytes in the body.
    const binary = await fetch(`${emulator.baseUrl}/oauth/v1/token`, { method: 'POST', body: new Uint8Array([0x63, 0x3d, 0xc3, 0x28]) });
    expect(binary.status).toBe(400);
    await expect(client().healthCheck()).resolves.toBeTruthy();
  });

  it('keeps connections alive between requests', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (): Promise<{ reused: boolean; status: number }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(`${emulator.baseUrl}/oauth/v1/nothing`, { agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ reused: req.reusedSocket, status: res.statusCode ?? 0 }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await get()).toEqual({ reused: false, status: 404 });
      expect(await get()).toEqual({ reused: true, status: 404 });
      expect(await get()).toEqual({ reused: true, status: 404 });
    } finally {
      agent.destroy();
    }
  });

  it('logs one line per request without secrets, codes, tokens, assertions or states', async () => {
    logLines.length = 0;
    const request = await requestJwt({ nonce: 'k'.repeat(32), state: 'Z'.repeat(40) });
    const location = new URL(await emulator.authorize(authorizeUrl(request)));
    const code = location.searchParams.get('duo_code')!;
    const form = await tokenForm(code);
    const raw = await rawToken(form);
    await rawToken(form); // replayed: refused, still logged
    const sensitive = [emulator.clientSecret, request, code, 'Z'.repeat(40), 'k'.repeat(32), form.client_assertion!, String(raw.body.id_token), String(raw.body.access_token)];
    expect(logLines.length).toBe(3);
    for (const line of logLines) {
      for (const secret of sensitive) expect(line).not.toContain(secret);
    }
    expect(logLines.join('\n')).toMatch(/GET \/oauth\/v1\/authorize -> 302/);
    expect(logLines.join('\n')).toMatch(/POST \/oauth\/v1\/token -> 400 invalid_client/);
  });

  it('close() ends hung connections (no_answer) and refuses new ones', async () => {
    const hanging = await DuoEmulator.start();
    hanging.setFailure('no_answer');
    const pending = fetch(`${hanging.baseUrl}/oauth/v1/health_check`, { method: 'POST', body: 'a=b' }).then(
      () => 'answered',
      () => 'failed',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await hanging.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await pending).toBe('failed');
    await expect(fetch(`${hanging.baseUrl}/oauth/v1/health_check`, { method: 'POST' })).rejects.toThrow();
    await hanging.close(); // idempotent
  });
});

describe('HTTPS', () => {
  let key: string;
  let cert: string;
  let secure: DuoEmulator;

  beforeAll(async () => {
    ({ key, cert } = selfSignedCertificate());
    secure = await DuoEmulator.start({ tls: { key, cert } });
  });

  afterAll(async () => {
    await secure?.close();
  });

  it('serves https; our client trusts it with the ca option and completes a login', async () => {
    expect(secure.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const duo = client({ ca: cert }, secure);
    await expect(duo.healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    const start = await duo.startAuthorization('bob');
    const location = new URL(await secure.authorize(start.url));
    const claims = await duo.exchangeAuthorizationCode(location.searchParams.get('duo_code')!, 'bob', start.nonce);
    expect(claims.iss).toBe(`${secure.baseUrl}/oauth/v1/token`);
    expect(claims.preferred_username).toBe('bob');
  });

  it('a client without the ca refuses the self-signed certificate', async () => {
    await expectDuoError(client({}, secure).healthCheck(), 'duo_tls_failed');
  });
});
