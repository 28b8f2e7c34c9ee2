/**
 * TLS and certificate failures are never "Duo is unavailable": that code lets
 * fail mode "open" through, and a certificate Duo's client refuses is a
 * misconfiguration (or an attack), not an outage. Real TLS servers on
 * 127.0.0.1, each differing from a working one in one thing only.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoClient, DuoError, type DuoClientOptions } from '../../src/protocol/index.js';
import { TLS_FAILURE_CODES, tlsFailureCode } from '../../src/protocol/http.js';
import { selfSignedCertificate } from '../support/tls.js';
import { expectDuoError, localOptions, nowSeconds, sendJson, startServer, type TestServer } from './helpers.js';
import { makeTestPki, type KeyAndCertificate, type TestPki } from './tls-certificates.js';
import { statusOf } from '../../src/duo.errors.js';

let pki: TestPki;
const servers: Array<{ close(): Promise<void> }> = [];
const clients: DuoClient[] = [];

/** An HTTPS "Duo" on 127.0.0.1 that answers every health check OK and every token call invalid_grant. */
async function tlsDuo(credentials: KeyAndCertificate): Promise<string> {
  const sockets = new Set<Socket>();
  const server: HttpsServer = createHttpsServer(credentials, (req, res) => {
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
  // TLS alerts the client sends when it refuses our certificate end up here: expected, not a test failure.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function client(baseUrl: string, overrides: Partial<DuoClientOptions> = {}): DuoClient {
  const made = new DuoClient(localOptions(baseUrl, overrides));
  clients.push(made);
  return made;
}

/** The message of a TLS failure names the failing code and the fixes, and nothing of the URL. */
function expectTlsMessage(error: DuoError, code: string, baseUrl: string): void {
  expect(statusOf(error.code)).toBe(502);
  expect(error.message).toContain(code);
  expect(error.message).toMatch(/"ca" option/);
  expect(error.message).toMatch(/apiHost|apiBaseUrl/);
  expect(error.message).not.toContain(baseUrl);
  expect(error.message).not.toMatch(/https?:\/\//);
  expect(error.message).not.toMatch(/unavailable/i);
}

beforeAll(() => {
  pki = makeTestPki();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

describe('a working TLS setup (the control every failure below differs from)', () => {
  it('a leaf of the test root, trusted through the ca option: health check and token call reach the server', async () => {
    const baseUrl = await tlsDuo(pki.good);
    const duo = client(baseUrl, { ca: pki.rootCa });
    await expect(duo.healthCheck()).resolves.toMatchObject({ timestamp: expect.any(Number) });
    await expectDuoError(duo.exchangeAuthorizationCode('some-code-1234567', 'alice', 'n0nce-0123456789abcdef'), 'code_invalid');
  });
});

describe('certificate failures: duo_tls_failed (502), never duo_unavailable', () => {
  it('an untrusted self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)', async () => {
    const baseUrl = await tlsDuo(selfSignedCertificate());
    const error = await expectDuoError(client(baseUrl).healthCheck(), 'duo_tls_failed');
    expectTlsMessage(error, 'DEPTH_ZERO_SELF_SIGNED_CERT', baseUrl);
  });

  it('a certificate from a CA this server does not trust, as behind a TLS-inspecting proxy (UNABLE_TO_VERIFY_LEAF_SIGNATURE)', async () => {
    const baseUrl = await tlsDuo(pki.good);
    const error = await expectDuoError(client(baseUrl).healthCheck(), 'duo_tls_failed');
    expectTlsMessage(error, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', baseUrl);
    expect(error.message).toMatch(/TLS-inspecting proxy/);
  });

  it('a trusted certificate for another hostname (ERR_TLS_CERT_ALTNAME_INVALID)', async () => {
    const baseUrl = await tlsDuo(pki.otherHost);
    const error = await expectDuoError(client(baseUrl, { ca: pki.rootCa }).healthCheck(), 'duo_tls_failed');
    expectTlsMessage(error, 'ERR_TLS_CERT_ALTNAME_INVALID', baseUrl);
  });

  it('a trusted but expired certificate (CERT_HAS_EXPIRED), with a word about the clock', async () => {
    const baseUrl = await tlsDuo(pki.expired);
    const error = await expectDuoError(client(baseUrl, { ca: pki.rootCa }).healthCheck(), 'duo_tls_failed');
    expectTlsMessage(error, 'CERT_HAS_EXPIRED', baseUrl);
    expect(error.message).toMatch(/clock/);
  });

  it('the token exchange reports a certificate failure the same way', async () => {
    const baseUrl = await tlsDuo(selfSignedCertificate());
    const code = 'authorization-code-not-to-be-shown';
    const error = await expectDuoError(client(baseUrl).exchangeAuthorizationCode(code, 'alice', 'n0nce-0123456789abcdef'), 'duo_tls_failed', [code]);
    expectTlsMessage(error, 'DEPTH_ZERO_SELF_SIGNED_CERT', baseUrl);
    expect(error.message).toMatch(/token exchange/);
  });
});

describe('handshake failures: duo_tls_failed', () => {
  let plain: TestServer;
  beforeAll(async () => {
    plain = await startServer((_req, res) => sendJson(res, 200, { stat: 'OK', response: { timestamp: nowSeconds() } }));
    servers.push(plain);
  });

  it('https spoken to a plain-HTTP server (ERR_SSL_WRONG_VERSION_NUMBER)', async () => {
    const baseUrl = `https://127.0.0.1:${plain.port}`;
    const error = await expectDuoError(client(baseUrl).healthCheck(), 'duo_tls_failed');
    expectTlsMessage(error, 'ERR_SSL_WRONG_VERSION_NUMBER', baseUrl);
    expect(error.message).toMatch(/handshake/);
  });
});

describe('tlsFailureCode: which network errors are TLS failures', () => {
  const withCode = (code: string, cause?: unknown): Error => Object.assign(new Error(`failure ${code}`), { code, ...(cause ? { cause } : {}) });

  // Every code Node gives a certificate verification failure (X509ErrorCode in src/crypto/crypto_common.cc).
  const NODE_X509_CODES = [
    'UNABLE_TO_GET_ISSUER_CERT',
    'UNABLE_TO_GET_CRL',
    'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
    'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
    'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
    'CERT_SIGNATURE_FAILURE',
    'CRL_SIGNATURE_FAILURE',
    'CERT_NOT_YET_VALID',
    'CERT_HAS_EXPIRED',
    'CRL_NOT_YET_VALID',
    'CRL_HAS_EXPIRED',
    'ERROR_IN_CERT_NOT_BEFORE_FIELD',
    'ERROR_IN_CERT_NOT_AFTER_FIELD',
    'ERROR_IN_CRL_LAST_UPDATE_FIELD',
    'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
    'OUT_OF_MEM',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'CERT_CHAIN_TOO_LONG',
    'CERT_REVOKED',
    'INVALID_CA',
    'PATH_LENGTH_EXCEEDED',
    'INVALID_PURPOSE',
    'CERT_UNTRUSTED',
    'CERT_REJECTED',
    'HOSTNAME_MISMATCH',
    'UNSPECIFIED',
  ];

  it.each(NODE_X509_CODES)('%s (certificate verification)', (code) => {
    expect(TLS_FAILURE_CODES.has(code)).toBe(true);
    expect(tlsFailureCode(withCode(code))).toBe(code);
  });

  it.each([
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'ERR_TLS_HANDSHAKE_TIMEOUT',
    'ERR_TLS_INVALID_PROTOCOL_VERSION',
    'ERR_SSL_WRONG_VERSION_NUMBER',
    'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION',
    'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
    'ERR_SSL_PACKET_LENGTH_TOO_LONG',
    'ERR_OSSL_PEM_NO_START_LINE',
    'EPROTO',
    'UND_ERR_PRX_TLS',
  ])('%s (handshake, protocol, OpenSSL)', (code) => {
    expect(tlsFailureCode(withCode(code))).toBe(code);
  });

  it('finds the TLS code anywhere in the cause chain, and names it rather than the wrapper', () => {
    const deep = withCode('UND_ERR_SOCKET', withCode('UND_ERR_CONNECT', withCode('CERT_HAS_EXPIRED')));
    expect(tlsFailureCode(deep)).toBe('CERT_HAS_EXPIRED');
    const wrapped = withCode('UND_ERR_PRX_TLS', withCode('SELF_SIGNED_CERT_IN_CHAIN'));
    expect(tlsFailureCode(wrapped)).toBe('SELF_SIGNED_CERT_IN_CHAIN');
  });

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'UND_ERR_SOCKET', 'ERR_SOMETHING_ELSE'])(
    '%s is not a TLS failure',
    (code) => {
      expect(tlsFailureCode(withCode(code))).toBeUndefined();
    },
  );

  it('survives a cause cycle and values that are not errors', () => {
    const a = withCode('UND_ERR_SOCKET') as Error & { cause?: unknown };
    a.cause = a;
    expect(tlsFailureCode(a)).toBeUndefined();
    for (const value of [undefined, null, 'CERT_HAS_EXPIRED', 42, { code: 7 }]) expect(tlsFailureCode(value)).toBeUndefined();
  });
});
