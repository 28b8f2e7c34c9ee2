/**
 * `node bench/dist/bench/profile-login.js`: where the app's CPU goes in a login.
 * V8's CPU profiler runs in the app process (started and stopped over IPC, so
 * only the measured section is in the profile) while PROFILE_LOGINS (default
 * 2000) second factors are walked (303 to Duo, callback, protected page; the
 * primary logins are made before). PROFILE_STORE=session (default) or redis.
 * PROFILE_WHAT=guard profiles PROFILE_LOGINS x 10 requests of a verified
 * session to the guarded page instead (the guard's pass path), per request;
 * PROFILE_WHAT=plain the baseline of benchmark 7, three GET /open per
 * primary-login session (per three requests), to set beside a login's.
 * Writes the .cpuprofile (open it in Chrome's DevTools) and prints self and
 * inclusive time per login: by package or source file, and the top functions.
 */
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { secondFactor, threePlain } from './login-cost.js';
import { startStack } from './stack.js';
import { log, mapLimit } from './stats.js';
import { RedisServer } from '../test/support/redis-server.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const LOGINS = Number(process.env.PROFILE_LOGINS ?? 2000);
const STORE = process.env.PROFILE_STORE ?? 'session';
const CONCURRENCY = 8;
const WHAT = process.env.PROFILE_WHAT ?? 'login';

/** Where a frame's code lives: a source file of ours, a package, Node itself, or V8's own buckets. */
function placeOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) return `(${functionName || 'anonymous'})`;
  const ours = /\/bench\/dist\/(?:next\/)?(src\/.*)\.js$/.exec(url);
  if (ours) return `${ours[1]}.ts`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return url;
  return url.replace(/^.*\/bench\/dist\/(?:next\/)?/, '');
}

async function main(): Promise<void> {
  const redis = STORE === 'redis' ? await RedisServer.start() : undefined;
  const stack = await startStack({ app: redis ? { redisUrl: redis.url, redisSessions: true } : {} });
  const out = join(mkdtempSync(join(tmpdir(), 'nestjs-duo-profile-')), `${WHAT}-${STORE}.cpuprofile`);
  try {
    let n = 0;
    const sessions = async (count: number): Promise<string[]> =>
      mapLimit(Array.from({ length: count }, () => `profile.user.${++n}`), CONCURRENCY, async (username) => {
        const answer = await stack.driver.http('POST', '/login', undefined, { username });
        if (!answer.setCookie) throw new Error(`primary login HTTP ${answer.status}`);
        return `${answer.setCookie}|${username}`;
      });
    log(`profile: warm-up (${STORE})`);
    await mapLimit(await sessions(500), CONCURRENCY, (s) => secondFactor(stack, s));
    if (WHAT === 'guard') {
      const login = await stack.driver.login('profile.guard.user');
      if (!login.ok || !login.cookie) throw new Error(`the login failed at ${login.failedAt}`);
      const get = async (): Promise<void> => {
        const page = await stack.driver.http('GET', '/account', login.cookie);
        if (page.status !== 200) throw new Error(`the guarded page answered HTTP ${page.status}`);
      };
      await mapLimit(Array.from({ length: 2000 }), CONCURRENCY, get);
      await stack.app.call('profileStart');
      await mapLimit(Array.from({ length: LOGINS * 10 }), CONCURRENCY, get);
      await stack.app.call('profileStop', out);
    } else {
      const measured = await sessions(LOGINS);
      await stack.app.call('profileStart');
      await mapLimit(measured, CONCURRENCY, (s) => (WHAT === 'plain' ? threePlain(stack, s) : secondFactor(stack, s)));
      await stack.app.call('profileStop', out);
    }
  } finally {
    await stack.stop();
    await redis?.stop();
  }

  const profile = JSON.parse(await readFile(out, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<string, number>();
  const selfPlace = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const inclusivePlace = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id)!;
    if (node.callFrame.functionName === '(idle)' || node.callFrame.functionName === '(program)') return;
    busy += us;
    const key = (frame: ProfileNode['callFrame']): string => `${frame.functionName || '(anonymous)'} ${placeOf(frame)}:${frame.lineNumber + 1}`;
    self.set(key(node.callFrame), (self.get(key(node.callFrame)) ?? 0) + us);
    selfPlace.set(placeOf(node.callFrame), (selfPlace.get(placeOf(node.callFrame)) ?? 0) + us);
    const seen = new Set<string>();
    const seenPlace = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      const k = key(frame);
      if (!seen.has(k)) {
        seen.add(k);
        inclusive.set(k, (inclusive.get(k) ?? 0) + us);
      }
      const place = placeOf(frame);
      if (!seenPlace.has(place)) {
        seenPlace.add(place);
        inclusivePlace.set(place, (inclusivePlace.get(place) ?? 0) + us);
      }
    }
  });
  const units = WHAT === 'guard' ? LOGINS * 10 : LOGINS;
  const perLogin = (us: number): string => `${(us / units).toFixed(WHAT === 'guard' ? 2 : 1)} us (${((us / busy) * 100).toFixed(1)}%)`;
  const top = (map: Map<string, number>, count: number, filter: (key: string) => boolean = () => true): string =>
    [...map]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, count)
      .map(([k, us]) => `  ${perLogin(us).padEnd(18)} ${k}`)
      .join('\n');
  console.log(`profile of ${units} ${WHAT === 'guard' ? 'guarded requests of a verified session' : WHAT === 'plain' ? 'triples of plain requests' : 'logins'} (${STORE} store), written to ${out}`);
  console.log(`app CPU sampled (not idle): ${(busy / units).toFixed(0)} us per ${WHAT === 'guard' ? 'request' : 'login'}`);
  console.log(`\nself time by place:\n${top(selfPlace, 25)}`);
  console.log(`\ninclusive time by place (nestjs-duo's files and the packages it calls):\n${top(inclusivePlace, 30)}`);
  console.log(`\nself time, top functions:\n${top(self, 30)}`);
  console.log(`\ninclusive time, nestjs-duo's functions:\n${top(inclusive, 40, (k) => / src\//.test(k))}`);
}

await main();
