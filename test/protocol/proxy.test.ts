import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoClient } from '../../src/protocol/index.js';
import { DuoEmulator } from '../../src/testing/index.js';
import { selfSignedCertificate } from '../support/tls.js';

/** A real HTTP CONNECT proxy on 127.0.0.1 that records the tunnels it opens. */
let proxy: Server;
let proxyUrl: string;
const tunnels: string[] = [];
const sockets = new Set<Socket>();
let emulator: DuoEmulator;
let cert: string;

beforeAll(async () => {
  const tls = selfSignedCertificate();
  cert = tls.cert;
  emulator = await DuoEmulator.start({ tls });

  proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req, client: Socket, head) => {
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
