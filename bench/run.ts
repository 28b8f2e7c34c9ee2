/**
 * `npm run bench`: every benchmark, one table. Ratios compare samples taken
 * in the same run, interleaved. BENCH_QUICK=1 runs shorter (for a smoke test;
 * its figures are not the ones to quote). BENCH_ONLY=1,3 runs some of them.
 */
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { benchAuthUrl, benchSigning } from './auth-url.js';
import { benchExchange } from './exchange.js';
import { benchGuard } from './guard.js';
import { benchLoginCost } from './login-cost.js';
import { benchLogins } from './logins.js';
import { benchMemory } from './memory.js';
import { benchTlsReconnect } from './tls-reconnect.js';
import { log, printTable, type ResultRow } from './stats.js';

const quick = process.env.BENCH_QUICK === '1';
const only = new Set((process.env.BENCH_ONLY ?? '1,2,3,4,5,6,7').split(',').map((item) => item.trim()));

const machine = `${cpus().length} CPU (${cpus()[0]?.model.trim() ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM (${(freemem() / 2 ** 30).toFixed(1)} free), node ${process.version}`;
const load = (): string => loadavg().map((value) => value.toFixed(2)).join(' ');

const rows: ResultRow[] = [];
const started = Date.now();
log(`${new Date().toISOString()} ${machine}; load average ${load()}${quick ? '; QUICK mode' : ''}`);

if (only.has('1')) {
  rows.push(...(await benchAuthUrl(quick ? { rounds: 4, roundMs: 250 } : {})));
  rows.push(...(await benchAuthUrl(quick ? { rounds: 4, roundMs: 250, concurrency: 16 } : { concurrency: 16 })));
  rows.push(...(await benchSigning(quick ? { rounds: 4, roundMs: 250 } : {})));
}
if (only.has('2')) rows.push(...(await benchExchange(quick ? { rounds: 2, batch: 100 } : {})));
if (only.has('3')) rows.push(...(await benchGuard(quick ? { rounds: 2, seconds: 1, cpuRounds: 2, cpuSeconds: 1, seqRounds: 2, seqRequests: 100 } : {})));
if (only.has('4')) rows.push(...(await benchLogins(quick ? { runs: 1, seconds: 3 } : {})));
if (only.has('5')) rows.push(...(await benchMemory(quick ? { logins: 1000 } : {})));
if (only.has('6')) rows.push(await benchTlsReconnect(quick ? { rounds: 2, callsPerRound: 10 } : {}));
if (only.has('7')) {
  const size = quick ? { rounds: 2, perRound: 50 } : {};
  rows.push(...(await benchLoginCost({ ...size, store: 'session' })).rows);
  rows.push(...(await benchLoginCost({ ...size, store: 'redis' })).rows);
  // With promptLimits (defaults but no per-IP limit: every simulated browser is 127.0.0.1): their Redis scripts per login.
  rows.push(...(await benchLoginCost({ ...size, store: 'redis', promptLimits: { perIp: false } })).rows);
}

console.log(`nestjs-duo benchmarks, ${new Date().toISOString()}`);
console.log(`machine: ${machine}`);
console.log(`load average at the end: ${load()} (other work on the machine makes absolute figures vary; ratios are paired within this run)`);
console.log(`took ${((Date.now() - started) / 1000).toFixed(0)} s${quick ? ' (QUICK mode: smoke test only)' : ''}`);
console.log('');
printTable(rows);
