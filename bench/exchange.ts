/**
 * Benchmark 2: authorization-code exchanges per second against the Duo
 * emulator served over local TLS (a CA made at start with openssl), nestjs-duo's
 * DuoClient against Duo's official Node SDK. Codes are minted before each timed
 * section (the emulator's authorize(), in its own process); only the exchanges
 * (client assertion, POST /oauth/v1/token over TLS, id_token checks) are timed.
 */
import { Agent as HttpsAgent } from 'node:https';
import { Client as DuoSdkClient, constants as duoSdkConstants } from '@duosecurity/duo_universal';
import { DuoClient } from '../src/protocol/index.js';
import type { EmulatorInfo } from './emulator-process.js';
import { startChild, type Child } from './rpc.js';
import { log, mapLimit, ratioRow, type ResultRow } from './stats.js';
import { createLocalTls } from './tls.js';

const REDIRECT_URI = 'https://app.example.com/duo/callback';
const USERNAME = 'bench.user';

export interface ExchangeOptions {
  rounds?: number;
  /** Exchanges per side per round. */
  batch?: number;
  /** Exchanges in flight at once, per side. */
  concurrencies?: number[];
}

/**
 * The official SDK pins Duo's CAs: it builds `new https.Agent({ ca: DUO_PINNED_CERT })`
 * and offers no option for another CA, and NODE_EXTRA_CA_CERTS does not apply
 * to an agent with an explicit `ca` (checked on Node 20). So we replace that
 * agent, on the axios instance the SDK created, with the very same agent (same
 * class, same defaults: no keep-alive) whose `ca` also holds our local CA.
 */
function trustLocalCa(sdk: DuoSdkClient, caPem: string): void {
  const internals = sdk as unknown as { axios?: { defaults?: { httpsAgent?: unknown } } };
  if (!internals.axios?.defaults || !(internals.axios.defaults.httpsAgent instanceof HttpsAgent)) {
    throw new Error('The official SDK no longer keeps its https agent at client.axios.defaults.httpsAgent; update bench/exchange.ts.');
  }
  internals.axios.defaults.httpsAgent = new HttpsAgent({ ca: [duoSdkConstants.DUO_PINNED_CERT, caPem] });
}

interface Minted {
  code: string;
  nonce?: string;
}

async function mint(emulator: Child<EmulatorInfo>, starts: Array<{ url: string; nonce?: string }>): Promise<Minted[]> {
  const locations = await emulator.call<string[]>('authorizeMany', starts.map((start) => start.url), 8);
  return locations.map((location, i) => {
    if (location.startsWith('ERROR')) throw new Error(`minting a code failed: ${location}`);
    const code = new URL(location).searchParams.get('duo_code');
    if (!code) throw new Error('minting a code failed: no duo_code');
    const nonce = starts[i]!.nonce;
    return nonce === undefined ? { code } : { code, nonce };
  });
}

async function timed(codes: Minted[], concurrency: number, exchange: (minted: Minted) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await mapLimit(codes, concurrency, exchange);
  return codes.length / ((performance.now() - started) / 1000);
}

export async function benchExchange(options: ExchangeOptions = {}): Promise<ResultRow[]> {
  const rounds = options.rounds ?? 6;
  const batch = options.batch ?? 300;
  const concurrencies = options.concurrencies ?? [1, 8];
  const tls = createLocalTls();
  const emulator = await startChild<EmulatorInfo>(new URL('./emulator-process.js', import.meta.url), {
    env: { BENCH_EMULATOR: JSON.stringify({ tls: { key: tls.keyPem, cert: tls.certPem, ca: tls.caPem }, codeTtlSeconds: 3600 }) },
  });
  const { baseUrl, port, clientId, clientSecret } = emulator.info;
  const ours = new DuoClient({ clientId, clientSecret, apiBaseUrl: baseUrl, redirectUri: REDIRECT_URI, ca: tls.caPem });
  // The SDK takes `https://{apiHost}` and accepts host:port there; 127.0.0.1 is in the certificate's names.
  const sdk = new DuoSdkClient({ clientId, clientSecret, apiHost: `127.0.0.1:${port}`, redirectUrl: REDIRECT_URI });
  const rows: ResultRow[] = [];
  try {
    const oursStarts = async (n: number) =>
      Promise.all(Array.from({ length: n }, async () => {
        const start = await ours.startAuthorization(USERNAME);
        return { url: start.url, nonce: start.nonce };
      }));
    const sdkStarts = async (n: number) =>
      Promise.all(Array.from({ length: n }, async () => ({ url: await sdk.createAuthUrl(USERNAME, sdk.generateState()) })));
    const oursExchange = async ({ code, nonce }: Minted): Promise<void> => {
      if (!nonce) throw new Error('no nonce');
      const claims = await ours.exchangeAuthorizationCode(code, USERNAME, nonce);
      if (claims.preferred_username !== USERNAME) throw new Error('wrong user');
    };
    const sdkExchange = async ({ code }: Minted): Promise<void> => {
      const token = await sdk.exchangeAuthorizationCodeFor2FAResult(code, USERNAME);
      if (token.preferred_username !== USERNAME) throw new Error('wrong user');
    };

    // The pin is real: without our CA the SDK refuses the emulator's certificate.
    const [unpinned] = await mint(emulator, await sdkStarts(1));
    const refused = await sdkExchange(unpinned!).then(
      () => false,
      () => true,
    );
    if (!refused) throw new Error('the official SDK accepted a certificate from an unknown CA');
    trustLocalCa(sdk, tls.caPem);

    log('exchange: warm-up');
    for (const concurrency of concurrencies) {
      await timed(await mint(emulator, await oursStarts(100)), concurrency, oursExchange);
      await timed(await mint(emulator, await sdkStarts(100)), concurrency, sdkExchange);
    }

    for (const concurrency of concurrencies) {
      const oursRates: number[] = [];
      const sdkRates: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const oursCodes = await mint(emulator, await oursStarts(batch));
        const sdkCodes = await mint(emulator, await sdkStarts(batch));
        if (round % 2 === 0) {
          oursRates.push(await timed(oursCodes, concurrency, oursExchange));
          sdkRates.push(await timed(sdkCodes, concurrency, sdkExchange));
        } else {
          sdkRates.push(await timed(sdkCodes, concurrency, sdkExchange));
          oursRates.push(await timed(oursCodes, concurrency, oursExchange));
        }
      }
      log(`exchange (concurrency ${concurrency}): ours ${oursRates.map(Math.round).join(', ')}; sdk ${sdkRates.map(Math.round).join(', ')}`);
      rows.push(
        ratioRow(
          `2. code exchanges/s over TLS (${concurrency === 1 ? 'one at a time' : `${concurrency} concurrent`}) vs official SDK`,
          oursRates,
          sdkRates,
          'ops/s',
          2,
        ),
      );
    }
    const stats = await emulator.call<{ tokenExchanges: number; tokenExchangesOk: number }>('stats');
    log(`exchange: emulator saw ${stats.tokenExchanges} token calls, ${stats.tokenExchangesOk} accepted`);
    return rows;
  } finally {
    await ours.close();
    await emulator.stop();
    tls.dispose();
  }
}
