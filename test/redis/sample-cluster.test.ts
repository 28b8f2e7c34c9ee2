import { randomBytes } from 'node:crypto';
import type { RedisClientType } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer } from '../support/redis-server.js';
import { CookieJar, connectRedis } from './instances.js';
import { assertSampleBuiltForRedisTests, freePortRange, runSampleExpectingExit, startSample, type SampleProcess } from './sample-process.js';

/**
 * The built sample in cluster mode, as a person runs it:
 * `REDIS_URL=... SAMPLE_INSTANCES=3 node sample/dist/main.js`, then a login
 * started on one instance and finished on others, through real HTTP.
 */

const INSTANCES = 3;
const SESSION_COOKIE = 'sample.sid';

let server: RedisServer;
let admin: RedisClientType;
let sample: SampleProcess;
let port: number;

/** http://localhost:PORT+i: the host name of the redirect URI, so that the session cookie is the same everywhere. */
function origin(instance: number): string {
  return `http://localhost:${port + instance}`;
}

/** A browser's request: the jar's cookies, no redirect followed, new cookies kept. */
async function browse(jar: CookieJar, url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: 'text/html' };
  const cookie = jar.header();
  if (cookie) headers.cookie = cookie;
  if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    redirect: 'manual',
    signal: AbortSignal.timeout(5_000),
    ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
  });
  jar.update(response);
  return response;
}

/** The session id inside the signed cookie `s:<id>.<signature>`. */
function sessionId(jar: CookieJar): string {
  const value = new Map(jar.header().split('; ').map((pair) => pair.split('=') as [string, string])).get(SESSION_COOKIE);
  expect(value, 'the session cookie').toBeDefined();
  const match = /^s:([^.]+)\./.exec(decodeURIComponent(value!));
  expect(match, `a signed session id in ${value}`).not.toBeNull();
  return match![1]!;
}

async function keys(pattern: string): Promise<string[]> {
  return admin.keys(pattern);
}

beforeAll(async () => {
  assertSampleBuiltForRedisTests();
  server = await RedisServer.start();
  admin = await connectRedis(server.url);
  port = await freePortRange(INSTANCES);
  sample = await startSample({
    REDIS_URL: server.url,
    SAMPLE_INSTANCES: String(INSTANCES),
    PORT: String(port),
    SESSION_SECRET: randomBytes(32).toString('base64url'),
  });
});

afterAll(async () => {
  await sample?.stop();
  admin?.destroy();
  await server?.close();
});

describe('the sample in cluster mode (REDIS_URL, SAMPLE_INSTANCES=3)', () => {
  it('starts three instances on consecutive ports, sharing one emulator and Redis', async () => {
    const output = sample.output();
    for (let i = 0; i < INSTANCES; i++) expect(output).toContain(`instance ${i}: ${origin(i)}/   (listening on 127.0.0.1:${port + i})`);
    expect(output).toContain(`cluster mode: sessions and pending logins in Redis at ${server.url}`);
    expect(output.match(/LOCAL EMULATOR in prompt mode at/g)).toHaveLength(1);
    // Every instance answers on its own port, and says so (no redirect to instance 0's origin).
    for (let i = 0; i < INSTANCES; i++) {
      const page = await browse(new CookieJar(), `${origin(i)}/login`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(`served by instance ${i} (port ${port + i})`);
    }
  });

  it("a login started on instances 1 and 2, finished on instance 0 (Duo's redirect URI), is used on instance 1", async () => {
    const jar = new CookieJar();

    // The password on instance 1: the session is written to Redis.
    const login = await browse(jar, `${origin(1)}/login`, { method: 'POST', form: { username: 'alice', password: 'wonderland', returnTo: '/account' } });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/account');
    const sid = sessionId(jar);
    expect(await admin.get(`sess:${sid}`), 'the session in Redis').toEqual(expect.stringContaining('"username":"alice"'));

    // The protected page on instance 2 knows alice (shared session) and sends her to Duo; the pending login is in Redis.
    expect(await keys('duo:tx:*')).toEqual([]);
    const start = await browse(jar, `${origin(2)}/account`);
    expect(start.status).toBe(303);
    const authorize = start.headers.get('location')!;
    expect(authorize.startsWith(`${sample.emulatorUrl}/oauth/v1/authorize?`)).toBe(true);
    expect(await keys('duo:tx:*')).toHaveLength(1);

    // The emulator's prompt: GET the page, POST its Approve form.
    const prompt = await browse(new CookieJar(), authorize);
    expect(prompt.status).toBe(200);
    const page = await prompt.text();
    const action = /<form method="post" action="([^"]+)">/.exec(page)?.[1];
    const txn = /name="txn" value="([^"]+)"/.exec(page)?.[1];
    expect(action && txn, 'the prompt page has the decision form').toBeTruthy();
    const decision = await browse(new CookieJar(), new URL(action!, sample.emulatorUrl).href, { method: 'POST', form: { txn: txn!, decision: 'approve' } });
    expect(decision.status).toBe(303);
    const back = new URL(decision.headers.get('location')!);
    expect(back.origin).toBe(origin(0));
    expect(back.pathname).toBe('/duo/callback');

    // Duo returns to the redirect URI: instance 0, which takes the pending login from Redis.
    const callback = await browse(jar, back.href);
    expect(callback.status).toBe(303);
    expect(callback.headers.get('location')).toBe('/account');
    expect(await keys('duo:tx:*')).toEqual([]);

    // The account page on instance 1, with the second factor passed on instance 0.
    const account = await browse(jar, `${origin(1)}/account`);
    expect(account.status).toBe(200);
    const html = await account.text();
    expect(html).toContain('<strong data-testid="username">alice</strong>');
    expect(html).toContain('Duo passed');
    expect(html).toContain(`served by instance 1 (port ${port + 1})`);
    // Instance 0 gave the session a new id (session fixation) and wrote Duo's marker to Redis, where instance 1 read it.
    const verifiedSid = sessionId(jar);
    expect(verifiedSid).not.toBe(sid);
    expect(await keys('sess:*')).toEqual([`sess:${verifiedSid}`]);
    const stored = JSON.parse((await admin.get(`sess:${verifiedSid}`)) ?? '{}') as { user?: { username?: string }; duo?: { apps?: { staff?: { verified?: { username?: string } } } } };
    expect(stored.user?.username).toBe('alice');
    // The sample names its Duo applications (staff, admin): the account pages' marker is the staff application's.
    expect(stored.duo?.apps?.staff?.verified?.username).toBe('alice');
  });

  it('stops cleanly on SIGTERM: every instance, the Redis connection and the emulator closed', async () => {
    const connections = async (): Promise<number> => ((await admin.sendCommand(['CLIENT', 'LIST'])) as string).trim().split('\n').length;
    expect(await connections(), "ours and the sample's one client, shared by its three instances").toBe(2);
    const exit = await sample.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    expect(sample.output()).toContain('Stopped: 3 instances closed, Redis connection closed, emulator closed.');
    expect(await connections(), 'only ours is left').toBe(1);
    await expect(fetch(`${origin(0)}/login`, { signal: AbortSignal.timeout(2_000) })).rejects.toThrow();
  });
});

describe('cluster mode refuses to start half-configured', () => {
  it('several instances without REDIS_URL: a startup error that says REDIS_URL is needed', async () => {
    const { code, output } = await runSampleExpectingExit({ SAMPLE_INSTANCES: '2', PORT: String(await freePortRange(2)) });
    expect(code).toBe(1);
    expect(output).toContain('SAMPLE_INSTANCES=2 needs REDIS_URL (cluster mode)');
  });

  it('Redis unreachable at startup: a startup error naming REDIS_URL, nothing listening', async () => {
    const appPort = await freePortRange(1);
    const closedPort = await freePortRange(1);
    const { code, output } = await runSampleExpectingExit({ REDIS_URL: `redis://:secret-password@127.0.0.1:${closedPort}`, PORT: String(appPort) });
    expect(code).toBe(1);
    expect(output).toContain(`Redis at REDIS_URL=redis://***@127.0.0.1:${closedPort} could not be reached (connect ECONNREFUSED 127.0.0.1:${closedPort})`);
    expect(output).not.toContain('secret-password');
    expect(output).not.toContain('running at');
  });
});
