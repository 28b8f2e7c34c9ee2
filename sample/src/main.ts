import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { Logger, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { RedisStore } from 'connect-redis';
import session from 'express-session';
import { guardSessionStore, isDuoError } from 'nestjs-duo';
import type { RedisClientType } from 'redis';
import { AppModule, loadSampleConfig, type SampleAppSetup } from './app.module.js';
import { SESSION_COOKIE } from './auth.controller.js';
import { box } from './banner.js';
import { closeRedis, connectRedis, SampleRedisError } from './cluster.js';
import { canonicalLoopbackHost, securityHeaders, sessionUser } from './http.js';
import { redisAddress, SampleConfigError, type SampleConfig, type SampleInstance } from './sample.config.js';
import { SampleDuoEmulator } from './sample-duo-emulator.js';
import { DEMO_USERS } from './users.service.js';

/** Redis keys of the sessions (connect-redis); pending Duo logins are under duo:tx: (RedisTransactionStore). */
const SESSION_PREFIX = 'sess:';

/** What one process runs: SAMPLE_INSTANCES apps, one emulator (or real Duo) and, in cluster mode, one Redis client. */
interface Running {
  apps: INestApplication[];
  emulator?: SampleDuoEmulator;
  redis?: RedisClientType;
}

async function startInstance(setup: Omit<SampleAppSetup, 'instance'>, instance: SampleInstance, secret: string, running: Running): Promise<void> {
  const { config } = setup;
  // abortOnError false: a startup error reaches bootstrap's catch, which says what to fix.
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot({ ...setup, instance }), { abortOnError: false });
  running.apps.push(app);
  app.disable('x-powered-by');
  if (config.secureCookie) {
    // A Secure cookie needs req.secure; a local TLS terminator (reverse proxy, tunnel agent) is trusted for it.
    app.set('trust proxy', 'loopback');
  }
  app.use(canonicalLoopbackHost(instance.origin));
  app.use(securityHeaders);
  const sessions = session({
    name: SESSION_COOKIE,
    secret,
    resave: false,
    saveUninitialized: false,
    // Lax, not Strict: the browser must send the cookie on Duo's redirect back to /duo/callback.
    cookie: { httpOnly: true, sameSite: 'lax', secure: config.secureCookie, path: '/' },
    // Cluster mode: every instance reads and writes the same sessions.
    ...(setup.redis ? { store: new RedisStore({ client: setup.redis, prefix: SESSION_PREFIX }) } : {}),
  });
  // Redis down or hung: requests go on without a session (503 on the Duo routes) instead of an Express 500.
  app.use(setup.redis ? guardSessionStore(sessions) : sessions);
  app.use(sessionUser);
  try {
    await app.listen(instance.port, config.host);
  } catch (error) {
    const which = config.instances.length > 1 ? `Instance ${instance.index}` : 'The app';
    throw new Error(`${which} could not listen on ${config.host}:${instance.port}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** Closes the apps (in-flight requests finish), then what they share; says what was closed. */
async function stop(running: Running): Promise<string> {
  const apps = await Promise.allSettled(running.apps.map((app) => app.close()));
  const redisClosed = running.redis ? await closeRedis(running.redis) : undefined;
  await running.emulator?.close();
  const failed = apps.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
  const parts = [`${running.apps.length} instance${running.apps.length === 1 ? '' : 's'} closed`];
  if (redisClosed !== undefined) parts.push(redisClosed ? 'Redis connection closed' : 'Redis connection left (no answer within 2 s)');
  if (running.emulator?.running) parts.push('emulator closed');
  return parts.join(', ');
}

/** Ctrl+C or SIGTERM: a clean stop; a second signal exits at once. */
function stopOnSignals(running: Running, logger: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.log(`${signal}: stopping.`);
    stop(running).then(
      (closed) => {
        logger.log(`Stopped: ${closed}.`);
        process.exit(0);
      },
      (error: unknown) => {
        console.error('\nThe sample did not stop cleanly:', error instanceof Error ? error.message : error, '\n');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

function banner(config: SampleConfig, emulator: SampleDuoEmulator): string {
  const several = config.instances.length > 1;
  const where = several
    ? [
        `  ${config.instances.length} instances, each a separate app as behind a load balancer:`,
        ...config.instances.map((instance) => `    instance ${instance.index}: ${instance.origin}/   (listening on ${config.host}:${instance.port})`),
        `  Duo returns to ${config.duo.redirectUri}`,
      ]
    : [`  (listening on ${config.host}:${config.port}; open the address above)`];
  const cluster = config.redisUrl
    ? [
        '',
        `cluster mode: sessions and pending logins in Redis at ${redisAddress(config.redisUrl)}`,
        ...(several ? ["  Start a login on one instance and finish it on another: each page's footer says which one served it."] : []),
      ]
    : [];
  const duoLines = emulator.running
    ? [
        `Duo: LOCAL EMULATOR in prompt mode at ${emulator.baseUrl}`,
        '  No DUO_* variables are set, so no real Duo is involved: after the',
        "  password you will see the emulator's Approve / Deny page instead of Duo's.",
        ...(config.duo.kind === 'emulator' && config.duo.down ? ['  SAMPLE_EMULATOR_DOWN=1: its health check answers "unavailable".'] : []),
      ]
    : [`Duo: real Duo at https://${config.duo.kind === 'duo' ? config.duo.apiHost : ''}`, '  (the demo usernames must exist in your Duo account)'];
  return box([
    `nestjs-duo sample is running at ${config.publicOrigin}/`,
    ...where,
    ...cluster,
    '',
    ...duoLines,
    '',
    `Demo users: ${DEMO_USERS.map((user) => `${user.username} / ${user.password}`).join('    ')}`,
    `Step-up age of /sensitive: ${config.stepUpSeconds} s    Fail mode: ${config.failMode}`,
    `Session secret: ${config.sessionSecret ? 'from SESSION_SECRET' : several ? 'random for this start (shared by the instances)' : 'random for this start'}`,
    '',
    'Stop with Ctrl+C.',
  ]);
}

async function bootstrap(): Promise<void> {
  const { configModule, config } = await loadSampleConfig();
  const logger = new Logger('Sample');
  const running: Running = { apps: [] };
  // Redis first: when it is unreachable, nothing else starts.
  if (config.redisUrl) running.redis = await connectRedis(config.redisUrl);
  // Once per process: every instance talks to the same emulator.
  const emulator = await SampleDuoEmulator.start(config);
  running.emulator = emulator;

  const secret = config.sessionSecret ?? randomBytes(32).toString('base64url');
  if (!config.sessionSecret) logger.warn('SESSION_SECRET is not set: using a random secret, so sessions end when the app restarts.');
  const setup: Omit<SampleAppSetup, 'instance'> = { configModule, config, emulator, ...(running.redis ? { redis: running.redis } : {}) };
  await Promise.all(config.instances.map((instance) => startInstance(setup, instance, secret, running)));
  stopOnSignals(running, logger);
  console.log(banner(config, emulator));
}

bootstrap().catch((error: unknown) => {
  if (error instanceof SampleConfigError || error instanceof SampleRedisError) {
    console.error(`\n${error.message}\n`);
  } else if (isDuoError(error) && error.code === 'config_invalid') {
    console.error(`\nThe Duo settings are invalid: ${error.message}\n(Check DUO_CLIENT_ID, DUO_CLIENT_SECRET, DUO_API_HOST and DUO_REDIRECT_URI.)\n`);
  } else {
    console.error('\nThe sample could not start:', error instanceof Error ? error.message : error, '\n');
  }
  process.exit(1);
});
