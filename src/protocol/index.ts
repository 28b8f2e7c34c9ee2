export { DuoClient, CLOCK_LEEWAY_SECONDS } from './duo-client.js';
export { resolveClientConfig, isLoopbackHost } from './config.js';
export type { DuoTokenChecks } from './duo-client.js';
export type { DuoClientOptions, ResolvedDuoClientConfig, DuoEndpoints, UsernameMatch } from './config.js';
export { DuoError, DuoConfigError, isDuoError, DUO_ERROR_STATUS } from './errors.js';
export type { DuoErrorCode } from './errors.js';
export { generateState, generateNonce } from './random.js';
export { NESTJS_DUO_VERSION } from './version.js';
export type * from './types.js';
