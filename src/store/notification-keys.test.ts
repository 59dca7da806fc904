import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type HeldDelivery, KeyLedger, type KeyRow } from './notification-keys.js';
import type { DeliveryGates, NewDelivery } from './types.js';

/** A store in memory: key rows and deliveries, written back after each decision as a store does. */
function memoryStore() {
  const keys = new Map<string, KeyRow>();
  const held = new Map<string, HeldDelivery & { reason: string | null }>();
  /** Digest delivery key → the seqs of the events it carries. */
  const digests = new Map<string, number[]>();
  const id = (r: { scope: string; kind: string; key: string }) => JSON.stringify([r.scope, r.kind, r.key]);
  return {
    held,
    digests,
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
        nextAttemptAt: decision.notBefore ?? d.notBefore,
        reason: decision.reason,
      });
      for (const m of ledger.digestMembers)
        digests.set(m.deliveryKey, [...(digests.get(m.deliveryKey) ?? []), m.eventSeq]);
      for (const r of ledger.dueStored) {
        const h = held.get(r.idempotencyKey)!;
        if (h.status === 'pending' && h.attempts === 0) h.nextAttemptAt = Math.min(h.nextAttemptAt, r.at);
      }
      return decision;
    },
    /** A dispatcher sends every delivery due at `now`. */
    sendDue(now: number) {
      for (const h of held.values())
        if (h.status === 'pending' && h.nextAttemptAt <= now)
          Object.assign(h, { status: 'delivered', attempts: 1 });
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

test('digest: every event is carried by exactly one digest — the one it opened or an open one it joined — and none holds more than max', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          gap: fc.nat({ max: 40 }),
          key: fc.constantFrom('a', 'b'),
          recipient: fc.constantFrom('U1', 'U2'),
          dispatch: fc.boolean(),
        }),
        { maxLength: 60 },
      ),
      fc.integer({ min: 1, max: 100 }),
      fc.integer({ min: 2, max: 6 }),
      (list, windowMs, max) => {
        const store = memoryStore();
        let at = 0;
        const seqOf = new Map<string, number>();
        /** Digest delivery key → its recipient/key and when its latest event joined. */
        const opened = new Map<string, { id: string; lastAt: number }>();
        const joinable = (key: string, now: number) => {
          const h = store.held.get(key)!;
          const room = store.digests.get(key)!.length < max;
          return room && h.status === 'pending' && h.attempts === 0 && h.nextAttemptAt > now;
        };
        for (const o of list) {
          at += o.gap;
          if (o.dispatch) store.sendDue(at);
          const id = `${o.recipient}/${o.key}`;
          const open = [...opened].filter(([k, v]) => v.id === id && joinable(k, at)).map(([k]) => k);
          const { d, seq: s } = delivery(
            o.recipient,
            at,
            { digest: { key: o.key, windowMs, max } },
            at + windowMs,
          );
          seqOf.set(d.idempotencyKey, s);
          const decision = store.decide(d, s);
          if (decision.status === 'pending') {
            assert.deepEqual(open, [], 'a digest is opened only when none of its key can be joined');
            assert.deepEqual(store.digests.get(d.idempotencyKey), [s]);
            opened.set(d.idempotencyKey, { id, lastAt: at });
          } else {
            const into = /^digested into delivery (\S+) of event (\S+) \(key "(.+)"\)$/.exec(
              decision.reason!,
            );
            assert.ok(into, decision.reason!);
            assert.deepEqual(open, [into[1]], 'it joins the one open digest of its recipient and key');
            assert.equal(store.digests.get(into[1]!)!.at(-1), s);
            opened.get(into[1]!)!.lastAt = at;
          }
        }
        const carried = [...store.digests.values()].flat();
        assert.equal(new Set(carried).size, carried.length, 'no event is in two digests');
        assert.deepEqual(
          carried.sort((x, y) => x - y),
          [...seqOf.values()].sort((x, y) => x - y),
        );
        for (const [key, members] of store.digests) {
          assert.ok(members.length <= max);
          assert.equal(members[0], seqOf.get(key), 'the opener is the first event');
          // The event that fills a digest makes it due at once.
          if (members.length === max)
            assert.equal(store.held.get(key)!.nextAttemptAt, opened.get(key)!.lastAt);
        }
      },
    ),
  );
});
