import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { DuoModuleOptions } from './duo.options.js';

export const {
  ConfigurableModuleClass: DuoConfigurableModule,
  MODULE_OPTIONS_TOKEN: DUO_MODULE_OPTIONS,
  OPTIONS_TYPE: DUO_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: DUO_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<DuoModuleOptions>({ moduleName: 'Duo' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createDuoOptions')
  // setExtras needs its transform: without it `isGlobal` would be accepted and ignored.
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
