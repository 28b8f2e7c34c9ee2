import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoClient, DuoConfigError, resolveClientConfig } from '../../src/protocol/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { selfSignedCertificate } from '../support/tls.js';
import { expectDuoError, expectNoLeak } from './helpers.js';

/** A real HTTP CONNECT proxy on 127.0.0.1 that records the tunnels it opens. */
let proxy: Server;
let proxyUrl: string;
const tunnels: string[] = [];
const sockets = new Set<Socket>();
const authorizations: Array<string | undefined> = [];
/** When set, the proxy answers 407 to a CONNECT without exactly this Proxy-Authorization. */
let requiredAuthorization: string | undefined;
let emulator: DuoEmulator;
let cert: string;

const PROXY_USER = 'duo-proxy-user';
const PROXY_PASSWORD = 'Pr0xy-Pa55w0rd-SECRET';
const credentialed = (port: number | string, password = PROXY_PASSWORD): string => `http://${PROXY_USER}:${password}@127.0.0.1:${port}`;
/** Everything that must never be printed: the password, the user, their Basic encoding, the URL. */
const proxySecrets = (url: string): string[] => [PROXY_PASSWORD, PROXY_USER, Buffer.from(`${PROXY_USER}:${PROXY_PASSWORD}`).toString('base64'), url];

/** Every printable view of a value: inspect with everything shown (getters run too), JSON, String. */
function printed(value: unknown): string {
  return [
    inspect(value, { showHidden: true, depth: Number.POSITIVE_INFINITY }),
    inspect(value, { showHidden: true, depth: Number.POSITIVE_INFINITY, getters: true }),
    JSON.stringify(value) ?? '',
    String(value),
  ].join('\n');
}

function expectHidden(value: unknown, url: string): void {
  const text = printed(value);
  for (const secret of proxySecrets(url)) expect(text, 'a printed view shows a proxy credential').not.toContain(secret);
}

beforeAll(async () => {
  const tls = selfSignedCertificate();
  cert = tls.cert;
  emulator = await DuoEmulator.start({ tls });

  proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
    authorizations.push(req.headers['proxy-authorization']);
    if (requiredAuthorization !== undefined && req.headers['proxy-authorization'] !== requiredAuthorization) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => proxy.close(resolve));
  await emulator.close();
});

describe('the proxy option', () => {
  it('sends every call to Duo through the HTTPS proxy, TLS end to end with the custom CA', async () => {
    const client = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), ca: cert, proxy: proxyUrl });
    const target = new URL(emulator.baseUrl).host;
    await client.healthCheck();
    const { url, nonce } = await client.startAuthorization('alice');
    const code = new URL(await emulator.authorize(url)).searchParams.get('duo_code')!;
    const claims = await client.exchangeAuthorizationCode(code, 'alice', nonce);
    expect(claims.preferred_username).toBe('alice');
    expect(tunnels.length).toBeGreaterThan(0);
    expect(tunnels.every((tunnel) => tunnel === target)).toBe(true);
    await client.close();
  });

  it('without the proxy option the proxy sees nothing', async () => {
    const before = tunnels.length;
    const client = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), ca: cert });
    await client.healthCheck();
    expect(tunnels.length).toBe(before);
    await client.close();
  });

  it('a proxy that is down gives duo_unavailable, not a hang or a crash', async () => {
    const client = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), ca: cert, proxy: 'http://127.0.0.1:1', timeoutMs: 1000 });
    await expect(client.healthCheck()).rejects.toMatchObject({ code: 'duo_unavailable' });
    await client.close();
  });
});

describe('proxy credentials never show', () => {
  const port = (): string => new URL(proxyUrl).port;

  it('resolveClientConfig(): the proxy is shown with *** for user and password, in every printable view', () => {
    const url = credentialed(port());
    const config = resolveClientConfig({ ...emulator.clientOptions('https://app.example.com/duo/callback'), proxy: url });
    expect(config.proxy).toBe(`http://***:***@127.0.0.1:${port()}/`);
    expectHidden(config, url);
    expectHidden({ nested: { config } }, url);
  });

  it('new DuoClient(): nothing it holds prints the credentials, and yet the proxy gets them', async () => {
    const url = credentialed(port());
    requiredAuthorization = `Basic ${Buffer.from(`${PROXY_USER}:${PROXY_PASSWORD}`).toString('base64')}`;
    const client = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), ca: cert, proxy: url });
    try {
      expectHidden(client, url);
      expectHidden(client.config, url);
      const before = authorizations.length;
      await client.healthCheck();
      const { url: authUrl, nonce } = await client.startAuthorization('alice');
      const code = new URL(await emulator.authorize(authUrl)).searchParams.get('duo_code')!;
      await expect(client.exchangeAuthorizationCode(code, 'alice', nonce)).resolves.toMatchObject({ preferred_username: 'alice' });
      // undici sent the credentials to the proxy on every tunnel it opened.
      expect(authorizations.slice(before).length).toBeGreaterThan(0);
      expect(authorizations.slice(before).every((header) => header === requiredAuthorization)).toBe(true);
      // After use, too: nothing printable picked them up.
      expectHidden(client, url);
    } finally {
      requiredAuthorization = undefined;
      await client.close();
    }
  });

  it('a proxy without credentials is shown as given', () => {
    const config = resolveClientConfig({ ...emulator.clientOptions('https://app.example.com/duo/callback'), proxy: proxyUrl });
    expect(config.proxy).toBe(proxyUrl);
  });

  it('a proxy that refuses the credentials (407): duo_request_rejected naming the proxy credentials, never them, and never duo_unavailable', async () => {
    requiredAuthorization = `Basic ${Buffer.from(`${PROXY_USER}:${PROXY_PASSWORD}`).toString('base64')}`;
    const wrong = credentialed(port(), 'Wr0ng-Pa55w0rd-SECRET');
    const client = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), ca: cert, proxy: wrong });
    try {
      const error = await expectDuoError(client.healthCheck(), 'duo_request_rejected', ['Wr0ng-Pa55w0rd-SECRET', PROXY_USER, wrong]);
      expect(error.message).toMatch(/407/);
      expect(error.message).toMatch(/proxy/);
      expect(error.message).toMatch(/credentials|user and password/);
      const exchange = await expectDuoError(client.exchangeAuthorizationCode('some-code-0123456789', 'alice', 'n0nce-0123456789abcdef'), 'duo_request_rejected', [
        'Wr0ng-Pa55w0rd-SECRET',
        PROXY_USER,
        wrong,
      ]);
      expect(exchange.message).toMatch(/token exchange/);
    } finally {
      requiredAuthorization = undefined;
      await client.close();
    }
  });

  it('a TLS failure through a credentialed proxy: duo_tls_failed, without the credentials', async () => {
    const url = credentialed(port());
    const client = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), proxy: url });
    try {
      const error = await expectDuoError(client.healthCheck(), 'duo_tls_failed', proxySecrets(url));
      expect(error.message).toContain('DEPTH_ZERO_SELF_SIGNED_CERT');
    } finally {
      await client.close();
    }
  });

  it('a credentialed proxy that is down: duo_unavailable, without the credentials', async () => {
    const url = credentialed(1);
    const client = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), ca: cert, proxy: url, timeoutMs: 1000 });
    try {
      const error = await expectDuoError(client.healthCheck(), 'duo_unavailable', proxySecrets(url));
      expectNoLeak(error, proxySecrets(url));
    } finally {
      await client.close();
    }
  });

  it('a credentialed proxy URL that is refused by validation is not echoed either', () => {
    const url = `socks5://${PROXY_USER}:${PROXY_PASSWORD}@127.0.0.1:1080`;
    let caught: unknown;
    try {
      resolveClientConfig({ ...emulator.clientOptions('https://app.example.com/duo/callback'), proxy: url });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DuoConfigError);
    expectNoLeak(caught, proxySecrets(url));
  });
});
