import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type HeldDelivery, KeyLedger, type KeyRow } from './notification-keys.js';
import type { DeliveryGates, NewDelivery } from './types.js';

/** A store in memory: key rows and deliveries, written back after each decision as a store does. */
function memoryStore() {
  const keys = new Map<string, KeyRow>();
  const held = new Map<string, HeldDelivery & { reason: string | null }>();
  const id = (r: { scope: string; kind: string; key: string }) => JSON.stringify([r.scope, r.kind, r.key]);
  return {
    held,
    decide(d: NewDelivery, eventSeq: number) {
      const ledger = new KeyLedger(
        (ref) => keys.get(id(ref)) ?? null,
        (k) => held.get(k) ?? null,
      );
      const decision = ledger.decide(d, eventSeq);
      for (const { ref, row } of ledger.changedKeys()) keys.set(id(ref), row);
      for (const r of ledger.replacedStored)
        Object.assign(held.get(r.idempotencyKey)!, { status: 'suppressed', reason: r.reason });
      held.set(d.idempotencyKey, {
        status: decision.status,
        attempts: 0,
        nextAttemptAt: d.notBefore,
        reason: decision.reason,
      });
      return decision;
    },
  };
}

let seq = 0;
const delivery = (
  recipient: string,
  at: number,
  gates: Omit<DeliveryGates, 'scope' | 'eventId' | 'at'>,
  notBefore = at,
) => {
  const n = ++seq;
  return {
    d: {
      eventSeq: n,
      trigger: 't',
      action: 0,
      channel: 'c',
      recipient,
      idempotencyKey: `k${n}`,
      maxAttempts: 1,
      notBefore,
      gates: { scope: 't#0', eventId: `e${n}`, at, ...gates },
    } satisfies NewDelivery,
    seq: n,
  };
};

const occurrences = fc.array(
  fc.record({
    gap: fc.nat({ max: 40 }),
    key: fc.constantFrom('a', 'b'),
    recipient: fc.constantFrom('U1', 'U2'),
  }),
  { maxLength: 60 },
);

test('dedupe: accepted occurrences of one key and recipient are at least a window apart, and each repeat falls in one', () => {
  fc.assert(
    fc.property(occurrences, fc.integer({ min: 1, max: 100 }), (list, windowMs) => {
      const store = memoryStore();
      const accepted = new Map<string, number>();
      let at = 0;
      for (const o of list) {
        at += o.gap;
        const { d, seq: s } = delivery(o.recipient, at, { dedupe: { key: o.key, windowMs } });
        const decision = store.decide(d, s);
        const id = `${o.recipient}/${o.key}`;
        const last = accepted.get(id);
        if (decision.status === 'pending') {
          assert.ok(last === undefined || at >= last + windowMs);
          accepted.set(id, at);
        } else {
          assert.ok(last !== undefined && at < last + windowMs);
          assert.match(decision.reason!, /^deduped by key/);
        }
      }
    }),
  );
});

test('throttle: fixed windows from the first accepted; never more than the limit in one', () => {
  fc.assert(
    fc.property(
      occurrences,
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 100 }),
      (list, limit, perMs) => {
        const store = memoryStore();
        const windows = new Map<string, { start: number; count: number }>();
        let at = 0;
        for (const o of list) {
          at += o.gap;
          const { d, seq: s } = delivery(o.recipient, at, { throttle: { key: o.key, limit, perMs } });
          const decision = store.decide(d, s);
          const w = windows.get(o.key);
          const open = w !== undefined && at < w.start + perMs;
          const expected = !open || w!.count < limit ? 'pending' : 'suppressed';
          assert.equal(decision.status, expected);
          if (expected === 'pending')
            windows.set(o.key, open ? { start: w!.start, count: w!.count + 1 } : { start: at, count: 1 });
        }
      },
    ),
  );
});

test('replace: of deliveries still waiting, at most one per key and recipient stays pending — the newest event’s', () => {
  fc.assert(
    fc.property(occurrences, (list) => {
      const store = memoryStore();
      let at = 0;
      const newest = new Map<string, string>();
      for (const o of list) {
        at += o.gap;
        // Every delivery waits far beyond the test's clock, so each can still be replaced.
        const { d, seq: s } = delivery(o.recipient, at, { replace: { key: o.key } }, 1_000_000);
        assert.equal(store.decide(d, s).status, 'pending');
        newest.set(`${o.recipient}/${o.key}`, d.idempotencyKey);
      }
      const pending = [...store.held.entries()].filter(([, h]) => h.status === 'pending').map(([k]) => k);
      assert.deepEqual(pending.sort(), [...newest.values()].sort());
    }),
  );
});
