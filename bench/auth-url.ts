/**
 * Benchmark 1: authorize URLs created per second, nestjs-duo's DuoClient
 * against Duo's official Node SDK, same inputs, same process, interleaved
 * rounds after a warm-up. No network: both only sign a request JWT. Target
 * (issue 14): 5x, one at a time and 16 in flight.
 */
import { Client as DuoSdkClient } from '@duosecurity/duo_universal';
import { SignJWT } from 'jose';
import { DuoClient, expectNoNonce } from '../src/protocol/index.js';
import { DUO_JWT_ALG, HsKey, signJwt } from '../src/protocol/jwt.js';
import { log, median, ratioRow, type ResultRow } from './stats.js';

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

interface Sample {
  /** Calls per second of wall-clock time. */
  rate: number;
  /** Calls per second of this process's CPU time (all its threads: WebCrypto's thread pool too). */
  perCpuSecond: number;
}

/** Calls `fn` for `ms` milliseconds, `concurrency` at a time. */
async function throughput(fn: () => Promise<unknown>, ms: number, concurrency: number): Promise<Sample> {
  let count = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const end = started + ms;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      for (let i = 0; i < 32; i++) await fn();
      count += 32;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { rate: count / elapsed, perCpuSecond: count / ((used.user + used.system) / 1e6) };
}

export async function benchAuthUrl(options: AuthUrlOptions = {}): Promise<ResultRow[]> {
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

  const oursSamples: Sample[] = [];
  const theirsSamples: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    // Alternate who goes first, so neither always gets the warmer (or the noisier) slot.
    if (round % 2 === 0) {
      oursSamples.push(await throughput(oursFn, roundMs, concurrency));
      theirsSamples.push(await throughput(theirsFn, roundMs, concurrency));
    } else {
      theirsSamples.push(await throughput(theirsFn, roundMs, concurrency));
      oursSamples.push(await throughput(oursFn, roundMs, concurrency));
    }
  }
  await ours.close();
  const rates = (samples: Sample[]): number[] => samples.map((sample) => sample.rate);
  const perCpu = (samples: Sample[]): number[] => samples.map((sample) => sample.perCpuSecond);
  log(`auth URL (concurrency ${concurrency}): ours ${rates(oursSamples).map(Math.round).join(', ')}; sdk ${rates(theirsSamples).map(Math.round).join(', ')}`);
  log(`auth URL (concurrency ${concurrency}) per CPU-second: ours ${perCpu(oursSamples).map(Math.round).join(', ')}; sdk ${perCpu(theirsSamples).map(Math.round).join(', ')}`);
  const how = concurrency === 1 ? 'one at a time' : `${concurrency} concurrent`;
  return [
    ratioRow(`1. authorize URLs/s (${how}) vs official SDK`, rates(oursSamples), rates(theirsSamples), 'ops/s', 5),
    ratioRow(`   same, per CPU-second of the process (${how})`, perCpu(oursSamples), perCpu(theirsSamples), 'ops/CPU-s', 5),
  ];
}

/**
 * Benchmark 1c: one request JWT signed by signJwt (one node:crypto HMAC) and by
 * what it replaced, jose's SignJWT with the same pre-imported WebCrypto key
 * (nestjs-duo 0.1), alternating rounds; per CPU-second of the process, so the
 * thread pool's work counts. A login signs two JWTs (request JWT, client assertion).
 */
export async function benchSigning(options: AuthUrlOptions = {}): Promise<ResultRow[]> {
  const rounds = options.rounds ?? 10;
  const roundMs = options.roundMs ?? 500;
  const key = new HsKey(CLIENT_SECRET);
  const cryptoKey = await key.key;
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    response_type: 'code',
    scope: 'openid',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    state: STATE,
    duo_uname: USERNAME,
    use_duo_code_attribute: true,
    iss: CLIENT_ID,
    aud: `https://${API_HOST}`,
    iat: now,
    exp: now + 300,
    nonce: STATE,
  };
  const oursFn = (): Promise<string> => signJwt(key, claims);
  const joseFn = (): Promise<string> => new SignJWT(claims).setProtectedHeader({ alg: DUO_JWT_ALG }).sign(cryptoKey);
  if ((await oursFn()) !== (await joseFn())) throw new Error('signing benchmark: signJwt and jose disagree');
  log('signing: warm-up');
  await throughput(oursFn, 500, 1);
  await throughput(joseFn, 500, 1);
  const oursSamples: Sample[] = [];
  const joseSamples: Sample[] = [];
  for (let round = 0; round < rounds; round++) {
    const pair = round % 2 === 0 ? [oursFn, joseFn] : [joseFn, oursFn];
    for (const fn of pair) (fn === oursFn ? oursSamples : joseSamples).push(await throughput(fn, roundMs, 1));
  }
  const perCpu = (samples: Sample[]): number[] => samples.map((sample) => sample.perCpuSecond);
  log(`signing per CPU-second: ours ${perCpu(oursSamples).map(Math.round).join(', ')}; jose ${perCpu(joseSamples).map(Math.round).join(', ')}`);
  const row = ratioRow('1c. request JWTs signed per CPU-second vs jose SignJWT (same key)', perCpu(oursSamples), perCpu(joseSamples), 'ops/CPU-s', 5);
  const saved = (1 / median(perCpu(joseSamples)) - 1 / median(perCpu(oursSamples))) * 2e6;
  return [{ ...row, reference: `${row.reference}; 2 per login: ${saved.toFixed(0)} us of CPU saved per login` }];
}
