export { DuoEmulator, DuoEmulatorApplication } from './duo-emulator.js';
export type { DuoEmulatorFailure } from './emulator.defects.js';
export type {
  DuoEmulatorApplicationOptions,
  DuoEmulatorAuthContext,
  DuoEmulatorAuthorizeRequest,
  DuoEmulatorClientOptions,
  DuoEmulatorEndpoint,
  DuoEmulatorFailureOptions,
  DuoEmulatorMode,
  DuoEmulatorOptions,
  DuoEmulatorStats,
  DuoEmulatorTlsOptions,
} from './emulator.types.js';
