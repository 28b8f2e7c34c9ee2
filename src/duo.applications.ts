import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { counterOf, DuoContext, hideSecrets } from './duo.context.js';
import { DuoEventBus } from './duo.events.js';
import { DuoFlow } from './duo.flow.js';
import { DUO_MODULE_OPTIONS } from './duo.module-definition.js';
import {
  APPLICATION_NAME,
  DEFAULT_APPLICATION_NAME,
  SHARED_CLIENT_OPTIONS,
  type DuoApplicationOptions,
  type DuoModuleOptions,
  type DuoRequest,
} from './duo.options.js';
import type { DuoErrorCode } from './duo.errors.js';
import { DuoConfigError, DuoError } from './protocol/index.js';
import { printable } from './request.util.js';
import { Throttle } from './throttle.js';
import { SessionTransactionStore, type DuoTransactionStore } from './transaction.store.js';

/** The options of one application's own: what `applications.<name>` may not leave to the top level. */
const CREDENTIALS = ['clientId', 'clientSecret', 'apiHost', 'redirectUri'] as const;
/** Options of the module itself, not of an application. */
const MODULE_ONLY = ['applications', 'defaultApplication', 'resolveApplication'] as const;
/** At most this many unknown names are remembered for "logged once" (a resolver fed by Host headers sees arbitrary names). */
const MAX_LOGGED_NAMES = 100;

/**
 * The Duo applications of one module, by name: one DuoContext (client,
 * health, telemetry) and one DuoFlow each, sharing the store of pending
 * logins, the event bus and the prompt limits' counter. Top-level credentials
 * are the one application `default`. Internal: the guard picks a request's
 * application here, the callback finds a pending login's.
 */
@Injectable()
export class DuoApplications implements OnApplicationBootstrap, OnModuleDestroy {
  /** The application a route uses when nothing names another. */
  readonly default: DuoContext;
  /** True when the module was configured with `applications`. */
  readonly named: boolean;
  readonly #contexts = new Map<string, DuoContext>();
  readonly #flows = new Map<string, DuoFlow>();
  readonly #resolve: DuoModuleOptions['resolveApplication'];
  readonly #events: DuoEventBus | undefined;
  readonly #logger = new Logger('DuoModule');
  readonly #unknownLogged = new Set<string>();
  readonly #resolverFailures = new Throttle(60_000);

  constructor(@Inject(DUO_MODULE_OPTIONS) options: DuoModuleOptions) {
    const applications = options.applications;
    if (applications === undefined) {
      for (const key of ['defaultApplication', 'resolveApplication'] as const) {
        if (options[key] !== undefined) throw new DuoConfigError(`Duo option "${key}" needs "applications": name your Duo applications there, or leave "${key}" out.`);
      }
      const context = new DuoContext(options);
      this.named = false;
      this.default = context;
      this.#add(DEFAULT_APPLICATION_NAME, context);
      return;
    }
    this.named = true;
    if (applications === null || typeof applications !== 'object' || Array.isArray(applications)) {
      throw new DuoConfigError('Duo option "applications" must be an object of applications by name, such as { staff: { clientId, clientSecret, apiHost, redirectUri } }.');
    }
    const names = Object.keys(applications);
    if (names.length === 0) throw new DuoConfigError('Duo option "applications" names no application: give at least one, or use the top-level clientId, clientSecret, apiHost and redirectUri.');
    for (const key of CREDENTIALS) {
      if (options[key] !== undefined) {
        throw new DuoConfigError(`Duo option "${key}" is set at the top level and "applications" too: move it into each application (applications.<name>.${key}).`);
      }
    }
    for (const name of names) {
      if (!APPLICATION_NAME.test(name)) {
        throw new DuoConfigError(`Duo option "applications" has the name ${JSON.stringify(printable(name, 80))}: names are 1 to 64 letters, digits, "_" or "-" (not __proto__).`);
      }
    }
    const defaultName = options.defaultApplication ?? (names.length === 1 ? names[0] : undefined);
    if (defaultName === undefined) {
      throw new DuoConfigError(`Duo option "defaultApplication" is required with several applications: name the one routes use by default (one of ${names.join(', ')}).`);
    }
    if (typeof defaultName !== 'string' || !Object.hasOwn(applications, defaultName)) {
      throw new DuoConfigError(`Duo option "defaultApplication" is ${JSON.stringify(printable(String(defaultName), 80))}, which is not in "applications" (${names.join(', ')}).`);
    }
    if (options.resolveApplication !== undefined && typeof options.resolveApplication !== 'function') {
      throw new DuoConfigError('Duo option "resolveApplication" must be a function of the request returning an application name (or undefined for the default).');
    }
    this.#resolve = options.resolveApplication;

    // What every application shares: the module's options, the top-level transport options as defaults, one store, one bus, one counter.
    const shared: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(options)) {
      if (!(MODULE_ONLY as readonly string[]).includes(key)) shared[key] = value;
    }
    const store: DuoTransactionStore = (options.transactionStore as DuoTransactionStore | undefined) ?? new SessionTransactionStore();
    const events = new DuoEventBus(options.onEvent, this.#logger);
    this.#events = events;
    const counter = counterOf(store);
    for (const name of names) {
      const own = applications[name];
      if (own === null || typeof own !== 'object' || Array.isArray(own)) {
        throw new DuoConfigError(`Duo option "applications.${name}" must be an object with clientId, clientSecret, apiHost and redirectUri.`);
      }
      // Read, not spread: the secret and proxy of an options object the module saw before are non-enumerable (hidden).
      const merged = { ...shared, ...pick(options, SHARED_CLIENT_OPTIONS), ...own, ...pick(own, ['clientSecret', 'proxy']) } as DuoModuleOptions;
      let context: DuoContext;
      try {
        context = new DuoContext(merged, { name, named: true, store, events, counter });
      } catch (error) {
        if (error instanceof DuoConfigError) throw new DuoConfigError(`applications.${name}: ${error.message}`);
        throw error;
      }
      hideSecrets(own as DuoApplicationOptions & DuoModuleOptions, context.client.config.proxy);
      this.#add(name, context);
    }
    this.default = this.#contexts.get(defaultName)!;
    // The top-level options object is a provider anyone can inject and log, as in the single-application case.
    hideSecrets(options, this.default.client.config.proxy);
  }

  /** Every application, the default first. */
  get contexts(): DuoContext[] {
    return [this.default, ...[...this.#contexts.values()].filter((context) => context !== this.default)];
  }

  get names(): string[] {
    return [...this.#contexts.keys()];
  }

  get(name: string): DuoContext | undefined {
    return this.#contexts.get(name);
  }

  /** The flow of an application; undefined name: the default's. */
  flow(name?: string): DuoFlow | undefined {
    return name === undefined ? this.#flows.get(this.default.name) : this.#flows.get(name);
  }

  /** The flow of a request whose route names no application, when that needs no `resolveApplication` (else undefined: call `resolve()`). */
  resolveNow(): DuoFlow | undefined {
    return this.#resolve ? undefined : this.flow();
  }

  /**
   * The application of a request whose route names none: `resolveApplication`,
   * else the default. Refuses a name that is not registered (400
   * `application_unknown`, logged once per name) and a resolver that fails
   * (503 `application_unavailable`, logged at most once a minute).
   */
  async resolve(request: DuoRequest): Promise<DuoFlow> {
    const resolver = this.#resolve;
    if (!resolver) return this.flow()!;
    let name: unknown;
    // A resolver that never settles (a tenant lookup that hangs) must not hold the request: it gets the session deadline.
    const deadlineMs = this.default.settings.sessionTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      const late = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error('late')), deadlineMs);
      });
      name = await Promise.race([Promise.resolve().then(() => resolver(request)), late]);
    } catch {
      const suppressed = this.#resolverFailures.pass(Date.now());
      if (suppressed !== undefined) {
        const more = suppressed > 0 ? ` (${suppressed} more in the last minute were not logged)` : '';
        this.#logger.error(
          `resolveApplication threw, rejected or took longer than sessionTimeoutMs (${deadlineMs} ms); the request was refused with 503 application_unavailable${more}. ` +
            'Make it return a name, or undefined for the default application, in time.',
        );
      }
      throw new DuoError<DuoErrorCode>('application_unavailable', 'The Duo application for this request could not be determined. Nothing was let through; try again shortly.');
    } finally {
      clearTimeout(timer);
    }
    if (name === undefined || name === null) return this.flow()!;
    const flow = typeof name === 'string' ? this.#flows.get(name) : undefined;
    if (flow) return flow;
    const shown = typeof name === 'string' ? JSON.stringify(printable(name, 64)) : `a ${typeof name}`;
    if (!this.#unknownLogged.has(shown) && this.#unknownLogged.size < MAX_LOGGED_NAMES) {
      this.#unknownLogged.add(shown);
      this.#logger.warn(`resolveApplication returned ${shown}, which is not in "applications" (${this.names.join(', ')}); such requests are refused with 400 application_unknown.`);
    }
    throw new DuoError<DuoErrorCode>('application_unknown', 'This site has no Duo sign-in for this address. Check the address you opened.');
  }

  async onApplicationBootstrap(): Promise<void> {
    await Promise.all([...this.#contexts.values()].map((context) => context.bootstrap()));
  }

  async onModuleDestroy(): Promise<void> {
    this.#events?.complete();
    await Promise.all([...this.#contexts.values()].map((context) => context.close()));
  }

  toJSON(): Record<string, unknown> {
    return { default: this.default.name, applications: this.names };
  }

  #add(name: string, context: DuoContext): void {
    this.#contexts.set(name, context);
    this.#flows.set(name, new DuoFlow(context, (application) => (application === undefined ? (this.named ? undefined : this.#flows.get(DEFAULT_APPLICATION_NAME)) : this.named ? this.#flows.get(application) : undefined)));
  }
}

function pick(options: object, keys: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const key of keys) {
    const value = (options as Record<string, unknown>)[key];
    if (value !== undefined) picked[key] = value;
  }
  return picked;
}
