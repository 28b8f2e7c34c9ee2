/**
 * OpenTelemetry through the optional `@opentelemetry/api`: a login on Express
 * and Fastify, against the emulator, with the OTel SDK's in-memory exporters,
 * produces the metrics and spans with their names and attributes, and nothing
 * exported carries a secret, code, state, nonce, token or the username (unless
 * the app opts in, and then on spans only). Without an SDK, or without the API
 * package at all, logins work and nothing is recorded.
 */
import Module from 'node:module';
import { metrics, trace } from '@opentelemetry/api';
import { DataPointType, MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SessionTransactionStore, type DuoTransactionStore } from '../../src/index.js';
import type { DuoEmulator } from '../../src/testing/index.js';
import { PLATFORMS, loginWithDuo, pathOf, perTestApps, wireSecrets, type Platform } from './fixtures.js';

/** A reader the test collects by hand (cumulative sums and histograms). */
class ManualReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

interface Point {
  attributes: Record<string, unknown>;
  value: unknown;
}

/** A fresh SDK, registered globally, for one test: its metrics and finished spans. */
class Otel {
  readonly reader = new ManualReader();
  readonly spans = new InMemorySpanExporter();
  readonly meterProvider = new MeterProvider({ readers: [this.reader] });
  readonly tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(this.spans)] });

  register(): this {
    metrics.disable();
    trace.disable();
    expect(metrics.setGlobalMeterProvider(this.meterProvider)).toBe(true);
    expect(trace.setGlobalTracerProvider(this.tracerProvider)).toBe(true);
    return this;
  }

  async metrics(): Promise<MetricData[]> {
    const { resourceMetrics, errors } = await this.reader.collect();
    expect(errors).toEqual([]);
    return resourceMetrics.scopeMetrics.filter((scope) => scope.scope.name === 'nestjs-duo').flatMap((scope) => scope.metrics);
  }

  async points(name: string): Promise<Point[]> {
    const metric = (await this.metrics()).find((candidate) => candidate.descriptor.name === name);
    return (metric?.dataPoints ?? []).map((point) => ({ attributes: { ...point.attributes }, value: point.value }));
  }

  /** The sum of a counter's points whose attributes include `where`. */
  async count(name: string, where: Record<string, unknown> = {}): Promise<number> {
    const points = await this.points(name);
    return points.filter((point) => matches(point.attributes, where)).reduce((sum, point) => sum + (point.value as number), 0);
  }

  /** How many values a histogram recorded with attributes that include `where`. */
  async recorded(name: string, where: Record<string, unknown> = {}): Promise<number> {
    const points = await this.points(name);
    return points.filter((point) => matches(point.attributes, where)).reduce((sum, point) => sum + (point.value as { count: number }).count, 0);
  }

  finished(name?: string): ReadableSpan[] {
    const spans = this.spans.getFinishedSpans();
    return name === undefined ? spans : spans.filter((span) => span.name === name);
  }

  /** Everything exported (metric names, descriptions, attributes, values; span names, attributes, statuses, events), as text. */
  async everything(): Promise<string> {
    const spans = this.finished().map((span) => ({ name: span.name, attributes: span.attributes, status: span.status, events: span.events, links: span.links, resource: span.resource.attributes }));
    return JSON.stringify({ metrics: await this.metrics(), spans });
  }

  async shutdown(): Promise<void> {
    metrics.disable();
    trace.disable();
    await this.meterProvider.shutdown();
    await this.tracerProvider.shutdown();
  }
}

function matches(attributes: Record<string, unknown>, where: Record<string, unknown>): boolean {
  return Object.entries(where).every(([key, value]) => attributes[key] === value);
}

/** Every span's attributes, and every metric point's, by name. */
async function usernameAttributes(otel: Otel): Promise<{ spans: string[]; metrics: string[] }> {
  const spans = otel.finished().filter((span) => 'user.name' in span.attributes).map((span) => span.name);
  const metricNames = (await otel.metrics()).filter((metric) => metric.dataPoints.some((point) => 'user.name' in point.attributes)).map((metric) => metric.descriptor.name);
  return { spans: [...new Set(spans)].sort(), metrics: metricNames };
}

describe.each(PLATFORMS)('OpenTelemetry on %s', (adapter: Platform) => {
  const suite = perTestApps(adapter);
  let emulator: DuoEmulator;
  let otel: Otel;
  beforeEach(() => {
    emulator = suite.emulator();
    otel = new Otel().register();
  });
  afterEach(async () => {
    emulator.setFailure('none');
    await otel.shutdown();
  });

  const USER = 'otel-user-5f1c9e';

  it('a login produces the metrics and spans, with the semantic conventions\' attribute names', async () => {
    const t = await suite.app();
    const agent = t.agent();
    const { callback } = await loginWithDuo(emulator, agent, USER);
    expect(callback.status).toBe(303);
    await agent.get('/account').expect(200);

    expect(await otel.count('duo.prompts.started', { 'duo.step_up': false })).toBe(1);
    expect(await otel.count('duo.second_factor.passed')).toBe(1);
    expect(await otel.points('duo.second_factor.failed')).toEqual([]);
    expect(await otel.points('duo.second_factor.bypassed')).toEqual([]);
    expect(await otel.points('duo.prompts.throttled')).toEqual([]);

    const server = { 'server.address': '127.0.0.1', 'server.port': Number(new URL(emulator.baseUrl).port), 'http.request.method': 'POST' };
    const durations = await otel.points('duo.client.request.duration');
    expect(durations.map((point) => point.attributes).sort((a, b) => String(a['duo.endpoint']).localeCompare(String(b['duo.endpoint'])))).toEqual([
      { 'duo.endpoint': 'health_check', ...server },
      { 'duo.endpoint': 'token', ...server },
    ]);
    for (const point of durations) {
      const histogram = point.value as { count: number; sum: number };
      expect(histogram.count).toBe(1);
      expect(histogram.sum).toBeGreaterThan(0);
      expect(histogram.sum).toBeLessThan(5); // seconds, not milliseconds
    }
    const metric = (await otel.metrics()).find((candidate) => candidate.descriptor.name === 'duo.client.request.duration')!;
    expect(metric.descriptor.unit).toBe('s');
    expect(metric.dataPointType).toBe(DataPointType.HISTOGRAM);
    // Both calls ended: nothing left in flight.
    const inFlight = await otel.points('duo.client.requests.in_flight');
    expect(inFlight.map((point) => point.attributes['duo.endpoint']).sort()).toEqual(['health_check', 'token']);
    expect(inFlight.every((point) => point.value === 0)).toBe(true);

    expect(await otel.recorded('duo.store.operation.duration', { 'db.system.name': 'session', 'db.operation.name': 'create' })).toBe(1);
    expect(await otel.recorded('duo.store.operation.duration', { 'db.system.name': 'session', 'db.operation.name': 'take' })).toBe(1);
    expect(await otel.points('duo.store.operation.errors')).toEqual([]);

    const [token] = otel.finished('POST /oauth/v1/token');
    expect(token).toBeDefined();
    expect(token!.kind).toBe(2); // SpanKind.CLIENT
    expect(token!.attributes).toEqual({ 'duo.endpoint': 'token', 'url.template': '/oauth/v1/token', ...server });
    expect(token!.status.code).toBe(0); // UNSET: no error
    const [health] = otel.finished('POST /oauth/v1/health_check');
    expect(health!.kind).toBe(2);
    expect(health!.attributes).toMatchObject({ 'duo.endpoint': 'health_check', 'url.template': '/oauth/v1/health_check' });
    const stores = otel.finished().filter((span) => span.name.startsWith('duo.store '));
    expect(stores.map((span) => [span.name, span.kind, span.attributes])).toEqual([
      ['duo.store create', 0, { 'db.system.name': 'session', 'db.operation.name': 'create' }],
      ['duo.store take', 0, { 'db.system.name': 'session', 'db.operation.name': 'take' }],
    ]);

    // Nothing exported carries the secret, a state, a code, a request JWT, a nonce, or the username.
    const exported = await otel.everything();
    for (const secret of [emulator.clientSecret, USER, ...wireSecrets]) expect(exported).not.toContain(secret);
    expect(exported).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/); // no JWT of any kind
    expect(await usernameAttributes(otel)).toEqual({ spans: [], metrics: [] });
  });

  it('with telemetry.recordUsernames, the username is on the spans of the token call and the store calls, never on metrics', async () => {
    const t = await suite.app({ duo: { telemetry: { recordUsernames: true } } });
    const agent = t.agent();
    expect((await loginWithDuo(emulator, agent, USER)).callback.status).toBe(303);
    expect(await usernameAttributes(otel)).toEqual({ spans: ['POST /oauth/v1/token', 'duo.store create', 'duo.store take'], metrics: [] });
    for (const span of otel.finished().filter((candidate) => 'user.name' in candidate.attributes)) expect(span.attributes['user.name']).toBe(USER);
    const exported = await otel.everything();
    for (const secret of [emulator.clientSecret, ...wireSecrets]) expect(exported).not.toContain(secret);
  });

  it('counts refused callbacks by code, anonymous ones included (the events report those once per 10 s)', async () => {
    const t = await suite.app();
    const agent = t.agent();
    const { back } = await loginWithDuo(emulator, agent, USER);
    await agent.get(pathOf(back)).set('Accept', 'application/json'); // a reload: not refused
    // Three callbacks nobody started: state_unknown, without a user.
    for (let i = 0; i < 3; i++) {
      await t.agent().get(`/duo/callback?state=${'A'.repeat(43)}${i}&duo_code=x`).set('Accept', 'application/json').expect(400);
    }
    expect(await otel.count('duo.second_factor.failed', { 'error.type': 'state_unknown', 'duo.stage': 'callback' })).toBe(3);
    expect(t.events.filter((event) => event.type === 'second_factor_failed')).toHaveLength(1);
  });

  it('a 429 from Duo as a login starts: failed and throttled by code, the call measured and its span marked as an error', async () => {
    const t = await suite.app({ duo: { healthCheckCacheSeconds: 0 } });
    emulator.setFailure('rate_limited', { endpoints: ['health'], retryAfter: 30 });
    const agent = t.agent();
    await agent.post('/login').send({ username: USER }).expect(201);
    const res = await agent.get('/account').set('Accept', 'application/json').expect(503);
    expect(res.body.error).toBe('duo_rate_limited');
    expect(await otel.count('duo.second_factor.failed', { 'error.type': 'duo_rate_limited', 'duo.stage': 'start' })).toBe(1);
    expect(await otel.count('duo.prompts.throttled', { 'error.type': 'duo_rate_limited' })).toBe(1);
    expect(await otel.points('duo.prompts.started')).toEqual([]);
    expect(await otel.recorded('duo.client.request.duration', { 'duo.endpoint': 'health_check', 'error.type': 'duo_rate_limited' })).toBe(1);
    const [span] = otel.finished('POST /oauth/v1/health_check');
    expect(span!.status).toEqual({ code: 2, message: 'duo_rate_limited' }); // ERROR, the code only
    expect(span!.attributes['error.type']).toBe('duo_rate_limited');
    expect(span!.events).toEqual([]); // no exception recorded: its message is not ours to vouch for
  });

  it('fail mode open: a bypass is counted with its reason', async () => {
    const t = await suite.app({ duo: { failMode: 'open', healthCheckCacheSeconds: 0 } });
    emulator.setFailure('http_500');
    const agent = t.agent();
    await agent.post('/login').send({ username: USER }).expect(201);
    await agent.get('/account').expect(200);
    expect(await otel.count('duo.second_factor.bypassed', { 'error.type': 'duo_unavailable' })).toBe(1);
    expect(await otel.points('duo.second_factor.failed')).toEqual([]);
  });

  it('a failing store: its errors counted by error.type, its latency measured, its span marked; the login refused with 503', async () => {
    const inner = new SessionTransactionStore();
    const store: DuoTransactionStore = {
      create: () => Promise.reject(new RangeError('connection lost to store at 10.0.0.7 with password hunter2')),
      take: (state, context) => inner.take(state, context),
    };
    const t = await suite.app({ duo: { transactionStore: store } });
    const agent = t.agent();
    await agent.post('/login').send({ username: USER }).expect(201);
    const res = await agent.get('/account').set('Accept', 'application/json').expect(503);
    expect(res.body.error).toBe('store_unavailable');
    const where = { 'db.system.name': 'custom', 'db.operation.name': 'create', 'error.type': 'RangeError' };
    expect(await otel.count('duo.store.operation.errors', where)).toBe(1);
    expect(await otel.recorded('duo.store.operation.duration', where)).toBe(1);
    expect(await otel.count('duo.second_factor.failed', { 'error.type': 'store_unavailable', 'duo.stage': 'start' })).toBe(1);
    const [span] = otel.finished('duo.store create');
    expect(span!.kind).toBe(2); // CLIENT: an app's store is somewhere else
    expect(span!.status).toEqual({ code: 2, message: 'RangeError' });
    expect(await otel.everything()).not.toMatch(/hunter2|10\.0\.0\.7/);
  });

  it('step-up prompts are counted as such', async () => {
    const t = await suite.app();
    const agent = t.agent();
    await agent.post('/login').send({ username: USER }).expect(201);
    await agent.get('/account').set('Accept', 'text/html').expect(303);
    await agent.get('/sensitive').set('Accept', 'text/html').expect(303); // a route with maxAge
    expect(await otel.count('duo.prompts.started', { 'duo.step_up': false })).toBe(1);
    expect(await otel.count('duo.prompts.started', { 'duo.step_up': true })).toBe(1);
  });

  it('with telemetry.enabled false, nothing is recorded', async () => {
    const t = await suite.app({ duo: { telemetry: { enabled: false } } });
    expect((await loginWithDuo(emulator, t.agent(), USER)).callback.status).toBe(303);
    expect(await otel.metrics()).toEqual([]);
    expect(otel.finished()).toEqual([]);
  });

  it('a telemetry option mistake stops the app at startup, naming the option', async () => {
    await expect(suite.app({ duo: { telemetry: { recordUsername: true } as never } })).rejects.toThrow(/"telemetry\.recordUsername" is unknown.*"recordUsernames"/);
    await expect(suite.app({ duo: { telemetry: { recordUsernames: 'yes' } as never } })).rejects.toThrow(/"telemetry\.recordUsernames" must be true or false/);
    await expect(suite.app({ duo: { telemetry: true as never } })).rejects.toThrow(/"telemetry" must be an object/);
  });

  it('without an SDK registered (the API alone is a no-op), logins work', async () => {
    await otel.shutdown(); // no global providers
    const t = await suite.app();
    const agent = t.agent();
    expect((await loginWithDuo(emulator, agent, USER)).callback.status).toBe(303);
    await agent.get('/account').expect(200);
    otel = new Otel(); // nothing registered it: it sees nothing
    expect(await otel.metrics()).toEqual([]);
  });

  it('without the @opentelemetry/api package installed, the module loads nothing of it and logins work', async () => {
    const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
    const load = loader._load;
    const asked: string[] = [];
    loader._load = function (request: string, ...rest: unknown[]) {
      if (request === '@opentelemetry/api' || request.startsWith('@opentelemetry/api/')) {
        asked.push(request);
        throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
      }
      return load.call(this, request, ...rest);
    };
    try {
      const t = await suite.app();
      expect(asked).toEqual(['@opentelemetry/api', '@opentelemetry/api']); // looked for at startup only: from the main script, then from the working directory
      const agent = t.agent();
      expect((await loginWithDuo(emulator, agent, USER)).callback.status).toBe(303);
      await agent.get('/account').expect(200);
      expect(t.logger.warnings().filter((line) => /opentelemetry/i.test(line))).toEqual([]);
    } finally {
      loader._load = load;
    }
    // The SDK registered for this test saw nothing from that app.
    expect(await otel.metrics()).toEqual([]);
    expect(otel.finished()).toEqual([]);
  });
});
