import { Module } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule } from '@nestjs/core';
import { DuoCallbackRouteCheck } from './duo-callback.check.js';
import { DuoExceptionFilter } from './duo-exception.filter.js';
import { DuoCallbackGuard, DuoCallbackInterceptor } from './duo-callback.guard.js';
import { DuoConfigurableModule, DUO_MODULE_OPTIONS } from './duo.module-definition.js';
import { DuoApplications } from './duo.applications.js';
import { DuoContext } from './duo.context.js';
import { DuoFlow } from './duo.flow.js';
import { DuoService } from './duo.service.js';
import { DuoStrategy } from './duo.strategy.js';
import { SecondFactorGuard } from './second-factor.guard.js';

/**
 * `DuoModule.forRoot(options)` or `DuoModule.forRootAsync({ imports, inject, useFactory })`.
 * Options are validated when the module starts: a mistake stops the app with the option's name.
 * Pass `isGlobal: true` so that guards in every module find DuoService.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    DuoApplications,
    // The default application's context and flow, for everything that serves one application.
    { provide: DuoContext, useFactory: (applications: DuoApplications) => applications.default, inject: [DuoApplications] },
    { provide: DuoFlow, useFactory: (applications: DuoApplications) => applications.flow(), inject: [DuoApplications] },
    DuoService,
    DuoCallbackRouteCheck,
    DuoStrategy,
    SecondFactorGuard,
    DuoCallbackGuard,
    DuoCallbackInterceptor,
    DuoExceptionFilter,
    // Renders the module's own exceptions in global mode (APP_GUARD), where no route-level filter is bound.
    { provide: APP_FILTER, useExisting: DuoExceptionFilter },
  ],
  exports: [DuoService, DuoApplications, DuoContext, DuoFlow, SecondFactorGuard, DuoCallbackGuard, DuoCallbackInterceptor, DuoExceptionFilter, DUO_MODULE_OPTIONS],
})
export class DuoModule extends DuoConfigurableModule {}
