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

    it('dedupe + replace: a repeat of a key still waiting replaces it (newest wins); the window runs from the first', async () => {
      const scope = 'dedupe-replace';
      const keys = { dedupe: { key: 'run-1:failed', windowMs: 60_000 }, replace: { key: 'run-1' } };
      const first = await event();
      await route([planned(first, scope, 1_000, keys, { notBefore: 31_000 })]);
      const second = await event();
      await route([planned(second, scope, 5_000, keys, { notBefore: 35_000 })]);
      assert.deepEqual(await fate(first), [
        { recipient: 'U1', status: 'suppressed', lastError: `replaced by event ${second.id}` },
      ]);
      assert.deepEqual(await fate(second), [{ recipient: 'U1', status: 'pending', lastError: null }]);
      // Once the newest is due (it may be sent), a repeat in the window is a repeat: deduped.
      const third = await event();
      await route([planned(third, scope, 40_000, keys, { notBefore: 70_000 })]);
      assert.match((await fate(third))[0]!.lastError!, /^deduped by key "run-1:failed": event /);
      // The window started with the first occurrence (1 s), not the replacement: at 61 s it is new.
      const fourth = await event();
      await route([planned(fourth, scope, 61_000, keys, { notBefore: 91_000 })]);
      assert.deepEqual(await fate(fourth), [{ recipient: 'U1', status: 'pending', lastError: null }]);
      // Another key's waiting delivery is not this key's to replace: a different status is new.
      const other = await event();
      await route([
        planned(
          other,
          scope,
          62_000,
          { ...keys, dedupe: { key: 'run-1:ok', windowMs: 60_000 } },
          { notBefore: 92_000 },
        ),
      ]);
      assert.equal((await fate(fourth))[0]!.lastError, `replaced by event ${other.id}`);
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

    /** A digest delivery as the router plans it: due at the end of its window. */
    const digested = (
      ev: { seq: number; id: string },
      scope: string,
      at: number,
      digest: { key: string; windowMs: number; max: number },
      extra: Partial<NewDelivery> & { keys?: Omit<DeliveryGates, 'scope' | 'eventId' | 'at'> } = {},
    ) => {
      const { keys, ...rest } = extra;
      return planned(ev, scope, at, { ...keys, digest }, { notBefore: at + digest.windowMs, ...rest });
    };
    const only = async (ev: { seq: number }) => {
      const list = await store.deliveries.list({ limit: 10, eventSeq: ev.seq });
      assert.equal(list.length, 1);
      return list[0]!;
    };

    it('digest: the first event opens one due at the window end; later ones join it; the one reaching max makes it due; then a new one opens', async () => {
      const scope = 'digest-open';
      const digest = { key: 'U1', windowMs: 60_000, max: 3 };
      const [e1, e2, e3, e4] = [await event(), await event(), await event(), await event()];
      await route([digested(e1!, scope, 1_000, digest)]);
      const opener = await only(e1!);
      assert.deepEqual([opener.status, opener.nextAttemptAt], ['pending', 61_000]);
      await route([digested(e2!, scope, 2_000, digest)]);
      const joined = await only(e2!);
      assert.equal(joined.status, 'suppressed');
      assert.equal(
        joined.lastError,
        `digested into delivery ${opener.idempotencyKey} of event ${e1!.id} (key "U1")`,
      );
      assert.equal((await only(e1!)).nextAttemptAt, 61_000, 'joining does not move the window');
      await route([digested(e3!, scope, 3_000, digest)]);
      assert.equal((await only(e3!)).status, 'suppressed');
      assert.equal((await only(e1!)).nextAttemptAt, 3_000, 'full: due at once');
      assert.deepEqual(await store.deliveries.digest(opener.idempotencyKey), {
        key: 'U1',
        eventSeqs: [e1!.seq, e2!.seq, e3!.seq],
      });
      await route([digested(e4!, scope, 3_000, digest)]);
      const next = await only(e4!);
      assert.deepEqual([next.status, next.nextAttemptAt], ['pending', 63_000]);
      assert.deepEqual(await store.deliveries.digest(next.idempotencyKey), {
        key: 'U1',
        eventSeqs: [e4!.seq],
      });
      assert.equal(await store.deliveries.digest('no-such-delivery'), null);
    });

    it('digest: an event at or after the due time, or while the digest is claimed, opens a new one', async () => {
      const digest = { key: 'k', windowMs: 10_000, max: 100 };
      const a = await event();
      const b = await event();
      await route([digested(a, 'digest-edge', 0, digest)]);
      await route([digested(b, 'digest-edge', 10_000, digest)]);
      assert.equal((await only(b)).status, 'pending');
      assert.deepEqual((await store.deliveries.digest((await only(b)).idempotencyKey))!.eventSeqs, [b.seq]);

      // Claimed by a dispatcher (it may be reading the digest's events to send it): not joined.
      const channel = 'keys-digest-claimed';
      const c = await event();
      const d = await event();
      await route([digested(c, 'digest-claimed', 1_000, { ...digest, windowMs: 1_000 }, { channel })]);
      const claimed = await store.deliveries.claim({ channel, limit: 10, now: Date.now(), leaseMs: 60_000 });
      assert.equal(claimed.length, 1);
      await route([digested(d, 'digest-claimed', 1_500, { ...digest, windowMs: 1_000 }, { channel })]);
      assert.equal((await only(d)).status, 'pending');
      assert.deepEqual((await store.deliveries.digest(claimed[0]!.idempotencyKey))!.eventSeqs, [c.seq]);
      await store.deliveries.release(claimed.map((x) => x.id));
    });

    it('digest is per recipient: each recipient gets their own digest of a key', async () => {
      const digest = { key: 'same', windowMs: 60_000, max: 10 };
      const a = await event();
      const b = await event();
      await route([
        digested(a, 'digest-recipients', 1_000, digest, { recipient: 'U1' }),
        digested(a, 'digest-recipients', 1_000, digest, { recipient: 'U2' }),
      ]);
      await route([
        digested(b, 'digest-recipients', 2_000, digest, { recipient: 'U1' }),
        digested(b, 'digest-recipients', 2_000, digest, { recipient: 'U2' }),
      ]);
      const openers = await store.deliveries.list({ limit: 10, eventSeq: a.seq });
      assert.deepEqual(
        openers.map((o) => o.status),
        ['pending', 'pending'],
      );
      for (const o of openers)
        assert.deepEqual((await store.deliveries.digest(o.idempotencyKey))!.eventSeqs, [a.seq, b.seq]);
      const joined = await store.deliveries.list({ limit: 10, eventSeq: b.seq });
      assert.ok(joined.every((j) => j.status === 'suppressed'));
    });

    it('dedupe + digest: a repeated key is dropped, not collected', async () => {
      const digest = { key: 'U1', windowMs: 60_000, max: 10 };
      const fates: string[] = [];
      const events: { seq: number; id: string }[] = [];
      for (const run of ['r1', 'r1', 'r2']) {
        const ev = await event();
        events.push(ev);
        await route([
          digested(ev, 'digest-dedupe', 1_000, digest, { keys: { dedupe: { key: run, windowMs: 60_000 } } }),
        ]);
        fates.push((await only(ev)).lastError?.split(' ')[0] ?? 'pending');
      }
      assert.deepEqual(fates, ['pending', 'deduped', 'digested']);
      const opener = await only(events[0]!);
      assert.deepEqual((await store.deliveries.digest(opener.idempotencyKey))!.eventSeqs, [
        events[0]!.seq,
        events[2]!.seq,
      ]);
    });

    it('throttle + digest: joined events take no slot; an event that would open a digest is throttled', async () => {
      const digest = { key: 'U1', windowMs: 10_000, max: 100 };
      const keys = { throttle: { key: 'U1', limit: 2, perMs: 3_600_000 } };
      const fates: string[] = [];
      // Two digests (each one message) fill the limit of two; events joining them do not count.
      for (const at of [0, 100, 200, 10_000, 10_100, 20_100]) {
        const ev = await event();
        await route([digested(ev, 'digest-throttle', at, digest, { keys })]);
        fates.push((await only(ev)).lastError ?? 'pending');
      }
      assert.deepEqual(
        fates.map((f) => f.split(' ')[0]),
        ['pending', 'digested', 'digested', 'pending', 'digested', 'throttled:'],
      );
      assert.equal(fates[5], 'throttled: 2/1h for key "U1"');
    });

    it('digest inside one routing batch: the event that fills it makes the planned opener due', async () => {
      const digest = { key: 'batch', windowMs: 60_000, max: 2 };
      const [a, b, c] = [await event(), await event(), await event()];
      await route([a!, b!, c!].map((ev) => digested(ev, 'digest-batch', 5_000, digest)));
      const opener = await only(a!);
      assert.deepEqual([opener.status, opener.nextAttemptAt], ['pending', 5_000]);
      assert.equal((await only(b!)).status, 'suppressed');
      assert.deepEqual([(await only(c!)).status, (await only(c!)).nextAttemptAt], ['pending', 65_000]);
      assert.deepEqual((await store.deliveries.digest(opener.idempotencyKey))!.eventSeqs, [a!.seq, b!.seq]);
    });

    it('digest: routing an event again changes nothing', async () => {
      const digest = { key: 'U1', windowMs: 60_000, max: 3 };
      const a = await event();
      const b = await event();
      await route([digested(a, 'digest-reroute', 1_000, digest)]);
      const joiner = digested(b, 'digest-reroute', 2_000, digest);
      await route([joiner]);
      assert.equal(await route([joiner]), 0);
      assert.equal(await route([digested(a, 'digest-reroute', 3_000, digest)]), 0);
      const opener = await only(a);
      assert.deepEqual((await store.deliveries.digest(opener.idempotencyKey))!.eventSeqs, [a.seq, b.seq]);
      assert.equal(opener.nextAttemptAt, 61_000, 'the count did not reach max by routing again');
      assert.equal((await only(b)).status, 'suppressed');
    });

    it('digest: a dead digest replayed to another recipient carries its events, and so does one added', async () => {
      const digest = { key: 'U1', windowMs: 60_000, max: 10 };
      const a = await event();
      const b = await event();
      await route([digested(a, 'digest-replay', 1_000, digest)]);
      await route([digested(b, 'digest-replay', 2_000, digest)]);
      const opener = await only(a);
      await store.deliveries.record([
        {
          deliveryId: opener.id,
          attempt: {
            deliveryId: opener.id,
            number: 1,
            startedAt: 61_000,
            durationMs: 1,
            outcome: 'failed',
            error: 'gone',
            nextAttemptAt: null,
          },
          status: 'dead',
          error: 'gone',
        },
      ]);
      const moved = { channel: 'keys', recipient: 'U9', idempotencyKey: 'digest-replay:U9', maxAttempts: 3 };
      const added = { channel: 'keys', recipient: 'U8', idempotencyKey: 'digest-replay:U8', maxAttempts: 3 };
      assert.equal((await store.dlq.replayReplanned(opener.id, moved, [added], 70_000)).length, 2);
      for (const key of [moved.idempotencyKey, added.idempotencyKey])
        assert.deepEqual(await store.deliveries.digest(key), { key: 'U1', eventSeqs: [a.seq, b.seq] });
      assert.equal(await store.deliveries.digest(opener.idempotencyKey), null);
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
