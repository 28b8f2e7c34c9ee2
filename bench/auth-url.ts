/**
 * Benchmark 1: authorize URLs created per second, nestjs-duo's DuoClient
 * against Duo's official Node SDK, same inputs, same process, interleaved
 * rounds after a warm-up. No network: both only sign a request JWT. Target
 * (issue 14): 5x, one at a time and 16 in flight.
 */
import { Client as DuoSdkClient } from '@duosecurity/duo_universal';
import { DuoClient, expectNoNonce } from '../src/protocol/index.js';
import { log, ratioRow, type ResultRow } from './stats.js';

const CLIENT_ID = 'DIBENCHMARK000000001';
const CLIENT_SECRET = 'BenchSecret0123456789abcdefghijklmnopqrs';
const API_HOST = 'api-12345678.duosecurity.com';
const REDIRECT_URI = 'https://app.example.com/duo/callback';
const USERNAME = 'bench.user@example.com';
/** 36 characters: valid for both (the SDK wants 22 to 1024, nestjs-duo 16 to 1024). */
const STATE = 'a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8';

export interface AuthUrlOptions {
  rounds?: number;
  roundMs?: number;
  /** Calls in flight at once; 1 = one after the other. */
  concurrency?: number;
}

/** Calls `fn` for `ms` milliseconds, `concurrency` at a time; returns calls per second. */
async function throughput(fn: () => Promise<unknown>, ms: number, concurrency: number): Promise<number> {
  let count = 0;
  const started = performance.now();
  const end = started + ms;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      for (let i = 0; i < 32; i++) await fn();
      count += 32;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count / ((performance.now() - started) / 1000);
}

export async function benchAuthUrl(options: AuthUrlOptions = {}): Promise<ResultRow> {
  const rounds = options.rounds ?? 10;
  const roundMs = options.roundMs ?? 500;
  const concurrency = options.concurrency ?? 1;
  const ours = new DuoClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiHost: API_HOST, redirectUri: REDIRECT_URI });
  const theirs = new DuoSdkClient({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, apiHost: API_HOST, redirectUrl: REDIRECT_URI });
  // Like the official SDK 3.0, which sends no nonce: the same work on both sides.
  const oursFn = (): Promise<string> => ours.createAuthUrl(USERNAME, STATE, { nonce: expectNoNonce });
  const theirsFn = (): Promise<string> => theirs.createAuthUrl(USERNAME, STATE);

  // Same request JWT claims apart from what each adds (nestjs-duo: iat; the SDK: nothing more): check both produce a URL.
  const [a, b] = [await oursFn(), await theirsFn()];
  if (!a.startsWith(`https://${API_HOST}/oauth/v1/authorize?`) || !b.startsWith(`https://${API_HOST}/oauth/v1/authorize?`)) {
    throw new Error('authorize URL benchmark: unexpected URLs');
  }

  log(`auth URL (concurrency ${concurrency}): warm-up`);
  await throughput(oursFn, 500, concurrency);
  await throughput(theirsFn, 500, concurrency);

  const oursRates: number[] = [];
  const theirsRates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    // Alternate who goes first, so neither always gets the warmer (or the noisier) slot.
    if (round % 2 === 0) {
      oursRates.push(await throughput(oursFn, roundMs, concurrency));
      theirsRates.push(await throughput(theirsFn, roundMs, concurrency));
    } else {
      theirsRates.push(await throughput(theirsFn, roundMs, concurrency));
      oursRates.push(await throughput(oursFn, roundMs, concurrency));
    }
  }
  await ours.close();
  log(`auth URL (concurrency ${concurrency}): ours ${oursRates.map(Math.round).join(', ')}; sdk ${theirsRates.map(Math.round).join(', ')}`);
  return ratioRow(
    `1. authorize URLs/s (${concurrency === 1 ? 'one at a time' : `${concurrency} concurrent`}) vs official SDK`,
    oursRates,
    theirsRates,
    'ops/s',
    5,
  );
}
