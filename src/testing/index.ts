export { DuoEmulator } from './duo-emulator.js';
export type { DuoEmulatorFailure } from './emulator.defects.js';
export type {
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
