import { SpanKind, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DuoEmulator } from '../../src/testing/index.js';
import { RedisServer } from '../support/redis-server.js';
import { NODE_REDIS_6 } from './clients.js';
import { CookieJar, pathOf, request, startInstance, type Instance } from './instances.js';

/**
 * OpenTelemetry with RedisTransactionStore: each store call is a CLIENT span
 * with `db.system.name` redis, and nothing exported names the user or a state.
 */
const spans = new InMemorySpanExporter();
let server: RedisServer;
let emulator: DuoEmulator;
let instance: Instance;

beforeAll(async () => {
  trace.disable();
  // Registered before the module starts: it makes its instruments then.
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
  [server, emulator] = await Promise.all([RedisServer.start(), DuoEmulator.start()]);
  instance = await startInstance('A', { connect: () => NODE_REDIS_6.connect({ url: server.url }) }, emulator);
});

afterAll(async () => {
  await instance?.close();
  await emulator?.close();
  await server?.close();
  trace.disable();
});

describe('telemetry of RedisTransactionStore', () => {
  it('a login makes a create and a take span, kind CLIENT, db.system.name redis, with no username or state in them', async () => {
    const jar = new CookieJar();
    expect((await request(instance, jar, '/login', { method: 'POST', json: { username: 'trent' } })).status).toBe(201);
    const start = await request(instance, jar, '/account');
    expect(start.status).toBe(303);
    const back = await emulator.authorize(start.headers.get('location')!);
    expect((await request(instance, jar, pathOf(back))).status).toBe(303);
    const store = spans.getFinishedSpans().filter((span) => span.name.startsWith('duo.store '));
    expect(store.map((span) => span.name).sort()).toEqual(['duo.store create', 'duo.store take']);
    for (const span of store) {
      expect(span.kind).toBe(SpanKind.CLIENT);
      expect(span.attributes['db.system.name']).toBe('redis');
    }
    const state = new URL(back).searchParams.get('state')!;
    const exported = JSON.stringify(spans.getFinishedSpans().map((span) => ({ name: span.name, attributes: span.attributes, status: span.status })));
    expect(exported).not.toContain('trent');
    expect(exported).not.toContain(state);
  });
});
