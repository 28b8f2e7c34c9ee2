/**
 * Duo's CA pinning (issue 12 item 4): with `tls.pinning` "duo" only the root CAs
 * Duo's SDKs pin (as Node ships them) and `ca` are trusted; a certificate outside
 * that set fails closed with `duo_tls_pinning_failed`. Real TLS servers on
 * 127.0.0.1 with certificates of a private CA (tls-certificates.ts), directly and
 * through a CONNECT proxy; the per-host defaults; the User-Agent; startup errors.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { rootCertificates } from 'node:tls';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DUO_PROTOCOL_ERROR_CODES,
  DuoClient,
  DuoConfigError,
  DuoError,
  NESTJS_DUO_VERSION,
  isDuoError,
  resolveClientConfig,
  type DuoClientOptions,
} from '../../src/protocol/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { DUO_CA_BUNDLE_VERSION, DUO_PINNED_ROOTS } from '../../src/protocol/duo-roots.js';
import { pinnedRootCertificates, trustedCertificates } from '../../src/protocol/http.js';
import { FAIL_OPEN_CODES } from '../../src/duo-health.js';
import { statusOf } from '../../src/duo.errors.js';
import { CLIENT_SECRET, expectDuoError, expectDuoErrorSync, localOptions, nowSeconds, sendJson, validOptions } from './helpers.js';
import { selfSignedCertificate } from '../support/tls.js';
import { makeTestPki, type KeyAndCertificate, type TestPki } from './tls-certificates.js';

let pki: TestPki;
const closers: Array<() => Promise<void>> = [];
const clients: DuoClient[] = [];

interface TlsDuo {
  url: string;
  /** The User-Agent of each request that got through TLS. */
  userAgents: string[];
}

/** An HTTPS "Duo" on 127.0.0.1: health checks OK, token calls invalid_grant; records what reached it. */
async function tlsDuo(credentials: KeyAndCertificate): Promise<TlsDuo> {
  const sockets = new Set<Socket>();
  const userAgents: string[] = [];
  const server: HttpsServer = createHttpsServer(credentials, (req, res) => {
    userAgents.push(String(req.headers['user-agent']));
    req.resume();
    req.on('end', () => {
      if (req.url?.endsWith('/token')) sendJson(res, 400, { error: 'invalid_grant' });
      else sendJson(res, 200, { stat: 'OK', response: { timestamp: nowSeconds() } });
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // The alert the client sends when it refuses the certificate: expected.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, userAgents };
}

/** A CONNECT proxy on 127.0.0.1 that tunnels to anything and counts its tunnels. */
async function connectProxy(): Promise<{ url: string; tunnels: string[] }> {
  const sockets = new Set<Socket>();
  const tunnels: string[] = [];
  const proxy: HttpServer = createHttpServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    tunnels.push(req.url ?? '');
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
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, tunnels };
}

function client(baseUrl: string, overrides: Partial<DuoClientOptions> = {}): DuoClient {
  const made = new DuoClient(localOptions(baseUrl, overrides));
  clients.push(made);
  return made;
}

/** What a pinning failure must say: its own code, 502, Node's code, the two ways out behind a proxy, and no URL. */
function expectPinningMessage(error: DuoError, baseUrl: string): void {
  expect(error.code).toBe('duo_tls_pinning_failed');
  expect(statusOf(error.code)).toBe(502);
  expect(error.message).toMatch(/\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/);
  expect(error.message).toContain("root CAs Duo pins");
  expect(error.message).toContain('TLS-inspecting proxy');
  expect(error.message).toContain(`tls: { pinning: 'system' }`);
  expect(error.message).toContain('"ca" option');
  expect(error.message).not.toContain(baseUrl);
  expect(error.message).not.toMatch(/https?:\/\//);
  expect(error.message).not.toMatch(/unavailable/i);
}

beforeAll(() => {
  pki = makeTestPki();
});

afterAll(async () => {
  await Promise.all(clients.map((made) => made.close()));
  for (const close of closers) await close();
});

describe('pinning "duo": a certificate outside the pinned set fails closed with duo_tls_pinning_failed', () => {
  it('a leaf of a private CA, pinning forced on a local apiBaseUrl: the health check fails, and nothing reaches the server', async () => {
    const duo = await tlsDuo(pki.good);
    const made = client(duo.url, { tls: { pinning: 'duo' } });
    expect(made.config.tls.pinning).toBe('duo');
    const error = await expectDuoError(made.healthCheck(), 'duo_tls_pinning_failed');
    expectPinningMessage(error, duo.url);
    expect(duo.userAgents).toEqual([]);
  });

  it('the token call too: duo_tls_pinning_failed, and the code is never echoed', async () => {
    const duo = await tlsDuo(pki.good);
    const code = 'pinned-code-0123456789';
    const error = await expectDuoError(
      client(duo.url, { tls: { pinning: 'duo' } }).exchangeAuthorizationCode(code, 'alice', 'n0nce-0123456789abcdef'),
      'duo_tls_pinning_failed',
      [code, CLIENT_SECRET],
    );
    expectPinningMessage(error, duo.url);
    expect(duo.userAgents).toEqual([]);
  });

  it('through a CONNECT proxy: the tunnelled TLS is pinned too', async () => {
    const duo = await tlsDuo(pki.good);
    const proxy = await connectProxy();
    const error = await expectDuoError(client(duo.url, { tls: { pinning: 'duo' }, proxy: proxy.url }).healthCheck(), 'duo_tls_pinning_failed');
    expectPinningMessage(error, duo.url);
    expect(proxy.tunnels).toEqual([new URL(duo.url).host]);
    expect(duo.userAgents).toEqual([]);
  });

  it('the same server without pinning and without ca is duo_tls_failed: the pinning code means pinning refused it', async () => {
    const duo = await tlsDuo(pki.good);
    const error = await expectDuoError(client(duo.url, { tls: { pinning: 'system' } }).healthCheck(), 'duo_tls_failed');
    expect(error.message).not.toContain('pinning');
  });

  it('pinning does not hide other failures: an expired leaf of a trusted CA stays duo_tls_failed (CERT_HAS_EXPIRED)', async () => {
    const duo = await tlsDuo(pki.expired);
    const error = await expectDuoError(client(duo.url, { tls: { pinning: 'duo' }, ca: pki.rootCa }).healthCheck(), 'duo_tls_failed');
    expect(error.message).toContain('CERT_HAS_EXPIRED');
  });

  it('a leaf for another host name stays duo_tls_failed with pinning on (the host name is still checked)', async () => {
    const duo = await tlsDuo(pki.otherHost);
    const error = await expectDuoError(client(duo.url, { tls: { pinning: 'duo' }, ca: pki.rootCa }).healthCheck(), 'duo_tls_failed');
    expect(error.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH/);
  });

  it('never fails open: duo_tls_pinning_failed is not among the codes fail mode "open" lets through', () => {
    expect(DUO_PROTOCOL_ERROR_CODES).toContain('duo_tls_pinning_failed');
    expect(FAIL_OPEN_CODES.has('duo_tls_pinning_failed')).toBe(false);
  });
});

describe('the way out behind a TLS-inspecting proxy', () => {
  it('pinning "system" + ca (the proxy\'s CA): health check and token call reach the server', async () => {
    const duo = await tlsDuo(pki.good);
    const made = client(duo.url, { tls: { pinning: 'system' }, ca: pki.rootCa });
    await expect(made.healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    await expectDuoError(made.exchangeAuthorizationCode('some-code-1234567', 'alice', 'n0nce-0123456789abcdef'), 'code_invalid');
    expect(duo.userAgents).toHaveLength(2);
  });

  it('pinning "duo" + ca: the ca is trusted beside Duo\'s roots, so the proxy\'s CA alone is enough', async () => {
    const duo = await tlsDuo(pki.good);
    await expect(client(duo.url, { tls: { pinning: 'duo' }, ca: pki.rootCa }).healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
  });

  it('pinning "system" + ca through a CONNECT proxy: a whole login against the emulator over TLS', async () => {
    const tls = selfSignedCertificate();
    const emulator = await DuoEmulator.start({ tls });
    closers.push(() => emulator.close());
    const proxy = await connectProxy();
    const made = new DuoClient({ ...emulator.clientOptions('https://app.example.com/duo/callback'), ca: tls.cert, proxy: proxy.url, tls: { pinning: 'system' } });
    clients.push(made);
    await made.healthCheck();
    const { url, nonce } = await made.startAuthorization('alice');
    const code = new URL(await emulator.authorize(url)).searchParams.get('duo_code')!;
    await expect(made.exchangeAuthorizationCode(code, 'alice', nonce)).resolves.toMatchObject({ preferred_username: 'alice' });
    expect(proxy.tunnels.length).toBeGreaterThan(0);
  });
});

describe('the default per host', () => {
  it.each([
    ['apiHost api-1234abcd.duosecurity.com', { apiHost: 'api-1234abcd.duosecurity.com' }, 'duo'],
    ['apiHost in capitals', { apiHost: 'API-1234ABCD.DuoSecurity.COM' }, 'duo'],
    ['apiHost api-1234abcd.duofederal.com (Duo Federal)', { apiHost: 'api-1234abcd.duofederal.com' }, 'duo'],
    ['apiBaseUrl naming Duo\'s own host', { apiBaseUrl: 'https://api-1234abcd.duosecurity.com' }, 'duo'],
    ["apiBaseUrl naming Duo's own host with a trailing dot (the same host)", { apiBaseUrl: 'https://api-1234abcd.duosecurity.com.' }, 'duo'],
    ['the emulator over http', { apiBaseUrl: 'http://127.0.0.1:4000' }, 'system'],
    ['the emulator over https on loopback', { apiBaseUrl: 'https://127.0.0.1:4443' }, 'system'],
    ['a test double on another host', { apiBaseUrl: 'https://duo-emulator.example.com' }, 'system'],
    ['a look-alike: duosecurity.com.evil.example', { apiBaseUrl: 'https://duosecurity.com.evil.example' }, 'system'],
    ['a look-alike: evilduosecurity.com', { apiBaseUrl: 'https://api-1.evilduosecurity.com' }, 'system'],
    ['Duo\'s host, pinning turned off', { apiHost: 'api-1234abcd.duosecurity.com', tls: { pinning: 'system' } }, 'system'],
    ['a test double, pinning forced on', { apiBaseUrl: 'https://duo-emulator.example.com', tls: { pinning: 'duo' } }, 'duo'],
    ['tls: {} (nothing set)', { apiHost: 'api-1234abcd.duofederal.com', tls: {} }, 'duo'],
  ] as Array<[string, Partial<DuoClientOptions>, 'duo' | 'system']>)('%s: %s', (_name, overrides, pinning) => {
    expect(resolveClientConfig(validOptions(overrides)).tls.pinning).toBe(pinning);
  });

  it('the resolved tls settings are frozen', () => {
    const config = resolveClientConfig(validOptions());
    expect(Object.isFrozen(config.tls)).toBe(true);
  });
});

describe('the pinned set is Duo\'s roots as this Node ships them', () => {
  /** The roots of Duo's bundle that Node 20, 22, 24 and 26 all ship (see src/protocol/duo-roots.ts). */
  const IN_EVERY_NODE = [
    'Amazon Root CA 1',
    'Amazon Root CA 2',
    'Amazon Root CA 3',
    'Amazon Root CA 4',
    'Starfield Services Root Certificate Authority - G2',
    'Starfield Root Certificate Authority - G2',
    'DigiCert TLS ECC P384 Root G5',
    'DigiCert TLS RSA4096 Root G5',
    'GlobalSign Root R46',
    'GlobalSign Root E46',
    'GTS Root R4',
    'IdenTrust Commercial Root CA 1',
  ];
  const commonName = (x509: X509Certificate): string | undefined => /^CN=(.*)$/m.exec(x509.subject)?.[1];

  it('lists 15 roots with well-formed, distinct SHA-256 fingerprints', () => {
    expect(DUO_PINNED_ROOTS).toHaveLength(15);
    for (const root of DUO_PINNED_ROOTS) expect(root.sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(new Set(DUO_PINNED_ROOTS.map((root) => root.sha256)).size).toBe(15);
  });

  it('every pinned PEM is one of Node\'s tls.rootCertificates, with the subject and fingerprint the list gives', () => {
    const pinned = pinnedRootCertificates();
    const bySha = new Map(DUO_PINNED_ROOTS.map((root) => [root.sha256, root]));
    for (const pem of pinned) {
      expect(rootCertificates).toContain(pem);
      const x509 = new X509Certificate(pem);
      // The fingerprint is SHA-256 of the DER: computed here too, not only read from Node.
      const der = x509.raw;
      const sha = createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
      expect(sha).toBe(x509.fingerprint256);
      const listed = bySha.get(sha);
      expect(listed, `${x509.subject} is pinned but not listed`).toBeDefined();
      expect(listed!.subject).toBe(x509.subject.split('\n').reverse().join(', '));
    }
  });

  it('finds each listed root this Node ships, and only those', () => {
    const shipped = new Set(rootCertificates.map((pem) => new X509Certificate(pem).fingerprint256));
    const expected = DUO_PINNED_ROOTS.filter((root) => shipped.has(root.sha256)).map((root) => root.sha256);
    expect(pinnedRootCertificates().map((pem) => new X509Certificate(pem).fingerprint256)).toEqual(expected);
  });

  it('holds at least the 12 roots Node 20, 22, 24 and 26 all ship', () => {
    const names = pinnedRootCertificates().map((pem) => commonName(new X509Certificate(pem)));
    for (const name of IN_EVERY_NODE) expect(names, name).toContain(name);
    expect(names.length).toBeGreaterThanOrEqual(IN_EVERY_NODE.length);
  });

  it('the secure context trusts exactly the pinned PEMs (plus ca); "system" keeps Node\'s default trust', () => {
    expect(trustedCertificates('duo', undefined)).toEqual([...pinnedRootCertificates()]);
    expect(trustedCertificates('duo', pki.rootCa)).toEqual([...pinnedRootCertificates(), pki.rootCa]);
    expect(trustedCertificates('duo', [pki.rootCa, pki.rootCa])).toEqual([...pinnedRootCertificates(), pki.rootCa, pki.rootCa]);
    expect(trustedCertificates('system', undefined)).toBeUndefined();
    const system = trustedCertificates('system', pki.rootCa)!;
    expect(system.at(-1)).toBe(pki.rootCa);
    for (const pem of rootCertificates) expect(system).toContain(pem);
  });
});

describe('the User-Agent says whether pinning is on, as Duo\'s SDKs do', () => {
  const shape = (state: 'enabled' | 'disabled'): RegExp =>
    new RegExp(
      `^nestjs-duo/${NESTJS_DUO_VERSION.replaceAll('.', '\\.')} node/${process.versions.node.replaceAll('.', '\\.')} ca_bundle/${DUO_CA_BUNDLE_VERSION.replaceAll('.', '\\.')} \\(ca_pinning=${state}\\)$`,
    );

  it('pinning "duo": (ca_pinning=enabled), with the bundle version 1.0', async () => {
    const duo = await tlsDuo(pki.good);
    await client(duo.url, { tls: { pinning: 'duo' }, ca: pki.rootCa }).healthCheck();
    expect(DUO_CA_BUNDLE_VERSION).toBe('1.0');
    expect(duo.userAgents).toHaveLength(1);
    expect(duo.userAgents[0]).toMatch(shape('enabled'));
  });

  it('pinning "system": (ca_pinning=disabled)', async () => {
    const duo = await tlsDuo(pki.good);
    await client(duo.url, { tls: { pinning: 'system' }, ca: pki.rootCa }).healthCheck();
    expect(duo.userAgents[0]).toMatch(shape('disabled'));
  });
});

describe('tls: mistakes are reported at startup, naming the option', () => {
  const refuses = (overrides: Record<string, unknown>, option: string): DuoConfigError => {
    const error = expectDuoErrorSync(() => client('https://127.0.0.1:1', overrides as Partial<DuoClientOptions>), 'config_invalid');
    expect(error).toBeInstanceOf(DuoConfigError);
    expect(error.message).toContain(`"${option}"`);
    return error as DuoConfigError;
  };

  it.each(['on', 'DUO', 'pinned', 'none', true, false, 1])('refuses tls.pinning = %s, naming both values', (pinning) => {
    const message = refuses({ tls: { pinning } }, 'tls.pinning').message;
    if (typeof pinning === 'string') expect(message).toMatch(/must be "duo" .* or "system"/);
  });

  it.each([
    ['null', null],
    ['a string', 'duo'],
    ['a list', ['duo']],
    ['a boolean', true],
  ])('refuses tls that is %s', (_name, tls) => {
    expect(refuses({ tls }, 'tls').message).toMatch(/must be an object such as \{ pinning: 'system' \}/);
  });

  it('refuses an unknown key in tls (a typo would silently keep the default)', () => {
    refuses({ tls: { pinnig: 'system' } }, 'tls.pinnig');
  });

  it('refuses pinning "duo" over plain http (the emulator): there is no TLS to pin', () => {
    const message = refuses({ apiBaseUrl: 'http://127.0.0.1:4000', tls: { pinning: 'duo' } }, 'tls.pinning').message;
    expect(message).toMatch(/plain http/);
  });
});

describe('the error, through the public API (nestjs-duo/protocol)', () => {
  it('is a DuoError with its own code, a JSON and inspect form without the URL, and status 502 in the Nest layer', async () => {
    const duo = await tlsDuo(pki.good);
    const caught = await client(duo.url, { tls: { pinning: 'duo' } })
      .healthCheck()
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(caught).toBeInstanceOf(DuoError);
    expect(isDuoError(caught)).toBe(true);
    const error = caught as DuoError;
    expect(error.name).toBe('DuoError');
    expect(error.toJSON()).toEqual({ name: 'DuoError', code: 'duo_tls_pinning_failed', message: error.message });
    expect(inspect(error)).toContain('DuoError [duo_tls_pinning_failed]:');
    expect(inspect(error)).not.toContain(duo.url);
    expect(statusOf(error.code)).toBe(502);
  });
});
