import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, ConfigService, type ConfigType } from '@nestjs/config';
import { DuoModule, RedisTransactionStore, type DuoApplicationOptions, type DuoEvent, type DuoModuleOptions } from 'nestjs-duo';
import type { RedisClientType } from 'redis';
import { AdminController } from './admin.controller.js';
import { AuthController } from './auth.controller.js';
import { SAMPLE_INSTANCE } from './cluster.js';
import { PagesController } from './pages.controller.js';
import { parseSampleConfig, sampleConfig, type SampleConfig, type SampleInstance } from './sample.config.js';
import { SampleDuoEmulator } from './sample-duo-emulator.js';
import { sensitiveController } from './sensitive.controller.js';
import { SessionStatusService } from './session-status.service.js';
import { UsersService } from './users.service.js';

/** What main.ts starts once per process and hands to every app instance. */
export interface SampleAppSetup {
  /** ConfigModule.forRoot(), from loadSampleConfig(). */
  configModule: DynamicModule;
  config: SampleConfig;
  /** Which of the SAMPLE_INSTANCES this app is. */
  instance: SampleInstance;
  /** The process's one emulator (or none, with real Duo). */
  emulator: SampleDuoEmulator;
  /** Cluster mode (REDIS_URL): the process's one Redis client, for pending Duo logins. */
  redis?: RedisClientType;
}

/**
 * Loads a `.env` file, if any, into process.env (ConfigModule does), then reads
 * the settings. Fails here, before anything starts, naming every bad variable.
 */
export async function loadSampleConfig(): Promise<{ configModule: DynamicModule; config: SampleConfig }> {
  const configModule = await ConfigModule.forRoot({ isGlobal: true, cache: true, load: [sampleConfig] });
  return { configModule, config: parseSampleConfig(process.env) };
}

@Module({})
class SampleSharedModule {}

/** The process-wide parts (emulator) and this instance's settings, as providers. */
function sharedModule(setup: SampleAppSetup): DynamicModule {
  return {
    module: SampleSharedModule,
    global: true,
    providers: [
      { provide: SampleDuoEmulator, useValue: setup.emulator },
      { provide: SAMPLE_INSTANCE, useValue: setup.instance },
    ],
    exports: [SampleDuoEmulator, SAMPLE_INSTANCE],
  };
}

function logEvent(logger: Logger, event: DuoEvent): void {
  const who = `${event.application ? ` application=${event.application}` : ''}${event.username ? ` user="${event.username}"` : ''}`;
  if (event.type === 'second_factor_passed') logger.log(`second factor passed${who} factor=${event.factor ?? '?'}`);
  else if (event.type === 'prompt_started') logger.log(`sent to Duo's prompt${who}${event.maxAge === undefined ? '' : ` (step-up, max_age=${event.maxAge})`}`);
  else if (event.type === 'second_factor_failed') logger.warn(`second factor failed${who} code=${event.code}`);
  else if (event.type === 'prompt_limited') logger.warn(`prompt refused by promptLimits${who} scope=${event.scope} retry in ${event.retryAfterSeconds} s`);
  else logger.warn(`let through WITHOUT a second factor (fail-open)${who} reason=${event.reason}`);
}

/** Real Duo: the DUO_* application for the staff pages, and DUO_ADMIN_* (or the same one) for the admin area. */
function realDuoApplications(env: ConfigService, sample: ConfigType<typeof sampleConfig>): Record<string, DuoApplicationOptions> {
  const staff: DuoApplicationOptions = {
    clientId: env.getOrThrow<string>('DUO_CLIENT_ID'),
    clientSecret: env.getOrThrow<string>('DUO_CLIENT_SECRET'),
    apiHost: env.getOrThrow<string>('DUO_API_HOST'),
    redirectUri: env.getOrThrow<string>('DUO_REDIRECT_URI'),
  };
  const admin = sample.duo.kind === 'duo' ? sample.duo.admin : undefined;
  return { staff, admin: { ...staff, ...admin, appName: 'nestjs-duo sample admin' } };
}

@Module({})
export class AppModule {
  /**
   * One app instance. The configuration is read first (loadSampleConfig) because
   * the step-up controller's maxAge is decorator metadata, fixed when the class
   * is defined.
   */
  static forRoot(setup: SampleAppSetup): DynamicModule {
    const { config, instance, redis } = setup;
    const several = config.instances.length > 1;
    const audit = new Logger(several ? `DuoAudit#${instance.index}` : 'DuoAudit');
    const shared = sharedModule(setup);

    return {
      module: AppModule,
      imports: [
        setup.configModule,
        shared,
        DuoModule.forRootAsync({
          isGlobal: true,
          imports: [shared],
          inject: [ConfigService, sampleConfig.KEY, SampleDuoEmulator],
          useFactory: (env: ConfigService, sample: ConfigType<typeof sampleConfig>, emulator: SampleDuoEmulator): DuoModuleOptions => ({
            // Two Duo applications: the staff one for the account pages, a second one (its own policy) for /admin.
            applications: emulator.running
              ? { staff: emulator.clientOptions(sample.duo.redirectUri), admin: { ...emulator.adminClientOptions(sample.duo.redirectUri), appName: 'nestjs-duo sample admin' } }
              : realDuoApplications(env, sample),
            defaultApplication: 'staff',
            failMode: sample.failMode,
            // Browsers that are not signed in are sent here, with ?returnTo=.
            loginPath: '/login',
            appName: 'nestjs-duo sample',
            // Cluster mode: a login started on one instance can finish on any other, exactly once.
            ...(redis ? { transactionStore: new RedisTransactionStore(redis) } : {}),
            onEvent: (event) => logEvent(audit, event),
          }),
        }),
      ],
      controllers: [PagesController, AuthController, AdminController, sensitiveController(config.stepUpSeconds)],
      providers: [UsersService, SessionStatusService],
    };
  }
}
