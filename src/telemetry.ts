import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import type * as OTel from '@opentelemetry/api';
import { DuoConfigError, NESTJS_DUO_VERSION, isDuoError } from './protocol/index.js';
import type { DuoStoreContext, DuoTransactionStore, PendingTransaction } from './transaction.store.js';

/**
 * The `telemetry` option: OpenTelemetry metrics and spans, through the app's
 * own `@opentelemetry/api` (an optional peer dependency). Without that package
 * the module loads nothing and records nothing.
 */
export interface DuoTelemetryOptions {
  /** Record metrics and spans when `@opentelemetry/api` is installed. Default true. */
  enabled?: boolean;
  /**
   * Put the user's name (`user.name`) on the spans of Duo's token call and of
   * the store calls. Default false. Never on metrics (one series per user).
   */
  recordUsernames?: boolean;
}

/** The `telemetry` option after validation. */
export interface DuoTelemetrySettings {
  readonly enabled: boolean;
  readonly recordUsernames: boolean;
}

const TELEMETRY_KEYS: ReadonlySet<string> = new Set(['enabled', 'recordUsernames']);

/** Checks the `telemetry` option; a mistake is a DuoConfigError naming it. */
export function resolveTelemetryOptions(value: unknown): DuoTelemetrySettings {
  if (value === undefined) return { enabled: true, recordUsernames: false };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DuoConfigError('Duo option "telemetry" must be an object such as { recordUsernames: false }, or left out.');
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!TELEMETRY_KEYS.has(key)) throw new DuoConfigError(`Duo option "telemetry.${key}" is unknown: the telemetry options are "enabled" and "recordUsernames".`);
  }
  for (const key of TELEMETRY_KEYS) {
    if (record[key] !== undefined && typeof record[key] !== 'boolean') throw new DuoConfigError(`Duo option "telemetry.${key}" must be true or false.`);
  }
  return { enabled: record.enabled !== false, recordUsernames: record.recordUsernames === true };
}

type OTelApi = typeof OTel;

/**
 * Where the app's `@opentelemetry/api` is looked for: from the app's main script, then from its
 * working directory. Not from this file: that needs `import.meta.url`, which a CommonJS build of
 * this package (Jest's ts-jest transform of node_modules/nestjs-duo) cannot parse. The API keeps its
 * providers in one global registry, so any compatible copy the app resolves is the one it set up.
 */
function apiRequirers(): Array<NodeJS.Require> {
  const bases = [process.argv[1], join(process.cwd(), 'package.json')].filter((base): base is string => typeof base === 'string' && base.length > 0);
  return bases.map((base) => createRequire(resolve(base)));
}

/**
 * The app's `@opentelemetry/api`, or undefined when it is not installed.
 * Resolved once per module instance (Node caches the package), never imported
 * statically: without the package nothing of OpenTelemetry is loaded.
 */
function loadApi(logger: LoggerService): OTelApi | undefined {
  for (const requireOptional of apiRequirers()) {
    try {
      return requireOptional('@opentelemetry/api') as OTelApi;
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') {
        logger.warn('@opentelemetry/api is installed but could not be loaded; Duo telemetry is off. Reinstall it (npm ls @opentelemetry/api).');
        return undefined;
      }
    }
  }
  return undefined;
}

/** Duo's endpoints the module calls. */
export type DuoEndpoint = 'health_check' | 'token';
const ENDPOINT_PATHS: Record<DuoEndpoint, string> = { health_check: '/oauth/v1/health_check', token: '/oauth/v1/token' };

/** The codes counted as throttled when a login start is refused with them: Duo's 429, our own full cap on calls to Duo, and the prompt limits. */
const THROTTLE_CODES: ReadonlySet<string> = new Set(['duo_rate_limited', 'duo_overloaded', 'prompt_rate_limited']);

/** Seconds, for the duration histograms: the buckets of the semantic conventions' `http.client.request.duration`. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** The `error.type` of a failure: a DuoError's code, else the error's class name when it is a plain identifier, else `_OTHER`. */
function errorType(error: unknown): string {
  if (isDuoError(error)) return error.code;
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' && /^[A-Za-z][A-Za-z0-9_.]{0,63}$/.test(name) ? name : '_OTHER';
}

/** Where the module calls Duo: for `server.address` and `server.port`. */
export interface DuoTelemetryTarget {
  baseUrl: string;
  /** The application's name, on every metric and span as `duo.application` (only when the module names its applications). */
  application?: string;
}

/**
 * The module's OpenTelemetry instruments (one set per DuoContext). Made only
 * when `@opentelemetry/api` is installed and telemetry is enabled; everywhere
 * else the module holds `undefined` and pays one check. Attributes are fixed
 * names and low-cardinality values (endpoint, code, store kind): never a
 * secret, code, state, nonce, token or Duo's text; the user's name only on
 * spans and only with `recordUsernames`.
 */
export class DuoTelemetry {
  readonly #api: OTelApi;
  readonly #tracer: OTel.Tracer;
  readonly #recordUsernames: boolean;
  readonly #server: OTel.Attributes;
  /** `duo.application`, when the module names its applications; else nothing. */
  readonly #app: OTel.Attributes;
  readonly #promptsStarted: OTel.Counter;
  readonly #promptsThrottled: OTel.Counter;
  readonly #passed: OTel.Counter;
  readonly #failed: OTel.Counter;
  readonly #bypassed: OTel.Counter;
  readonly #requestDuration: OTel.Histogram;
  readonly #inFlight: OTel.UpDownCounter;
  readonly #storeDuration: OTel.Histogram;
  readonly #storeErrors: OTel.Counter;

  private constructor(api: OTelApi, settings: DuoTelemetrySettings, target: DuoTelemetryTarget) {
    this.#api = api;
    this.#recordUsernames = settings.recordUsernames;
    const url = new URL(target.baseUrl);
    const port = url.port === '' ? (url.protocol === 'http:' ? 80 : 443) : Number(url.port);
    this.#app = target.application === undefined ? {} : { 'duo.application': target.application };
    this.#server = { 'server.address': url.hostname, 'server.port': port, ...this.#app };
    this.#tracer = api.trace.getTracer('nestjs-duo', NESTJS_DUO_VERSION);
    const meter = api.metrics.getMeter('nestjs-duo', NESTJS_DUO_VERSION);
    this.#promptsStarted = meter.createCounter('duo.prompts.started', { description: 'Logins sent to Duo\'s prompt.', unit: '{prompt}' });
    this.#promptsThrottled = meter.createCounter('duo.prompts.throttled', {
      description: 'Login starts refused because Duo rate-limited this integration or the cap on calls to Duo was full (also counted in duo.second_factor.failed).',
      unit: '{prompt}',
    });
    this.#passed = meter.createCounter('duo.second_factor.passed', { description: 'Second factors Duo verified.', unit: '{login}' });
    this.#failed = meter.createCounter('duo.second_factor.failed', { description: 'Login starts and callbacks refused, by error.type (the error code).', unit: '{login}' });
    this.#bypassed = meter.createCounter('duo.second_factor.bypassed', {
      description: 'Users let through without a second factor by fail mode "open", by error.type (why Duo was skipped).',
      unit: '{login}',
    });
    this.#requestDuration = meter.createHistogram('duo.client.request.duration', {
      description: 'Duration of calls to Duo\'s API, by duo.endpoint.',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.#inFlight = meter.createUpDownCounter('duo.client.requests.in_flight', { description: 'Calls to Duo\'s API in flight.', unit: '{request}' });
    this.#storeDuration = meter.createHistogram('duo.store.operation.duration', {
      description: 'Duration of the calls to the store of pending logins.',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.#storeErrors = meter.createCounter('duo.store.operation.errors', { description: 'Failed calls to the store of pending logins, by error.type.', unit: '{operation}' });
  }

  /** The instruments, or undefined when telemetry is disabled or `@opentelemetry/api` is not installed. */
  static create(settings: DuoTelemetrySettings, target: DuoTelemetryTarget, logger: LoggerService): DuoTelemetry | undefined {
    if (!settings.enabled) return undefined;
    const api = loadApi(logger);
    return api ? new DuoTelemetry(api, settings, target) : undefined;
  }

  promptStarted(stepUp: boolean): void {
    this.#promptsStarted.add(1, { 'duo.step_up': stepUp, ...this.#app });
  }

  /** A login start refused (never a bypass): failed by code, and throttled when Duo or our cap refused it. */
  promptRefused(error: unknown): void {
    const type = errorType(error);
    this.#failed.add(1, { 'error.type': type, 'duo.stage': 'start', ...this.#app });
    if (THROTTLE_CODES.has(type)) this.#promptsThrottled.add(1, { 'error.type': type, ...this.#app });
  }

  /** A refused callback (anonymous ones included, which the events report only once per 10 s). */
  callbackFailed(code: string): void {
    this.#failed.add(1, { 'error.type': code, 'duo.stage': 'callback', ...this.#app });
  }

  passed(): void {
    this.#passed.add(1, this.#app);
  }

  bypassed(reason: string): void {
    this.#bypassed.add(1, { 'error.type': reason, ...this.#app });
  }

  /** One call to Duo: a CLIENT span (`POST /oauth/v1/token`), its duration, and the in-flight count. */
  async duoCall<T>(endpoint: DuoEndpoint, username: string | undefined, call: () => Promise<T>): Promise<T> {
    const path = ENDPOINT_PATHS[endpoint];
    const common: OTel.Attributes = { 'duo.endpoint': endpoint, 'http.request.method': 'POST', ...this.#server };
    const attributes: OTel.Attributes = { ...common, 'url.template': path };
    if (this.#recordUsernames && username !== undefined) attributes['user.name'] = username;
    return this.#traced(`POST ${path}`, this.#api.SpanKind.CLIENT, attributes, call, (seconds, error) => {
      this.#requestDuration.record(seconds, error === undefined ? common : { ...common, 'error.type': errorType(error) });
    }, () => this.#inFlight.add(1, common), () => this.#inFlight.add(-1, common));
  }

  /** One call to the store of pending logins: a span (`duo.store create`), its duration, and its errors. */
  async storeCall<T>(system: string, operation: 'create' | 'take', username: string | undefined, call: () => Promise<T>, usernameOf: (result: T) => string | undefined): Promise<T> {
    const common: OTel.Attributes = { 'db.system.name': system, 'db.operation.name': operation, ...this.#app };
    const kind = system === 'session' ? this.#api.SpanKind.INTERNAL : this.#api.SpanKind.CLIENT;
    return this.#traced(
      `duo.store ${operation}`,
      kind,
      this.#recordUsernames && username !== undefined ? { ...common, 'user.name': username } : common,
      call,
      (seconds, error) => {
        if (error === undefined) {
          this.#storeDuration.record(seconds, common);
          return;
        }
        const failed = { ...common, 'error.type': errorType(error) };
        this.#storeDuration.record(seconds, failed);
        this.#storeErrors.add(1, failed);
      },
      undefined,
      undefined,
      this.#recordUsernames ? usernameOf : undefined,
    );
  }

  /** The store as the module calls it: every call measured and traced (the store itself is left as it is). */
  wrapStore(store: DuoTransactionStore, system: string): DuoTransactionStore {
    return {
      create: (transaction: PendingTransaction, context: DuoStoreContext) =>
        this.storeCall(system, 'create', transaction.username, () => store.create(transaction, context), () => undefined),
      take: (state: string, context: DuoStoreContext) => this.storeCall(system, 'take', undefined, () => store.take(state, context), (found) => found?.username),
    };
  }

  async #traced<T>(
    name: string,
    kind: OTel.SpanKind,
    attributes: OTel.Attributes,
    call: () => Promise<T>,
    measured: (seconds: number, error: unknown) => void,
    began?: () => void,
    ended?: () => void,
    usernameOf?: (result: T) => string | undefined,
  ): Promise<T> {
    const api = this.#api;
    return this.#tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
      began?.();
      const started = performance.now();
      try {
        const result = await call();
        measured((performance.now() - started) / 1000, undefined);
        const username = usernameOf?.(result);
        if (username !== undefined) span.setAttribute('user.name', username);
        return result;
      } catch (error) {
        measured((performance.now() - started) / 1000, error ?? new Error('undefined'));
        const type = errorType(error);
        // The code only: never the message or the stack, which are not ours to vouch for.
        span.setAttribute('error.type', type);
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: type });
        throw error;
      } finally {
        ended?.();
        span.end();
      }
    });
  }
}
