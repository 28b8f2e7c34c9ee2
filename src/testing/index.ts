export { DuoEmulator } from './duo-emulator.js';
export type {
  DuoEmulatorAuthorizeRequest,
  DuoEmulatorClientOptions,
  DuoEmulatorEndpoint,
  DuoEmulatorFailure,
  DuoEmulatorFailureOptions,
  DuoEmulatorMode,
  DuoEmulatorOptions,
  DuoEmulatorStats,
  DuoEmulatorTlsOptions,
} from './duo-emulator.js';
