import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { inspect, type InspectOptions } from 'node:util';
import { DuoHealth, type DuoHealthClient, type DuoStatus } from './duo-health.js';
import { DuoEventBus, type DuoEvent } from './duo.events.js';
import { DEFAULT_APPLICATION_NAME, resolveDuoSettings, type DuoModuleOptions, type DuoSettings } from './duo.options.js';
import { DuoClient, type DuoClientOptions, type DuoHealthCheckResult, type DuoIdTokenClaims, type DuoNonce, type DuoTokenChecks } from './protocol/index.js';
import { RedisTransactionStore } from './redis-transaction.store.js';
import { DuoTelemetry, resolveTelemetryOptions } from './telemetry.js';
import { isDuoHost } from './protocol/config.js';
import { MemoryAttemptCounter, PromptLimiter, type DuoAttemptCounter } from './prompt-limits.js';
import { SessionTransactionStore, type DuoTransactionStore } from './transaction.store.js';

/** What the applications of one module share: set by DuoApplications; a context made alone makes its own. */
export interface DuoContextShared {
  /** The application's name (`default` for top-level credentials). */
  name?: string;
  /** True when the module was configured with `applications`: events, logs and metrics then name the application. */
  named?: boolean;
  /** The store of pending logins, shared so that one callback route can serve every application. */
  store?: DuoTransactionStore;
  events?: DuoEventBus;
  /** The counter of the prompt limits (a store's, or one map in this process). */
  counter?: DuoAttemptCounter;
}

/** The events of one application: the shared bus, with the application's name on each event when the module names its applications. */
export interface DuoApplicationEvents {
  readonly events$: DuoEventBus['events$'];
  emit(event: DuoEvent): void;
}

/**
 * One Duo application as the module runs it: the protocol client and the
 * settings resolved from the options, the health cache, the store of pending
 * logins and the event bus. Internal: the service, the flow and the guards
 * share it. Several Duo applications are several of these, made and closed by
 * DuoApplications.
 */
export class DuoContext {
  readonly client: DuoClient;
  readonly settings: DuoSettings;
  readonly store: DuoTransactionStore;
  readonly health: DuoHealth;
  readonly events: DuoApplicationEvents;
  readonly #bus: DuoEventBus;
  readonly #ownsBus: boolean;
  readonly logger: Logger;
  /** The application's name in the module's options (`default` for top-level credentials). */
  readonly name: string;
  /** True when the module names its applications (`applications`). */
  readonly named: boolean;
  /** This Duo application: `clientId@host`. */
  readonly application: string;
  /**
   * This Duo application as the session's markers name it: the first 12
   * base64url characters (72 bits) of the SHA-256 of `clientId@host`. A marker
   * counts only for the application that wrote it; the digest keeps it short
   * whatever the host (issue 14: a marker under 200 bytes).
   */
  readonly markerTag: string;
  /** The redirect URI's path: where `@DuoCallback()` must be. */
  readonly callbackPath: string;
  /** Duo's clock minus ours, from the last health check that answered. */
  clockOffsetSeconds = 0;
  /** The OpenTelemetry instruments; undefined without `@opentelemetry/api` (or with `telemetry.enabled` false). */
  readonly telemetry: DuoTelemetry | undefined;
  /** Push-flood limits (`promptLimits`); undefined when they are off. */
  readonly limiter: PromptLimiter | undefined;

  constructor(options: DuoModuleOptions, shared: DuoContextShared = {}) {
    this.name = shared.name ?? DEFAULT_APPLICATION_NAME;
    this.named = shared.named ?? false;
    this.logger = new Logger(this.named ? `DuoModule:${this.name}` : 'DuoModule');
    this.client = new DuoClient(options as DuoClientOptions);
    this.settings = resolveDuoSettings(options, { duoHost: isDuoHost(new URL(this.client.config.baseUrl).hostname) });
    const telemetrySettings = resolveTelemetryOptions(options.telemetry);
    hideSecrets(options, this.client.config.proxy);
    const telemetry = DuoTelemetry.create(telemetrySettings, { baseUrl: this.client.config.baseUrl, ...(this.named ? { application: this.name } : {}) }, this.logger);
    this.telemetry = telemetry;
    const client = this.client;
    const healthClient: DuoHealthClient = telemetry ? { healthCheck: () => telemetry.duoCall('health_check', undefined, () => client.healthCheck()) } : client;
    this.health = new DuoHealth(
      healthClient,
      {
        failMode: this.settings.failMode,
        healthCheckCacheMs: this.settings.healthCheckCacheMs,
        timeoutMs: this.client.config.timeoutMs,
        bypassTtlMs: this.settings.bypassTtlMs,
      },
      this.logger,
    );
    const store = shared.store ?? this.settings.transactionStore ?? new SessionTransactionStore();
    this.store = telemetry ? telemetry.wrapStore(store, storeSystem(store)) : store;
    this.#ownsBus = shared.events === undefined;
    const bus = shared.events ?? new DuoEventBus(this.settings.onEvent, this.logger);
    this.#bus = bus;
    const name = this.name;
    this.events = this.named ? { events$: bus.events$, emit: (event) => bus.emit({ ...event, application: name }) } : bus;
    this.callbackPath = new URL(this.client.config.redirectUri).pathname;
    this.application = `${this.client.config.clientId}@${new URL(this.client.config.baseUrl).host}`;
    this.markerTag = createHash('sha256').update(this.application).digest('base64url').slice(0, 12);
    const limits = this.settings.promptLimits;
    // A store that keeps counts (RedisTransactionStore) shares them with every instance; otherwise they are this process's.
    const counter = shared.counter ?? counterOf(store);
    this.limiter = limits
      ? new PromptLimiter(limits, counter, this.application, {
          // The counts' keys are HMACs under the client secret, which every instance of the app shares.
          secret: options.clientSecret,
          caseInsensitive: this.client.config.usernameMatch === 'case-insensitive',
          warn: (message) => this.logger.warn(message),
        })
      : undefined;
  }

  /** A health check, cached: healthy answers for `healthCheckCacheSeconds`, failures for 5 s; concurrent callers share one call. */
  async cachedHealthCheck(): Promise<DuoHealthCheckResult> {
    return this.remember(await this.health.check());
  }

  /** Duo's health for probes (cached; at most one call to Duo per 5 s), keeping the clock offset it measured. */
  async status(): Promise<DuoStatus> {
    const status = await this.health.status();
    if (status.reachable && status.clockOffsetSeconds !== undefined) this.clockOffsetSeconds = status.clockOffsetSeconds;
    return status;
  }

  /** The code exchange (Duo's token call), traced and measured when telemetry is on. */
  exchangeAuthorizationCode(code: string, username: string, nonce: DuoNonce, checks?: DuoTokenChecks): Promise<DuoIdTokenClaims> {
    const telemetry = this.telemetry;
    if (!telemetry) return this.client.exchangeAuthorizationCode(code, username, nonce, checks);
    return telemetry.duoCall('token', username, () => this.client.exchangeAuthorizationCode(code, username, nonce, checks));
  }

  /** Keeps the clock offset a health check measured. */
  remember(result: DuoHealthCheckResult): DuoHealthCheckResult {
    this.clockOffsetSeconds = result.clockOffsetSeconds;
    return result;
  }

  /** With fail mode `open`: a warning, and one health check whose failure is logged as an error. */
  async bootstrap(): Promise<void> {
    await this.health.onBootstrap();
  }

  /** Closes the client (and the event bus when this context made its own). */
  async close(): Promise<void> {
    if (this.#ownsBus) this.#bus.complete();
    await this.client.close();
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, application: this.application, callbackPath: this.callbackPath };
  }
}

/** The prompt limits' counter: the store's when it keeps counts (shared by every instance), else a map in this process. */
export function counterOf(store: DuoTransactionStore): DuoAttemptCounter {
  return typeof (store as Partial<DuoAttemptCounter>).countAttempt === 'function' ? (store as unknown as DuoAttemptCounter) : new MemoryAttemptCounter();
}

/** The store's kind, for the `db.system.name` attribute: `session`, `redis`, or `custom` for an app's own. */
function storeSystem(store: DuoTransactionStore): string {
  if (store instanceof SessionTransactionStore) return 'session';
  if (store instanceof RedisTransactionStore) return 'redis';
  return 'custom';
}

/**
 * The options object is a provider anyone can inject and log. It gets a
 * `toJSON` (JSON.stringify, and the JSON loggers built on it) and a util.inspect
 * view (console.log, even with showHidden and getters) in which the secret and
 * the proxy URL (which may carry credentials) are replaced. Both are
 * non-enumerable and the properties themselves stay as they were, so a copy the
 * app spreads from the object later (`{ ...options, loginPath }`) still has its
 * credentials, and the module that gets the copy hides them again.
 */
export function hideSecrets(options: DuoModuleOptions, printableProxy: string | undefined): void {
  if (Object.isFrozen(options)) return;
  const hidden = (): Record<string, unknown> => ({
    ...options,
    ...('clientSecret' in options ? { clientSecret: '[hidden]' } : {}),
    ...('proxy' in options ? { proxy: printableProxy ?? '[hidden]' } : {}),
  });
  try {
    Object.defineProperty(options, 'toJSON', { value: hidden, enumerable: false, configurable: true, writable: true });
    Object.defineProperty(options, inspect.custom, {
      value: (_depth: number, inspectOptions: InspectOptions, show: typeof inspect = inspect): string => show(hidden(), { ...inspectOptions, showHidden: false, getters: false }),
      enumerable: false,
      configurable: true,
    });
  } catch {
    // An options object that will not take it keeps its shape; nothing we hold shows it.
  }
}
