// nestjs-duo: what an app writes. Duo's protocol client is `nestjs-duo/protocol`;
// the Duo emulator for tests is `nestjs-duo/testing`.

// The module and its options
export { DuoModule } from './duo.module.js';
export { DUO_MODULE_OPTIONS } from './duo.module-definition.js';
export type { DuoApplicationOptions, DuoModuleOptions, DuoFailMode, DuoRequest } from './duo.options.js';
export type { DuoTelemetryOptions } from './telemetry.js';

// The service (Duo's SDK workflow, verification, events)
export { DuoService } from './duo.service.js';
export type {
  DuoEvent,
  DuoPromptStartedEvent,
  DuoPassedEvent,
  DuoFailedEvent,
  DuoBypassedEvent,
  DuoPromptLimitedEvent,
  DuoRuleRefusedEvent,
} from './duo.events.js';
export type { DuoStatus } from './duo-health.js';
export type { DuoPromptLimitOptions, DuoLimitRule, DuoAttemptCounter, DuoAttemptCount } from './prompt-limits.js';
export type { VerifiedMarker, BypassMarker, DuoSessionData } from './second-factor.session.js';

// Protecting routes
export { RequireSecondFactor, SkipSecondFactor } from './require-second-factor.decorator.js';
export { SecondFactorGuard } from './second-factor.guard.js';
export { RETURN_TO_HEADER } from './duo.constants.js';
export type { RequireSecondFactorOptions } from './duo.constants.js';
export { DUO_FACTORS } from './factor-rules.js';
export type { DuoFactor, DuoFactorDescription } from './factor-rules.js';
export { safeReturnPath } from './request.util.js';

// The callback
export { DuoCallback, DuoCallbackResult } from './duo-callback.guard.js';
export type { DuoCallbackOutcome, SecondFactorResult } from './duo.flow.js';

// Errors
export { DuoHttpException } from './duo.exception.js';
export type { DuoErrorBody } from './duo.exception.js';
export type { DuoErrorCode } from './duo.errors.js';
export type { DuoErrorPageOptions, DuoErrorPageContext, DuoErrorPageTexts, DuoErrorPageTextOptions } from './duo-error-page.js';
export { DuoError, DuoConfigError, isDuoError, expectNoNonce } from './protocol/index.js';
export type {
  DuoNonce,
  DuoClientOptions,
  DuoAuthUrlOptions,
  DuoAuthUrlExtras,
  DuoAuthorization,
  DuoHealthCheckResult,
  DuoIdTokenClaims,
  DuoTokenChecks,
} from './protocol/index.js';

// Stores and sessions
export { SessionTransactionStore } from './transaction.store.js';
export type { DuoTransactionStore, DuoStoreContext, DuoStoreSessionData, PendingTransaction } from './transaction.store.js';
export { RedisTransactionStore } from './redis-transaction.store.js';
export type { RedisTransactionClient, RedisTransactionStoreOptions, RedisScriptOptions } from './redis-transaction.store.js';
export { guardSessionStore } from './session-store.middleware.js';
export type { GuardSessionStoreOptions, SessionMiddleware } from './session-store.middleware.js';
