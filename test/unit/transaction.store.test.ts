import { describe, expect, it } from 'vitest';
import { SessionTransactionStore, type DuoSessionData, type PendingTransaction } from '../../src/index.js';

const tx = (state: string, startedAt = Date.now()): PendingTransaction => ({
  state,
  nonce: 'n'.repeat(43),
  username: 'alice',
  returnTo: '/',
  binding: 'b'.repeat(24),
  startedAt,
  expiresAt: startedAt + 60_000,
});

describe('SessionTransactionStore', () => {
  it('never takes an inherited member of the pending map (state "propertyIsEnumerable")', async () => {
    const store = new SessionTransactionStore();
    const session: DuoSessionData = {};
    await store.create(tx('a'.repeat(43)), { session, maxPendingPerSession: 5 });
    for (const state of ['propertyIsEnumerable', '__defineGetter__', 'hasOwnProperty', 'constructor']) {
      expect(await store.take(state, { session, maxPendingPerSession: 5 })).toBeUndefined();
    }
  });

  it('ignores a malformed record in the session', async () => {
    const store = new SessionTransactionStore();
    const state = 'c'.repeat(43);
    const session = { pending: { [state]: { state, nonce: 5 } } } as unknown as DuoSessionData;
    expect(await store.take(state, { session, maxPendingPerSession: 5 })).toBeUndefined();
  });

  it('gives a state once, even to concurrent takers with their own copies of the session', async () => {
    const store = new SessionTransactionStore();
    const state = 'd'.repeat(43);
    const copies: DuoSessionData[] = Array.from({ length: 10 }, () => ({ pending: { [state]: tx(state) } }));
    const taken = await Promise.all(copies.map((session) => store.take(state, { session, maxPendingPerSession: 5 })));
    expect(taken.filter(Boolean)).toHaveLength(1);
  });

  it('keeps at most maxPendingPerSession, dropping the oldest', async () => {
    const store = new SessionTransactionStore();
    const session: DuoSessionData = {};
    const now = Date.now();
    for (let i = 0; i < 4; i++) await store.create(tx(`${i}`.repeat(20), now + i), { session, maxPendingPerSession: 3 });
    expect(Object.keys(session.pending!).sort()).toEqual(['1'.repeat(20), '2'.repeat(20), '3'.repeat(20)]);
  });
});
