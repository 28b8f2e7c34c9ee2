import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import session from 'express-session';
import { isDuoError } from 'nestjs-duo';
import { AppModule } from './app.module.js';
import { SESSION_COOKIE } from './auth.controller.js';
import { box } from './banner.js';
import { canonicalLoopbackHost, securityHeaders, sessionUser } from './http.js';
import { SampleConfigError, sampleConfig, type SampleConfig } from './sample.config.js';
import { SampleDuoEmulator } from './sample-duo-emulator.js';
import { DEMO_USERS } from './users.service.js';

async function bootstrap(): Promise<void> {
  // abortOnError false: a startup error reaches the catch below, which says what to fix.
  const app = await NestFactory.create<NestExpressApplication>(await AppModule.forRoot(), { abortOnError: false });
  const config = app.get<SampleConfig>(sampleConfig.KEY);
  const emulator = app.get(SampleDuoEmulator);

  const logger = new Logger('Sample');
  app.disable('x-powered-by');
  if (config.secureCookie) {
    // A Secure cookie needs req.secure; a local TLS terminator (reverse proxy, tunnel agent) is trusted for it.
    app.set('trust proxy', 'loopback');
  }
  const secret = config.sessionSecret ?? randomBytes(32).toString('base64url');
  if (!config.sessionSecret) logger.warn('SESSION_SECRET is not set: using a random secret, so sessions end when the app restarts.');
  app.use(canonicalLoopbackHost(config.publicOrigin));
  app.use(securityHeaders);
  app.use(
    session({
      name: SESSION_COOKIE,
      secret,
      resave: false,
      saveUninitialized: false,
      // Lax, not Strict: the browser must send the cookie on Duo's redirect back to /duo/callback.
      cookie: { httpOnly: true, sameSite: 'lax', secure: config.secureCookie, path: '/' },
    }),
  );
  app.use(sessionUser);
  app.enableShutdownHooks();
  await app.listen(config.port, config.host);

  const duoLines = emulator.running
    ? [
        `Duo: LOCAL EMULATOR in prompt mode at ${emulator.baseUrl}`,
        '  No DUO_* variables are set, so no real Duo is involved: after the',
        "  password you will see the emulator's Approve / Deny page instead of Duo's.",
        ...(config.duo.kind === 'emulator' && config.duo.down ? ['  SAMPLE_EMULATOR_DOWN=1: its health check answers "unavailable".'] : []),
      ]
    : [`Duo: real Duo at https://${config.duo.kind === 'duo' ? config.duo.apiHost : ''}`, '  (the demo usernames must exist in your Duo account)'];
  console.log(
    box([
      `nestjs-duo sample is running at ${config.publicOrigin}/`,
      `  (listening on ${config.host}:${config.port}; open the address above)`,
      '',
      ...duoLines,
      '',
      `Demo users: ${DEMO_USERS.map((user) => `${user.username} / ${user.password}`).join('    ')}`,
      `Step-up age of /sensitive: ${config.stepUpSeconds} s    Fail mode: ${config.failMode}`,
      `Session secret: ${config.sessionSecret ? 'from SESSION_SECRET' : 'random for this start'}`,
      '',
      'Stop with Ctrl+C.',
    ]),
  );
}

bootstrap().catch((error: unknown) => {
  if (error instanceof SampleConfigError) {
    console.error(`\n${error.message}\n`);
  } else if (isDuoError(error) && error.code === 'config_invalid') {
    console.error(`\nThe Duo settings are invalid: ${error.message}\n(Check DUO_CLIENT_ID, DUO_CLIENT_SECRET, DUO_API_HOST and DUO_REDIRECT_URI.)\n`);
  } else {
    console.error('\nThe sample could not start:', error instanceof Error ? error.message : error, '\n');
  }
  process.exit(1);
});
