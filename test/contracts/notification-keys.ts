import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DeliveryGates, NewDelivery, Store } from '../../src/store/types.js';

/**
 * Notification keys as every store decides them, in the routing transaction (docs/notifications.md).
 * Times are explicit (`gates.at`), so window edges are exact and the suite is deterministic.
 */
export function runNotificationKeyContract(
  name: string,
  makeStore: () => Promise<Store>,
  cleanup?: (store: Store) => Promise<void>,
) {
  describe(`notification keys: ${name}`, () => {
    let store: Store;
    before(async () => {
      store = await makeStore();
      await store.migrate();
    });
    after(async () => {
      await cleanup?.(store);
      await store.close();
    });

    let n = 0;
    /** Appends an event and returns its seq and id. */
    const event = async (): Promise<{ seq: number; id: string }> => {
      const id = `nk-${++n}`;
      const [r] = await store.events.append(
        [{ specversion: '1.0', id, source: 'keys', type: 'keys.test' }],
        1,
      );
      return { seq: r!.seq, id };
    };
    /** A delivery of `ev` for action scope `scope`, with the given keys, planned at `at`. */
    const planned = (
      ev: { seq: number; id: string },
      scope: string,
      at: number,
      keys: Omit<DeliveryGates, 'scope' | 'eventId' | 'at'>,
      extra: Partial<NewDelivery> = {},
    ): NewDelivery => ({
      eventSeq: ev.seq,
      trigger: scope,
      action: 0,
      channel: 'keys',
      recipient: 'U1',
      idempotencyKey: `${scope}:${ev.id}:${extra.recipient ?? 'U1'}`,
      maxAttempts: 3,
      notBefore: at,
      gates: { scope, eventId: ev.id, at, ...keys },
      ...extra,
    });
    const route = (deliveries: NewDelivery[], routedAt = 1) =>
      store.routing.commit(
        [...new Set(deliveries.map((d) => d.eventSeq))].map((seq) => ({
          seq,
          record: { matched: ['t'], errors: [], deliveries: 1 },
          deliveries: deliveries.filter((d) => d.eventSeq === seq),
        })),
        routedAt,
      );
    const fate = async (ev: { seq: number }) =>
      (await store.deliveries.list({ limit: 10, eventSeq: ev.seq })).map((d) => ({
        recipient: d.recipient,
        status: d.status,
        lastError: d.lastError,
      }));

    it('dedupe: a repeat inside the window is suppressed with its reason; at first + window it is new', async () => {
      const scope = 'dedupe-edge';
      const keys = { dedupe: { key: 'run-1:failed', windowMs: 60_000 } };
      const first = await event();
      await route([planned(first, scope, 10_000, keys)]);
      const repeat = await event();
      await route([planned(repeat, scope, 69_999, keys)]);
      const atEdge = await event();
      await route([planned(atEdge, scope, 70_000, keys)]);
      // The window restarted at 70 000: measured from the first accepted occurrence, not the last.
      const inNewWindow = await event();
      await route([planned(inNewWindow, scope, 129_999, keys)]);

      assert.deepEqual(await fate(first), [{ recipient: 'U1', status: 'pending', lastError: null }]);
      const [deduped] = await fate(repeat);
      assert.equal(deduped!.status, 'suppressed');
      assert.match(
        deduped!.lastError!,
        new RegExp(`^deduped by key "run-1:failed": event ${first.id} was notified`),
      );
      assert.equal((await fate(atEdge))[0]!.status, 'pending');
      assert.equal((await fate(inNewWindow))[0]!.status, 'suppressed');
      assert.match((await fate(inNewWindow))[0]!.lastError!, new RegExp(`event ${atEdge.id}`));
    });

    it('dedupe is per recipient and per action: other recipients and other actions are not deduped', async () => {
      const keys = { dedupe: { key: 'same', windowMs: 60_000 } };
      const ev = await event();
      await route([
        planned(ev, 'per-recipient-a', 1_000, keys, { recipient: 'U1' }),
        planned(ev, 'per-recipient-a', 1_000, keys, { recipient: 'U2' }),
        planned(ev, 'per-recipient-b', 1_000, keys, { recipient: 'U1' }),
      ]);
      assert.deepEqual(
        (await fate(ev)).map((d) => d.status),
        ['pending', 'pending', 'pending'],
      );
      const again = await event();
      await route([planned(again, 'per-recipient-a', 2_000, keys, { recipient: 'U2' })]);
      assert.equal((await fate(again))[0]!.status, 'suppressed');
    });

    it('throttle: `limit` per period from the first accepted; the rest suppressed; a new period at the edge', async () => {
      const scope = 'throttle-edge';
      const keys = { throttle: { key: 'U1', limit: 2, perMs: 3_600_000 } };
      const statuses: string[] = [];
      const reasons: (string | null)[] = [];
      for (const at of [0, 1_000, 3_599_999, 3_600_000, 3_600_001, 3_600_002]) {
        const ev = await event();
        await route([planned(ev, scope, at, keys)]);
        const [d] = await fate(ev);
        statuses.push(d!.status);
        reasons.push(d!.lastError);
      }
      assert.deepEqual(statuses, ['pending', 'pending', 'suppressed', 'pending', 'pending', 'suppressed']);
      assert.equal(reasons[2], 'throttled: 2/1h for key "U1"');
    });

    it('throttle: within one routing batch the limit holds too', async () => {
      const keys = { throttle: { key: 'batch', limit: 3, perMs: 60_000 } };
      const events = await Promise.all([1, 2, 3, 4, 5].map(() => event()));
      await route(events.map((ev) => planned(ev, 'throttle-batch', 500, keys)));
      const all = (await Promise.all(events.map(fate))).flat();
      assert.equal(all.filter((d) => d.status === 'pending').length, 3);
      assert.equal(all.filter((d) => d.status === 'suppressed').length, 2);
    });

    it('replace: a newer event suppresses a still-delayed delivery of the key, which names it', async () => {
      const scope = 'replace-delayed';
      const keys = { replace: { key: 'run-7' } };
      const older = await event();
      await route([planned(older, scope, 1_000, keys, { notBefore: 301_000 })]);
      const newer = await event();
      await route([planned(newer, scope, 2_000, keys, { notBefore: 302_000 })]);
      assert.deepEqual(await fate(older), [
        { recipient: 'U1', status: 'suppressed', lastError: `replaced by event ${newer.id}` },
      ]);
      assert.deepEqual(await fate(newer), [{ recipient: 'U1', status: 'pending', lastError: null }]);
      // Nothing suppressed is claimed.
      const claimed = await store.deliveries.claim({
        channel: 'keys',
        limit: 100,
        now: 400_000,
        leaseMs: 1000,
      });
      const ids = new Set((await store.deliveries.list({ limit: 10, eventSeq: older.seq })).map((d) => d.id));
      assert.ok(claimed.every((d) => !ids.has(d.id)));
      await store.deliveries.release(claimed.map((d) => d.id));
    });

    it('replace: a delivery already due (it may be in flight) or sent is left alone', async () => {
      const scope = 'replace-due';
      const keys = { replace: { key: 'k' } };
      const first = await event();
      await route([planned(first, scope, 1_000, keys, { notBefore: 1_000 })]);
      const second = await event();
      await route([planned(second, scope, 2_000, keys, { notBefore: 2_000 })]);
      assert.equal((await fate(first))[0]!.status, 'pending');
      assert.equal((await fate(second))[0]!.status, 'pending');
    });

    it('replace: an older event routed after a newer one is the one suppressed', async () => {
      const scope = 'replace-order';
      const keys = { replace: { key: 'k' } };
      const older = await event();
      const newer = await event();
      await route([planned(newer, scope, 1_000, keys, { notBefore: 60_000 })]);
      await route([planned(older, scope, 2_000, keys, { notBefore: 60_000 })]);
      assert.equal((await fate(newer))[0]!.status, 'pending');
      const [d] = await fate(older);
      assert.equal(d!.status, 'suppressed');
      assert.match(d!.lastError!, new RegExp(`^replaced by event ${newer.id}`));
    });

    it('replace inside one batch, and a replacement takes the throttled slot of the one it replaces', async () => {
      const scope = 'replace-throttle';
      const keys = { replace: { key: 'run' }, throttle: { key: 'U1', limit: 1, perMs: 60_000 } };
      const a = await event();
      const b = await event();
      const c = await event();
      await route([
        planned(a, scope, 1_000, keys, { notBefore: 30_000 }),
        planned(b, scope, 1_000, keys, { notBefore: 30_000 }),
      ]);
      await route([planned(c, scope, 2_000, keys, { notBefore: 30_000 })]);
      assert.equal((await fate(a))[0]!.lastError, `replaced by event ${b.id}`);
      assert.equal((await fate(b))[0]!.lastError, `replaced by event ${c.id}`);
      assert.equal((await fate(c))[0]!.status, 'pending');
      // With nothing left to replace, the throttle's one slot is taken.
      const d = await event();
      await route([planned(d, scope, 40_000, { throttle: keys.throttle })]);
      assert.equal((await fate(d))[0]!.lastError, 'throttled: 1/1m for key "U1"');
    });

    it('dedupe before throttle: a deduped repeat takes no throttle slot', async () => {
      const scope = 'dedupe-throttle';
      const keys = {
        dedupe: { key: 'same', windowMs: 60_000 },
        throttle: { key: 'U1', limit: 2, perMs: 60_000 },
      };
      const fates: string[] = [];
      for (const key of ['same', 'same', 'same', 'other']) {
        const ev = await event();
        await route([planned(ev, scope, 1_000, { ...keys, dedupe: { key, windowMs: 60_000 } })]);
        fates.push((await fate(ev))[0]!.lastError?.split(' ')[0] ?? 'pending');
      }
      assert.deepEqual(fates, ['pending', 'deduped', 'deduped', 'pending']);
    });

    it('routing an event again changes no key: its deliveries are kept as first decided', async () => {
      const scope = 'reroute';
      const keys = { throttle: { key: 'U1', limit: 1, perMs: 60_000 } };
      const ev = await event();
      const delivery = planned(ev, scope, 1_000, keys);
      await route([delivery]);
      assert.equal(await route([delivery]), 0);
      assert.equal((await fate(ev))[0]!.status, 'pending');
      // Had the second routing counted, this would say so too; the slot is the first's.
      const next = await event();
      await route([planned(next, scope, 2_000, keys)]);
      assert.equal((await fate(next))[0]!.lastError, 'throttled: 1/1m for key "U1"');
    });

    it('a held delivery (quiet hours) is pending with its note until due, keyed or not; it is never claimed early', async () => {
      const note = 'held until 07:00 Europe/Berlin (2026-12-04)';
      const plain = await event();
      await route([
        planned(
          plain,
          'quiet-plain',
          1_000,
          {},
          { channel: 'quiet', notBefore: 500_000, note, gates: undefined },
        ),
      ]);
      const keyed = await event();
      await route([
        planned(
          keyed,
          'quiet-keyed',
          1_000,
          { dedupe: { key: 'k', windowMs: 60_000 } },
          {
            channel: 'quiet',
            notBefore: 500_000,
            note,
          },
        ),
      ]);
      for (const ev of [plain, keyed]) {
        const [d] = await store.deliveries.list({ limit: 10, eventSeq: ev.seq });
        assert.deepEqual(
          [d!.status, d!.note, d!.lastError, d!.nextAttemptAt],
          ['pending', note, null, 500_000],
        );
      }
      assert.deepEqual(
        await store.deliveries.claim({ channel: 'quiet', limit: 10, now: 499_999, leaseMs: 1000 }),
        [],
      );
      const due = await store.deliveries.claim({ channel: 'quiet', limit: 10, now: 500_000, leaseMs: 1000 });
      assert.equal(due.length, 2);
      assert.ok(due.every((d) => d.note === note));
      // Its attempts do not erase why it waited; a DLQ replay, which sends now, does.
      const [first, second] = due;
      await store.deliveries.record([
        {
          deliveryId: first!.id,
          attempt: {
            deliveryId: first!.id,
            number: 1,
            startedAt: 500_000,
            durationMs: 1,
            outcome: 'delivered',
            error: null,
            nextAttemptAt: null,
          },
          status: 'delivered',
        },
        {
          deliveryId: second!.id,
          attempt: {
            deliveryId: second!.id,
            number: 1,
            startedAt: 500_000,
            durationMs: 1,
            outcome: 'failed',
            error: 'gone',
            nextAttemptAt: null,
          },
          status: 'dead',
          error: 'gone',
        },
      ]);
      assert.equal((await store.deliveries.get(first!.id))!.note, note);
      assert.deepEqual(await store.dlq.replay({ ids: [second!.id] }, 600_000), [second!.id]);
      const replayed = (await store.deliveries.get(second!.id))!;
      assert.deepEqual([replayed.status, replayed.note, replayed.nextAttemptAt], ['pending', null, 600_000]);
      const again = await store.deliveries.claim({
        channel: 'quiet',
        limit: 10,
        now: 600_000,
        leaseMs: 1000,
      });
      await store.deliveries.release(again.map((d) => d.id));
    });

    it('a held delivery a newer event replaces is suppressed without its note; a suppressed one never gets one', async () => {
      const scope = 'quiet-replace';
      const keys = { replace: { key: 'run-9' } };
      const note = 'held until 07:00 UTC';
      const older = await event();
      await route([planned(older, scope, 1_000, keys, { channel: 'quiet-r', notBefore: 900_000, note })]);
      const newer = await event();
      await route([planned(newer, scope, 2_000, keys, { channel: 'quiet-r', notBefore: 900_000, note })]);
      const [replaced] = await store.deliveries.list({ limit: 10, eventSeq: older.seq });
      assert.deepEqual(
        [replaced!.status, replaced!.lastError, replaced!.note],
        ['suppressed', `replaced by event ${newer.id}`, null],
      );
      const deduped = await event();
      const dedupe = { dedupe: { key: 'same', windowMs: 60_000 } };
      await route([
        planned(deduped, 'quiet-dedupe', 3_000, dedupe, { channel: 'quiet-r', notBefore: 900_000, note }),
      ]);
      const repeat = await event();
      await route([
        planned(repeat, 'quiet-dedupe', 4_000, dedupe, { channel: 'quiet-r', notBefore: 900_000, note }),
      ]);
      const [suppressed] = await store.deliveries.list({ limit: 10, eventSeq: repeat.seq });
      assert.deepEqual([suppressed!.status, suppressed!.note], ['suppressed', null]);
    });

    it('suppressed deliveries are counted apart, never claimed and never in the DLQ', async () => {
      const counts = await store.deliveries.counts();
      assert.ok(counts.suppressed >= 5);
      const dead = await store.dlq.list({ limit: 100 });
      assert.ok(dead.every((d) => d.status === 'dead'));
      const suppressed = await store.deliveries.list({ limit: 100, status: 'suppressed' });
      assert.equal(suppressed.length, counts.suppressed);
    });
  });
}
