/** Session stores whose calls can be made to fail or hang, on both platforms. */
import fastifySession from '@fastify/session';
import session from 'express-session';
import type { Platform } from './app.js';

/** What a test's session store does with each kind of call: answer, fail, or never answer. */
export interface StoreFaults {
  get?: 'fail' | 'hang';
  set?: 'fail' | 'hang';
  destroy?: 'fail' | 'hang';
  /** Let this many more sets through, then hang every one after. */
  setsBeforeHang?: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type StoreCallback = (error?: any, value?: any) => void;
function faulty(faults: StoreFaults, op: 'get' | 'set' | 'destroy', callback: StoreCallback, run: () => void): void {
  if (op === 'set' && faults.setsBeforeHang !== undefined) {
    if (faults.setsBeforeHang <= 0) return;
    faults.setsBeforeHang--;
  }
  if (faults[op] === 'hang') return;
  if (faults[op] === 'fail') {
    setImmediate(() => callback(new Error(`test store: ${op} failed`)));
    return;
  }
  run();
}

/** express-session's MemoryStore with switchable faults. */
export class FaultyExpressStore extends session.MemoryStore {
  constructor(private readonly faults: StoreFaults) {
    super();
  }
  override get(sid: string, callback: StoreCallback): void {
    faulty(this.faults, 'get', callback, () => super.get(sid, callback as never));
  }
  override set(sid: string, data: session.SessionData, callback?: StoreCallback): void {
    faulty(this.faults, 'set', callback ?? (() => undefined), () => super.set(sid, data, callback as never));
  }
  override destroy(sid: string, callback?: StoreCallback): void {
    faulty(this.faults, 'destroy', callback ?? (() => undefined), () => super.destroy(sid, callback as never));
  }
}

/** @fastify/session's MemoryStore (which keeps session objects by reference) with switchable faults. */
export function faultyFastifyStore(faults: StoreFaults): object {
  const store = new (fastifySession as unknown as { MemoryStore: new () => Record<string, (...args: any[]) => void> }).MemoryStore();
  for (const op of ['get', 'set', 'destroy'] as const) {
    const original = store[op]!.bind(store);
    store[op] = (...args: any[]) => {
      const callback = args[args.length - 1] as StoreCallback;
      faulty(faults, op, callback, () => original(...args));
    };
  }
  return store;
}

/** The platform's faulty store. */
export function faultyStore(adapter: Platform | undefined, faults: StoreFaults): object {
  return adapter === 'fastify' ? faultyFastifyStore(faults) : new FaultyExpressStore(faults);
}
