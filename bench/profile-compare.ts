/**
 * `node bench/dist/bench/profile-compare.js A.cpuprofile unitsA B.cpuprofile unitsB`:
 * self time per unit (a login, three plain requests, ...) of two profiles from
 * profile-login.ts, by kind of work, side by side, with the difference. For
 * "where does a login's extra CPU go"; the sampling profiler inflates absolute
 * times, the shares and differences are what to read.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The kind of work a frame does, by where its code lives. */
function kindOf({ url, functionName }: ProfileNode['callFrame']): string | undefined {
  if (functionName === '(idle)' || functionName === '(program)') return undefined;
  if (functionName === '(garbage collector)') return 'garbage collection';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) {
    if (pkg === 'jose') return 'jose (id_token verification)';
    if (pkg === 'undici') return 'undici (the call to Duo)';
    if (['express-session', 'cookie-signature', 'uid-safe', 'random-bytes', 'cookie', 'on-headers', 'crc'].includes(pkg)) return 'express-session and its cookie';
    if (pkg.startsWith('@redis/') || pkg === 'redis' || pkg === 'connect-redis' || pkg === 'cluster-key-slot') return 'node-redis / connect-redis';
    if (pkg.startsWith('@nestjs/') || pkg === 'rxjs' || pkg === 'reflect-metadata' || pkg === 'tslib' || pkg === 'iterare') return 'Nest (router, guards, rxjs)';
    if (pkg.startsWith('@opentelemetry/')) return 'OpenTelemetry API (no-op)';
    return 'Express and its helpers (router, body-parser, ...)';
  }
  if (/\/(?:bench\/dist\/(?:[^/]+\/)?)?src\//.test(url) && url.includes('/bench/dist/')) return 'nestjs-duo (src/)';
  if (url.includes('/test/support/')) return 'the test app (controllers, req.user)';
  if (url.startsWith('node:internal/crypto') || ['digest', 'update', 'Hmac', 'Hash', 'randomBytes', 'sign', 'verify'].includes(functionName)) return 'node:crypto (HMAC, WebCrypto jobs, random)';
  if (/^node:(?:_http|http|net|internal\/(?:streams|stream_base|http|net))/.test(url) || functionName === 'writev' || functionName === 'writeUtf8String' || functionName === 'writeLatin1String') {
    return 'Node HTTP and sockets (parse, write, writev)';
  }
  return 'other (timers, microtasks, events, JSON, ...)';
}

function byKind(path: string): { kinds: Map<string, number>; total: number } {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const kinds = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const kind = kindOf(frames.get(id)!);
    if (kind === undefined) return;
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    kinds.set(kind, (kinds.get(kind) ?? 0) + us);
  });
  return { kinds, total };
}

const [pathA, unitsA, pathB, unitsB] = process.argv.slice(2);
if (!pathA || !pathB || !Number(unitsA) || !Number(unitsB)) {
  console.error('usage: profile-compare.js A.cpuprofile unitsA B.cpuprofile unitsB');
  process.exit(2);
}
const a = byKind(pathA);
const b = byKind(pathB);
const na = Number(unitsA);
const nb = Number(unitsB);
const names = [...new Set([...a.kinds.keys(), ...b.kinds.keys()])].sort((x, y) => (a.kinds.get(y) ?? 0) / na - (b.kinds.get(y) ?? 0) / nb - ((a.kinds.get(x) ?? 0) / na - (b.kinds.get(x) ?? 0) / nb));
console.log(`| self time per unit | A: ${pathA.split('/').pop()} | B: ${pathB.split('/').pop()} | A - B |`);
console.log('| --- | --- | --- | --- |');
for (const name of names) {
  const ua = (a.kinds.get(name) ?? 0) / na;
  const ub = (b.kinds.get(name) ?? 0) / nb;
  console.log(`| ${name} | ${ua.toFixed(0)} µs (${(((a.kinds.get(name) ?? 0) / a.total) * 100).toFixed(0)} %) | ${ub.toFixed(0)} µs | ${(ua - ub).toFixed(0)} µs |`);
}
console.log(`| **sampled CPU in all** | ${(a.total / na).toFixed(0)} µs | ${(b.total / nb).toFixed(0)} µs | ${(a.total / na - b.total / nb).toFixed(0)} µs (ratio ${(a.total / na / (b.total / nb)).toFixed(2)}) |`);
