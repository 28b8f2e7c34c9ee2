// The app the README's e2e example tests: its Duo options come from the environment through
// @nestjs/config, exactly as in the README's forRootAsync example. The e2e example replaces them
// with the emulator's through overrideProvider(DUO_MODULE_OPTIONS), so the factory (and its
// getOrThrow calls, which would throw: no DUO_* variable is set in the tests) never runs.
import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { DuoModule, type DuoModuleOptions } from 'nestjs-duo';
import { AccountController, DuoCallbackController, LoginController } from './app.controllers.js';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true }),
    DuoModule.forRootAsync({
      isGlobal: true,
      inject: [ConfigService],
      useFactory: (config: ConfigService): DuoModuleOptions => ({
        clientId: config.getOrThrow('DUO_CLIENT_ID'),
        clientSecret: config.getOrThrow('DUO_CLIENT_SECRET'),
        apiHost: config.getOrThrow('DUO_API_HOST'),
        redirectUri: config.getOrThrow('DUO_REDIRECT_URI'),
      }),
    }),
  ],
  controllers: [LoginController, AccountController, DuoCallbackController],
})
export class AppModule {}
