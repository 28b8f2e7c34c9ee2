import { Logger, Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule, ConfigService, type ConfigType } from '@nestjs/config';
import { DuoModule, type DuoEvent, type DuoModuleOptions } from 'nestjs-duo';
import { AuthController } from './auth.controller.js';
import { PagesController } from './pages.controller.js';
import { parseSampleConfig, sampleConfig } from './sample.config.js';
import { SampleDuoEmulator } from './sample-duo-emulator.js';
import { sensitiveController } from './sensitive.controller.js';
import { SessionStatusService } from './session-status.service.js';
import { UsersService } from './users.service.js';

/** Starts the emulator (or not) before DuoModule needs its address. */
@Module({
  providers: [{ provide: SampleDuoEmulator, inject: [sampleConfig.KEY], useFactory: (config: ConfigType<typeof sampleConfig>) => SampleDuoEmulator.start(config) }],
  exports: [SampleDuoEmulator],
})
class DuoBackendModule {}

function logEvent(logger: Logger, event: DuoEvent): void {
  const who = event.username ? ` user="${event.username}"` : '';
  if (event.type === 'second_factor_passed') logger.log(`second factor passed${who} factor=${event.factor ?? '?'}`);
  else if (event.type === 'prompt_started') logger.log(`sent to Duo's prompt${who}${event.maxAge === undefined ? '' : ` (step-up, max_age=${event.maxAge})`}`);
  else if (event.type === 'second_factor_failed') logger.warn(`second factor failed${who} code=${event.code}`);
  else logger.warn(`let through WITHOUT a second factor (fail-open)${who} reason=${event.reason}`);
}

@Module({})
export class AppModule {
  /**
   * Async because the configuration must be read before the step-up controller
   * is defined (its maxAge is decorator metadata): ConfigModule first loads a
   * `.env` file, if any, into process.env.
   */
  static async forRoot(): Promise<DynamicModule> {
    const configModule = await ConfigModule.forRoot({ isGlobal: true, cache: true, load: [sampleConfig] });
    // Fails here, before anything starts, naming every bad variable.
    const { stepUpSeconds } = parseSampleConfig(process.env);
    const audit = new Logger('DuoAudit');

    return {
      module: AppModule,
      imports: [
        configModule,
        DuoBackendModule,
        DuoModule.forRootAsync({
          isGlobal: true,
          imports: [DuoBackendModule],
          inject: [ConfigService, sampleConfig.KEY, SampleDuoEmulator],
          useFactory: (config: ConfigService, sample: ConfigType<typeof sampleConfig>, emulator: SampleDuoEmulator): DuoModuleOptions => ({
            ...(emulator.running
              ? emulator.clientOptions(sample.duo.redirectUri)
              : {
                  clientId: config.getOrThrow<string>('DUO_CLIENT_ID'),
                  clientSecret: config.getOrThrow<string>('DUO_CLIENT_SECRET'),
                  apiHost: config.getOrThrow<string>('DUO_API_HOST'),
                  redirectUri: config.getOrThrow<string>('DUO_REDIRECT_URI'),
                }),
            failMode: sample.failMode,
            // Browsers that are not signed in are sent here, with ?returnTo=.
            loginPath: '/login',
            appName: 'nestjs-duo sample',
            onEvent: (event) => logEvent(audit, event),
          }),
        }),
      ],
      controllers: [PagesController, AuthController, sensitiveController(stepUpSeconds)],
      providers: [UsersService, SessionStatusService],
    };
  }
}
