/**
 * Calls to Duo over new TLS connections with the `ca` option (a TLS-inspecting
 * proxy's CA): app CPU per call of DuoClient (one secure context built at
 * startup) against undici given `ca` per connection, as nestjs-duo 0.1 did (Node
 * then builds a new secure context, the roots included, for every connection).
 * The server runs in a child process and closes every connection, so each call
 * is a full handshake; only this process's CPU is counted. Rounds alternate.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:https';
import { rootCertificates } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { DuoClient } from '../src/protocol/index.js';
import { log, ratioRow, type ResultRow } from './stats.js';
import { createLocalTls } from './tls.js';

const CLIENT_ID = 'DIBENCHMARK000000001';
const CLIENT_SECRET = 'benchsecret0123456789abcdefghijklmnopqrs';

if (process.argv[2] === 'serve') {
  const { keyPem, certPem } = JSON.parse(process.argv[3]!) as { keyPem: string; certPem: string };
  const server = createServer({ key: keyPem, cert: certPem }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ stat: 'OK', response: { timestamp: Math.floor(Date.now() / 1000) } }));
    });
  });
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
}

export interface TlsReconnectOptions {
  rounds?: number;
  callsPerRound?: number;
}

/** CPU milliseconds of this process per call, for `calls` calls of `call`. */
async function cpuPerCall(calls: number, call: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < calls; i++) await call();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000 / calls;
}

export async function benchTlsReconnect(options: TlsReconnectOptions = {}): Promise<ResultRow> {
  const rounds = options.rounds ?? 6;
  const calls = options.callsPerRound ?? 40;
  const tls = createLocalTls();
  let child: ChildProcess | undefined;
  try {
    child = fork(fileURLToPath(import.meta.url), ['serve', JSON.stringify({ keyPem: tls.keyPem, certPem: tls.certPem })]);
    const port = await new Promise<number>((resolve) => child!.once('message', (message) => resolve((message as { port: number }).port)));
    const baseUrl = `https://127.0.0.1:${port}`;
    const ours = new DuoClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiBaseUrl: baseUrl, redirectUri: 'http://localhost/duo/callback', ca: tls.caPem });
    const perConnection = new Agent({ connect: { ca: [...rootCertificates, tls.caPem] } });
    const theirs = async (): Promise<void> => {
      const response = await request(`${baseUrl}/oauth/v1/health_check`, { method: 'POST', dispatcher: perConnection, body: 'client_id=x' });
      await response.body.text();
    };
    await ours.healthCheck();
    await theirs();
    const oursCpu: number[] = [];
    const theirsCpu: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // Calls per CPU second, so that a higher ratio is better, as in every row.
      oursCpu.push(1000 / (await cpuPerCall(calls, () => ours.healthCheck())));
      theirsCpu.push(1000 / (await cpuPerCall(calls, theirs)));
      log(`tls reconnect round ${round + 1}/${rounds}: ${(1000 / oursCpu.at(-1)!).toFixed(2)} ms vs ${(1000 / theirsCpu.at(-1)!).toFixed(2)} ms app CPU per call`);
    }
    await ours.close();
    await perConnection.close();
    return ratioRow('new TLS connection per call with `ca` (calls per CPU s, vs `ca` per connection)', oursCpu, theirsCpu, 'calls/CPU-s', 4);
  } finally {
    child?.kill();
    tls.dispose();
  }
}
