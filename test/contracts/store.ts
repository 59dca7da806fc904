import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { CloudEvent } from '../../src/events/types.js';
import {
  type AttemptOutcome,
  appliedKey,
  type NewDelivery,
  type Store,
  type StoredEvent,
} from '../../src/store/types.js';

/**
 * The behaviour every Store must have, run against each implementation (SQLite, PostgreSQL)
 * through the interface only. Times are explicit so the suite is deterministic.
 */
export function runStoreContract(
  name: string,
  makeStore: () => Promise<Store>,
  cleanup?: (store: Store) => Promise<void>,
) {
  describe(`store contract: ${name}`, () => {
    let store: Store;
    before(async () => {
      store = await makeStore();
      await store.migrate();
      await store.migrate(); // idempotent
    });
    after(async () => {
      await cleanup?.(store);
      await store.close();
    });

    let n = 0;
    const ev = (overrides: Partial<CloudEvent> = {}): CloudEvent => ({
      specversion: '1.0',
      id: `e-${++n}`,
      source: 'contract',
      type: 'contract.test',
      ...overrides,
    });
    const planned = (seq: number, key: string, channel = 'ch', notBefore = 1000): NewDelivery => ({
      eventSeq: seq,
      trigger: 'trig',
      action: 0,
      channel,
      recipient: '#r',
      idempotencyKey: key,
      maxAttempts: 3,
      notBefore,
    });
    const outcome = (
      id: number,
      number: number,
      status: AttemptOutcome['status'],
      extra: Partial<AttemptOutcome> = {},
    ): AttemptOutcome => ({
      deliveryId: id,
      attempt: {
        deliveryId: id,
        number,
        startedAt: 5000 + number,
        durationMs: 3,
        outcome: status === 'delivered' ? 'delivered' : status === 'dead' ? 'failed' : 'retry',
        error: status === 'delivered' ? null : 'boom',
        nextAttemptAt: extra.nextAttemptAt ?? null,
      },
      status,
      ...extra,
    });

    it('appends in order and deduplicates on (source, id), against the log and within a batch', async () => {
      const a = ev();
      const b = ev();
      const first = await store.events.append([a, b, { ...a }], 100);
      assert.equal(first.length, 3);
      assert.equal(first[0]!.duplicate, false);
      assert.equal(first[1]!.duplicate, false);
      assert.ok(first[1]!.seq > first[0]!.seq);
      assert.deepEqual(first[2], { seq: first[0]!.seq, duplicate: true });
      const again = await store.events.append([b, ev({ id: a.id, source: 'other' })], 200);
      assert.deepEqual(again[0], { seq: first[1]!.seq, duplicate: true });
      assert.equal(again[1]!.duplicate, false, 'same id from another source is another event');
      const stored = await store.events.get(first[0]!.seq);
      assert.deepEqual(stored?.event, a);
      assert.equal(stored?.receivedAt, 100);
      assert.equal(stored?.routedAt, null);
      assert.deepEqual(await store.events.append([], 1), []);
    });

    it('stores any JSON an event carries exactly, and gives a batch ascending seqs in its order', async () => {
      // Strings with quotes, backslashes, braces and any Unicode; numbers as JSON keeps them (no -0,
      // which JSON cannot tell from 0); NUL is left out, as PostgreSQL's JSONB refuses it.
      const text = fc.string({ unit: 'grapheme', maxLength: 12 }).filter((v) => !v.includes('\u0000'));
      const json = fc.letrec((tie) => ({
        value: fc.oneof(
          { depthSize: 'small' },
          text,
          fc.constantFrom('"', '\\', '{"a":1}', "it's", '\\"}', 'ü€😀'),
          fc.integer(),
          fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => (Object.is(v, -0) ? 0 : v)),
          fc.boolean(),
          fc.constant(null),
          fc.array(tie('value'), { maxLength: 4 }),
          fc.dictionary(text, tie('value'), { maxKeys: 4, noNullPrototype: true }),
        ),
      })).value;
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ data: json, subject: fc.option(text, { nil: undefined }) }), {
            minLength: 1,
            maxLength: 8,
          }),
          async (drafts) => {
            const events = drafts.map(({ data, subject }) =>
              ev({ data, ...(subject === undefined ? {} : { subject }) }),
            );
            const appended = await store.events.append(events, 300);
            for (let i = 1; i < appended.length; i++)
              assert.ok(appended[i]!.seq > appended[i - 1]!.seq, 'seqs ascend in batch order');
            const stored = await store.events.getMany(appended.map((a) => a.seq));
            assert.deepEqual(
              stored.map((s) => s.event),
              events,
            );
          },
        ),
        { numRuns: 40 },
      );
    });

    it('finds by id (newest, or by source), lists newest first with filters and paging, counts', async () => {
      const x1 = ev({ id: 'find-me', source: 's1', type: 'list.a', subject: 'sub' });
      const x2 = ev({ id: 'find-me', source: 's2', type: 'list.b' });
      const [r1, r2] = await store.events.append([x1, x2], 300);
      assert.equal((await store.events.findById('find-me'))?.seq, r2!.seq);
      assert.equal((await store.events.findById('find-me', 's1'))?.seq, r1!.seq);
      assert.equal(await store.events.findById('nope'), null);
      const page = await store.events.list({ limit: 2 });
      assert.equal(page.length, 2);
      assert.ok(page[0]!.seq > page[1]!.seq);
      const older = await store.events.list({ limit: 100, beforeSeq: page[1]!.seq });
      assert.ok(older.every((e) => e.seq < page[1]!.seq));
      assert.deepEqual(
        (await store.events.list({ limit: 10, type: 'list.a' })).map((e) => e.seq),
        [r1!.seq],
      );
      assert.deepEqual(
        (await store.events.list({ limit: 10, subject: 'sub' })).map((e) => e.seq),
        [r1!.seq],
      );
      assert.deepEqual(
        (await store.events.list({ limit: 10, source: 's2' })).map((e) => e.seq),
        [r2!.seq],
      );
      assert.ok((await store.events.count()) >= 5);
    });

    it('gets several events by seq in one call, in seq order, leaving out seqs not in the log', async () => {
      const a = ev();
      const b = ev();
      const c = ev();
      const [ra, rb, rc] = await store.events.append([a, b, c], 310);
      const got = await store.events.getMany([rc!.seq, 999_999_999, ra!.seq]);
      assert.deepEqual(
        got.map((e) => [e.seq, e.event]),
        [
          [ra!.seq, a],
          [rc!.seq, c],
        ],
      );
      assert.equal(got[0]!.receivedAt, 310);
      assert.deepEqual(await store.events.getMany([]), []);
      assert.deepEqual((await store.events.getMany([rb!.seq]))[0]?.event, b);
    });

    it('routing commit plans deliveries once and marks events routed', async () => {
      const unrouted = await store.events.unrouted(1000);
      assert.ok(unrouted.length >= 2);
      for (let i = 1; i < unrouted.length; i++)
        assert.ok(unrouted[i]!.seq > unrouted[i - 1]!.seq, 'oldest first');
      const [first, second] = unrouted;
      const record = { matched: ['trig'], errors: [], deliveries: 1 };
      const inserted = await store.routing.commit(
        [
          { seq: first!.seq, record, deliveries: [planned(first!.seq, 'k-1')] },
          { seq: second!.seq, record: { matched: [], errors: [], deliveries: 0 }, deliveries: [] },
        ],
        400,
      );
      assert.equal(inserted, 1);
      const again = await store.routing.commit(
        [{ seq: first!.seq, record, deliveries: [planned(first!.seq, 'k-1')] }],
        401,
      );
      assert.equal(again, 0, 'an existing idempotency key is skipped');
      const routed = await store.events.get(first!.seq);
      assert.equal(routed?.routedAt, 401);
      assert.deepEqual(routed?.routing, record);
      assert.ok(
        !(await store.events.unrouted(1000)).some((e) => e.seq === first!.seq || e.seq === second!.seq),
      );
      const [d] = await store.deliveries.list({ limit: 10, eventSeq: first!.seq });
      assert.equal(d?.status, 'pending');
      assert.equal(d?.eventId, first!.event.id);
      assert.equal(d?.eventSource, first!.event.source);
      assert.equal(d?.eventType, first!.event.type);
      assert.equal(d?.recipient, '#r');
      assert.equal(d?.attempts, 0);
      assert.equal(d?.nextAttemptAt, 1000);
    });

    it('appendRouted (where offered) stores new events already routed, with their deliveries', async (t) => {
      if (!store.events.appendRouted) return t.skip('this store routes after the append');
      const fresh = ev();
      const [dupOf] = await store.events.append([ev()], 450);
      const dup = (await store.events.get(dupOf!.seq))!.event;
      const record = { matched: ['trig'], errors: [], deliveries: 2 };
      const { results, deliveries } = await store.events.appendRouted(
        [fresh, dup, fresh],
        [
          { record, deliveries: [planned(0, 'ar-1', 'a'), planned(0, 'ar-2', 'b')] },
          { record, deliveries: [planned(0, 'ar-dup', 'a')] },
          { record, deliveries: [planned(0, 'ar-1', 'a')] },
        ],
        460,
        461,
      );
      assert.equal(deliveries, 2, 'the duplicates plan nothing');
      assert.deepEqual(
        results.map((r) => r.duplicate),
        [false, true, true],
      );
      assert.equal(results[1]!.seq, dupOf!.seq);
      assert.equal(results[2]!.seq, results[0]!.seq);
      const stored = await store.events.get(results[0]!.seq);
      assert.equal(stored?.receivedAt, 460);
      assert.equal(stored?.routedAt, 461);
      assert.deepEqual(stored?.routing, record);
      assert.ok(!(await store.events.unrouted(1000)).some((e) => e.seq === results[0]!.seq));
      const planned2 = await store.deliveries.list({ limit: 10, eventSeq: results[0]!.seq });
      assert.deepEqual(planned2.map((d) => d.idempotencyKey).sort(), ['ar-1', 'ar-2']);
      assert.ok(planned2.every((d) => d.eventId === fresh.id && d.eventType === fresh.type));
      assert.deepEqual(await store.deliveries.list({ limit: 10, eventSeq: dupOf!.seq }), []);
    });

    it('claims only due, unleased deliveries of the channel, oldest due first, and leases them', async () => {
      const [e] = await store.events.append([ev(), ev()], 500);
      await store.routing.commit(
        [
          {
            seq: e!.seq,
            record: { matched: ['trig'], errors: [], deliveries: 3 },
            deliveries: [
              planned(e!.seq, 'c-late', 'claim', 3000),
              planned(e!.seq, 'c-early', 'claim', 2000),
              planned(e!.seq, 'c-other', 'other', 0),
            ],
          },
        ],
        500,
      );
      assert.equal(await store.deliveries.nextDue('claim'), 2000);
      assert.deepEqual(
        await store.deliveries.claim({ channel: 'claim', limit: 10, now: 1999, leaseMs: 100 }),
        [],
      );
      const claimed = await store.deliveries.claim({ channel: 'claim', limit: 10, now: 3000, leaseMs: 1000 });
      assert.deepEqual(
        claimed.map((d) => d.idempotencyKey),
        ['c-early', 'c-late'],
      );
      assert.deepEqual(
        await store.deliveries.claim({ channel: 'claim', limit: 10, now: 3500, leaseMs: 1000 }),
        [],
        'leased',
      );
      assert.equal(await store.deliveries.nextDue('claim'), null, 'leased rows are not due');
      const expired = await store.deliveries.claim({ channel: 'claim', limit: 1, now: 4001, leaseMs: 1000 });
      assert.equal(expired.length, 1, 'an expired lease can be claimed again');
      assert.equal(await store.deliveries.releaseAllLeases(), 2);
      const again = await store.deliveries.claim({ channel: 'claim', limit: 10, now: 4002, leaseMs: 60_000 });
      assert.equal(again.length, 2);
      await store.deliveries.release([again[0]!.id]);
      assert.deepEqual(
        (await store.deliveries.claim({ channel: 'claim', limit: 10, now: 4003, leaseMs: 1000 })).map(
          (d) => d.id,
        ),
        [again[0]!.id],
        'a released delivery can be claimed at once; the other keeps its lease',
      );
    });

    it('a claim after others finds every unleased due delivery, wherever it sorts among the leased', async () => {
      const route = async (keys: [string, number][], at: number) => {
        const [e] = await store.events.append([ev()], at);
        await store.routing.commit(
          [
            {
              seq: e!.seq,
              record: { matched: ['trig'], errors: [], deliveries: keys.length },
              deliveries: keys.map(([k, due]) => planned(e!.seq, k, 'walk', due)),
            },
          ],
          at,
        );
      };
      const claim = async (now: number, limit = 10) =>
        (await store.deliveries.claim({ channel: 'walk', limit, now, leaseMs: 60_000 })).map(
          (d) => d.idempotencyKey,
        );
      await route(
        [
          ['w-1', 100],
          ['w-2', 200],
          ['w-3', 300],
        ],
        700,
      );
      assert.deepEqual(await claim(1000, 2), ['w-1', 'w-2']);
      assert.deepEqual(await claim(1000, 2), ['w-3'], 'the next claim goes on after the leased ones');
      // Routed later, but due before everything leased so far.
      await route([['w-early', 50]], 710);
      assert.deepEqual(await claim(1000), ['w-early'], 'a delivery due before the leased ones');
      const [w1, w2] = await store.deliveries
        .list({ limit: 10, channel: 'walk', status: 'pending' })
        .then((all) => ['w-1', 'w-2'].map((k) => all.find((d) => d.idempotencyKey === k)!));
      // w-1 fails and is due again at once; w-2 is retried later.
      await store.deliveries.record([
        outcome(w1!.id, 1, 'pending', { nextAttemptAt: 100, error: 'HTTP 500' }),
        outcome(w2!.id, 1, 'pending', { nextAttemptAt: 5000, error: 'HTTP 500' }),
      ]);
      assert.deepEqual(await claim(1000), ['w-1'], 'a retry due at once, before the leased ones');
      assert.equal(await store.deliveries.nextDue('walk'), 5000);
      assert.deepEqual(await claim(5000), ['w-2']);
      assert.deepEqual(await claim(5000), []);
    });

    it('renews a lease only for its holder: one taken by another claim or ended by an outcome is lost', async () => {
      const [e] = await store.events.append([ev()], 500);
      await store.routing.commit(
        [
          {
            seq: e!.seq,
            record: { matched: ['trig'], errors: [], deliveries: 3 },
            deliveries: ['l-kept', 'l-taken', 'l-done'].map((k) => planned(e!.seq, k, 'renew', 0)),
          },
        ],
        500,
      );
      const claimed = await store.deliveries.claim({ channel: 'renew', limit: 10, now: 1000, leaseMs: 1000 });
      assert.equal(claimed.length, 3);
      const [kept, taken, done] = claimed;
      const held = claimed.map((d) => ({ id: d.id, leaseUntil: 2000 }));
      assert.deepEqual(
        (await store.deliveries.renewLeases(held.slice(0, 2), 2500)).sort(),
        [kept!.id, taken!.id].sort(),
      );
      assert.deepEqual(
        (await store.deliveries.claim({ channel: 'renew', limit: 10, now: 2400, leaseMs: 1000 })).map(
          (d) => d.id,
        ),
        [done!.id],
        'renewed leases hold past their first expiry; the one not renewed is claimed again',
      );
      // `kept` is renewed again in time; another dispatcher claims `taken` once its lease has run out.
      assert.deepEqual(await store.deliveries.renewLeases([{ id: kept!.id, leaseUntil: 2500 }], 3500), [
        kept!.id,
      ]);
      const [retaken] = await store.deliveries.claim({
        channel: 'renew',
        limit: 1,
        now: 2600,
        leaseMs: 1000,
      });
      assert.equal(retaken?.id, taken!.id);
      await store.deliveries.record([outcome(done!.id, 1, 'delivered')]);
      const renewed = await store.deliveries.renewLeases(
        [
          { id: kept!.id, leaseUntil: 3500 },
          { id: taken!.id, leaseUntil: 2500 },
          { id: done!.id, leaseUntil: 3400 },
        ],
        4000,
      );
      assert.deepEqual(renewed, [kept!.id], 'only the lease still held as given is renewed');
      assert.deepEqual(
        await store.deliveries.claim({ channel: 'renew', limit: 10, now: 3500, leaseMs: 1000 }),
        [],
        'kept is leased until 4000 and taken until 3600 by its new holder',
      );
      assert.deepEqual(await store.deliveries.renewLeases([], 5000), []);
    });

    it('records attempts in batches: retry, delivered and dead', async () => {
      const [e] = await store.events.append([ev()], 600);
      await store.routing.commit(
        [
          {
            seq: e!.seq,
            record: { matched: ['trig'], errors: [], deliveries: 3 },
            deliveries: ['r-1', 'r-2', 'r-3'].map((k) => planned(e!.seq, k, 'rec', 0)),
          },
        ],
        600,
      );
      const claimed = await store.deliveries.claim({ channel: 'rec', limit: 10, now: 10, leaseMs: 1000 });
      assert.equal(claimed.length, 3);
      const [d1, d2, d3] = claimed;
      await store.deliveries.record([
        outcome(d1!.id, 1, 'pending', { nextAttemptAt: 9000, error: 'HTTP 500' }),
        outcome(d2!.id, 1, 'delivered', { remoteId: 'remote-1', rendered: { text: 'hi' } }),
        outcome(d3!.id, 1, 'dead', { error: 'HTTP 400: nope' }),
      ]);
      const r1 = await store.deliveries.get(d1!.id);
      assert.equal(r1?.status, 'pending');
      assert.equal(r1?.attempts, 1);
      assert.equal(r1?.nextAttemptAt, 9000);
      assert.equal(r1?.lastError, 'HTTP 500');
      assert.equal(await store.deliveries.nextDue('rec'), 9000, 'recording releases the lease');
      const r2 = await store.deliveries.get(d2!.id);
      assert.equal(r2?.status, 'delivered');
      assert.equal(r2?.remoteId, 'remote-1');
      assert.deepEqual(r2?.rendered, { text: 'hi' });
      const attempts = await store.deliveries.attempts(d2!.id);
      assert.equal(attempts.length, 1);
      assert.equal(attempts[0]!.outcome, 'delivered');
      assert.equal(attempts[0]!.durationMs, 3);
      const counts = await store.deliveries.counts();
      assert.ok(counts.pending >= 1 && counts.delivered >= 1 && counts.dead >= 1);
      assert.ok((await store.deliveries.oldestPendingAge(1_000_000)) > 0);
      assert.deepEqual(
        (await store.deliveries.list({ limit: 10, status: 'dead', channel: 'rec' })).map((d) => d.id),
        [d3!.id],
      );
    });

    it('an outcome without rendered output keeps the last one; a JSON null replaces it', async () => {
      const [e] = await store.events.append([ev()], 650);
      await store.routing.commit(
        [
          {
            seq: e!.seq,
            record: { matched: ['trig'], errors: [], deliveries: 1 },
            deliveries: [planned(e!.seq, 'rendered-1', 'rendered', 0)],
          },
        ],
        650,
      );
      const [d] = await store.deliveries.claim({ channel: 'rendered', limit: 1, now: 10, leaseMs: 1000 });
      const retryLater = { nextAttemptAt: 20, error: 'HTTP 503: "busy" \\ später' };
      await store.deliveries.record([
        outcome(d!.id, 1, 'pending', { ...retryLater, rendered: { text: 'v1' } }),
      ]);
      await store.deliveries.claim({ channel: 'rendered', limit: 1, now: 30, leaseMs: 1000 });
      await store.deliveries.record([outcome(d!.id, 2, 'pending', { ...retryLater, nextAttemptAt: 40 })]);
      const kept = await store.deliveries.get(d!.id);
      assert.deepEqual(kept?.rendered, { text: 'v1' });
      assert.equal(kept?.lastError, 'HTTP 503: "busy" \\ später');
      await store.deliveries.claim({ channel: 'rendered', limit: 1, now: 50, leaseMs: 1000 });
      await store.deliveries.record([outcome(d!.id, 3, 'delivered', { rendered: null })]);
      const done = await store.deliveries.get(d!.id);
      assert.equal(done?.status, 'delivered');
      assert.equal(done?.rendered, null);
      assert.equal(done?.attempts, 3);
      assert.deepEqual(
        (await store.deliveries.attempts(d!.id)).map((a) => [a.number, a.outcome]),
        [
          [1, 'retry'],
          [2, 'retry'],
          [3, 'delivered'],
        ],
      );
    });

    it('the DLQ lists dead deliveries with filters and replays by id or by filter', async () => {
      const [e] = await store.events.append([ev({ type: 'dlq.type' })], 700);
      await store.routing.commit(
        [
          {
            seq: e!.seq,
            record: { matched: ['trig'], errors: [], deliveries: 3 },
            deliveries: ['d-1', 'd-2', 'd-3'].map((k) => planned(e!.seq, k, 'dlq', 0)),
          },
        ],
        700,
      );
      const claimed = await store.deliveries.claim({ channel: 'dlq', limit: 10, now: 10, leaseMs: 1000 });
      await store.deliveries.record([
        outcome(claimed[0]!.id, 1, 'dead', { error: 'HTTP 410 gone' }),
        outcome(claimed[1]!.id, 1, 'dead', { error: 'slack error channel_not_found' }),
        outcome(claimed[2]!.id, 1, 'delivered'),
      ]);
      const dead = await store.dlq.list({ limit: 10, channel: 'dlq' });
      assert.deepEqual(
        dead.map((d) => d.id),
        [claimed[1]!.id, claimed[0]!.id],
        'newest first',
      );
      assert.deepEqual(
        (await store.dlq.list({ limit: 10, reason: 'channel_not_found' })).map((d) => d.id),
        [claimed[1]!.id],
      );
      assert.deepEqual(
        (await store.dlq.list({ limit: 10, eventType: 'dlq.type', trigger: 'trig' })).length,
        2,
      );
      assert.ok((await store.dlq.count()) >= 2);
      assert.deepEqual(
        await store.dlq.replay({ ids: [claimed[0]!.id, claimed[2]!.id] }, 8000),
        [claimed[0]!.id],
        'only dead ones',
      );
      const replayed = await store.deliveries.get(claimed[0]!.id);
      assert.equal(replayed?.status, 'pending');
      assert.equal(replayed?.attempts, 0);
      assert.equal(replayed?.nextAttemptAt, 8000);
      assert.deepEqual(
        await store.dlq.replay({ filter: { channel: 'dlq', reason: 'nothing like this' } }, 8000),
        [],
      );
      assert.deepEqual(await store.dlq.replay({ filter: { channel: 'dlq' } }, 8001), [claimed[1]!.id]);
      assert.deepEqual(await store.dlq.list({ limit: 10, channel: 'dlq' }), []);
    });

    it('a re-planned replay readdresses a dead delivery and adds its new siblings, once', async () => {
      const [e] = await store.events.append([ev({ type: 'replan.type' })], 700);
      await store.routing.commit(
        [
          {
            seq: e!.seq,
            record: { matched: ['trig'], errors: [], deliveries: 2 },
            deliveries: [planned(e!.seq, 'rp-old', 'replan', 0), planned(e!.seq, 'rp-kept', 'replan', 0)],
          },
        ],
        700,
      );
      const claimed = await store.deliveries.claim({ channel: 'replan', limit: 10, now: 10, leaseMs: 1000 });
      const [dead, kept] = [
        claimed.find((d) => d.idempotencyKey === 'rp-old')!,
        claimed.find((d) => d.idempotencyKey === 'rp-kept')!,
      ];
      await store.deliveries.record([
        outcome(dead.id, 3, 'dead', { error: 'slack error channel_not_found' }),
        outcome(kept.id, 1, 'delivered'),
      ]);
      const target = (recipient: string, key: string) => ({
        channel: 'replan-2',
        recipient,
        idempotencyKey: key,
        maxAttempts: 5,
      });
      assert.deepEqual(
        await store.dlq.replayReplanned(dead.id, target('#kept', 'rp-kept'), [], 9000),
        [],
        'a key another delivery has is refused',
      );
      const ids = await store.dlq.replayReplanned(
        dead.id,
        target('#new', 'rp-new'),
        [target('#also', 'rp-also'), target('#kept', 'rp-kept')],
        9000,
      );
      assert.equal(ids.length, 2, 'the replayed delivery and one new sibling; a planned key is skipped');
      assert.equal(ids[0], dead.id);
      const moved = await store.deliveries.get(dead.id);
      assert.deepEqual(
        [
          moved?.status,
          moved?.attempts,
          moved?.channel,
          moved?.recipient,
          moved?.idempotencyKey,
          moved?.maxAttempts,
          moved?.nextAttemptAt,
        ],
        ['pending', 0, 'replan-2', '#new', 'rp-new', 5, 9000],
      );
      const sibling = await store.deliveries.get(ids[1]!);
      assert.deepEqual(
        [
          sibling?.eventSeq,
          sibling?.trigger,
          sibling?.action,
          sibling?.recipient,
          sibling?.status,
          sibling?.eventType,
        ],
        [e!.seq, 'trig', 0, '#also', 'pending', 'replan.type'],
      );
      assert.deepEqual(
        await store.dlq.replayReplanned(dead.id, target('#other', 'rp-other'), [target('#x', 'rp-x')], 9001),
        [],
        'only a dead delivery is replayed, and nothing is added then',
      );
      assert.equal((await store.deliveries.list({ limit: 10, eventSeq: e!.seq })).length, 3);
    });

    it('source dead letters: kept once per source and position, listed newest first per source, removed', async () => {
      const letter = (source: string, position: string, reason = 'type renders empty') => ({
        source,
        position,
        subject: 'orders.created',
        headers: { 'Nats-Msg-Id': 'm-1', 'x-odd': 'tab\there' },
        payload: '{"order":"ä ✓"}',
        payloadEncoding: 'utf8' as const,
        payloadBytes: 18,
        truncated: false,
        reason,
      });
      const first = await store.sourceDlq.add(letter('sdl-a', 'S/1'), 100);
      assert.ok(first.id > 0);
      assert.deepEqual(first, { ...letter('sdl-a', 'S/1'), id: first.id, createdAt: 100 });
      const second = await store.sourceDlq.add(letter('sdl-a', 'S/2'), 101);
      const other = await store.sourceDlq.add(
        {
          ...letter('sdl-b', 'S/1'),
          subject: null,
          headers: {},
          payload: 'AAEC',
          payloadEncoding: 'base64',
          payloadBytes: 3,
        },
        102,
      );
      // A redelivery of the same message keeps one row, with what was seen last.
      const again = await store.sourceDlq.add(letter('sdl-a', 'S/1', 'still empty'), 103);
      assert.equal(again.id, first.id);
      assert.equal(again.reason, 'still empty');
      assert.equal(again.createdAt, 103);

      const listed = await store.sourceDlq.list({ limit: 10, source: 'sdl-a' });
      assert.deepEqual(
        listed.map((l) => [l.id, l.position]),
        [
          [second.id, 'S/2'],
          [first.id, 'S/1'],
        ],
        'newest first, only that source',
      );
      assert.deepEqual(
        (await store.sourceDlq.list({ limit: 10, source: 'sdl-a', beforeId: second.id })).map((l) => l.id),
        [first.id],
      );
      assert.deepEqual(await store.sourceDlq.get(other.id), {
        ...letter('sdl-b', 'S/1'),
        subject: null,
        headers: {},
        payload: 'AAEC',
        payloadEncoding: 'base64',
        payloadBytes: 3,
        id: other.id,
        createdAt: 102,
      });
      assert.equal(await store.sourceDlq.count('sdl-a'), 2);
      assert.ok((await store.sourceDlq.count()) >= 3);
      assert.equal(await store.sourceDlq.remove(first.id), true);
      assert.equal(await store.sourceDlq.remove(first.id), false, 'already gone');
      assert.equal(await store.sourceDlq.get(first.id), null);
      assert.deepEqual(
        (await store.sourceDlq.list({ limit: 10, source: 'sdl-a' })).map((l) => l.id),
        [second.id],
      );
      const truncated = await store.sourceDlq.add(
        { ...letter('sdl-c', 'S/9'), payloadBytes: 5_000_000, truncated: true },
        104,
      );
      assert.equal(truncated.truncated, true);
      assert.equal(truncated.payloadBytes, 5_000_000);
    });

    it('keeps inbox messages, newest first, by channel, with paging', async () => {
      const base = { recipient: '#sales', eventId: 'i', eventSource: 's', deliveryId: null };
      const m1 = await store.inbox.add({ ...base, channel: 'box-a', message: { text: 'one' }, createdAt: 1 });
      const m2 = await store.inbox.add({ ...base, channel: 'box-b', message: { text: 'two' } });
      const m3 = await store.inbox.add({ ...base, channel: 'box-a', message: { text: 'three' } });
      assert.deepEqual(m1.message, { text: 'one' });
      assert.equal(m1.createdAt, 1);
      assert.deepEqual(
        (await store.inbox.list({ limit: 10, channel: 'box-a' })).map((m) => m.id),
        [m3.id, m1.id],
      );
      assert.deepEqual(
        (await store.inbox.list({ limit: 1 })).map((m) => m.id),
        [m3.id],
      );
      assert.deepEqual(
        (await store.inbox.list({ limit: 10, beforeId: m3.id })).slice(0, 2).map((m) => m.id),
        [m2.id, m1.id],
      );
    });

    it('kv: get, set, overwrite, setIfAbsent and delete JSON values per namespace', async () => {
      assert.equal(await store.kv.get('ns', 'k'), null);
      await store.kv.set('ns', 'k', { ts: '123.45', n: [1, 2] });
      assert.deepEqual(await store.kv.get('ns', 'k'), { ts: '123.45', n: [1, 2] });
      await store.kv.set('ns', 'k', 'v2');
      assert.equal(await store.kv.get('ns', 'k'), 'v2');
      assert.equal(await store.kv.get('other', 'k'), null);
      assert.equal(await store.kv.setIfAbsent('ns', 'k', 'v3'), false);
      assert.equal(await store.kv.setIfAbsent('ns', 'new', 'v3'), true);
      assert.equal(await store.kv.get('ns', 'new'), 'v3');
      await store.kv.delete('ns', 'k');
      assert.equal(await store.kv.get('ns', 'k'), null);
    });

    it('subscriptions: subscribers upsert by field, subscribe/unsubscribe, preferences merge, delete cascades', async () => {
      const subs = store.subscriptions;
      const alice = await subs.upsertSubscriber({ id: 'slack:UA', slackUserId: 'UA', name: 'Alice' }, 1000);
      assert.deepEqual(
        { ...alice },
        { id: 'slack:UA', name: 'Alice', slackUserId: 'UA', email: null, preferences: {}, createdAt: 1000 },
      );
      // A later upsert fills in the email and keeps what it does not mention.
      const again = await subs.upsertSubscriber({ id: 'slack:UA', email: 'alice@example.com' }, 2000);
      assert.equal(again.name, 'Alice');
      assert.equal(again.email, 'alice@example.com');
      assert.equal(again.createdAt, 1000);
      await subs.upsertSubscriber({ id: 'slack:UB', slackUserId: 'UB' }, 1000);

      assert.equal(await subs.subscribe('slack:UA', 'email:alice@example.com', 1000), true);
      assert.equal(await subs.subscribe('slack:UA', 'email:alice@example.com', 1001), false);
      assert.equal(await subs.subscribe('slack:UA', 'product:42', 1000), true);
      assert.equal(await subs.subscribe('slack:UB', 'product:42', 1000), true);
      assert.deepEqual(await subs.keysOf('slack:UA'), ['email:alice@example.com', 'product:42']);
      assert.deepEqual(
        (await subs.subscribersOf('product:42')).map((x) => x.id),
        ['slack:UA', 'slack:UB'],
      );
      assert.deepEqual(await subs.subscribersOf('product:nope'), []);

      await subs.setPreferences('slack:UA', { notify: true, mode: 'daily' });
      const updated = await subs.setPreferences('slack:UA', { notify: false });
      assert.deepEqual(updated?.preferences, { notify: false, mode: 'daily' });
      assert.equal(await subs.setPreferences('nobody', { x: 1 }), null);

      assert.equal(await subs.unsubscribe('slack:UB', 'product:42'), true);
      assert.equal(await subs.unsubscribe('slack:UB', 'product:42'), false);
      assert.deepEqual(
        (await subs.listSubscribers({ limit: 10 })).map((x) => x.id),
        ['slack:UA', 'slack:UB'],
      );
      assert.deepEqual(
        (await subs.listSubscribers({ limit: 10, afterId: 'slack:UA' })).map((x) => x.id),
        ['slack:UB'],
      );
      assert.equal(await subs.deleteSubscriber('slack:UA'), true);
      assert.equal(await subs.deleteSubscriber('slack:UA'), false);
      assert.deepEqual(await subs.subscribersOf('product:42'), []);
      assert.equal(await subs.getSubscriber('slack:UA'), null);
    });

    it('subscriptions: a key with 10,000 subscribers is read in one call', async () => {
      const subs = store.subscriptions;
      for (let i = 0; i < 10_000; i += 1) {
        await subs.upsertSubscriber({ id: `bulk-${String(i).padStart(5, '0')}` }, 1);
        await subs.subscribe(`bulk-${String(i).padStart(5, '0')}`, 'topic:bulk', 1);
      }
      const all = await subs.subscribersOf('topic:bulk');
      assert.equal(all.length, 10_000);
      assert.equal(new Set(all.map((x) => x.id)).size, 10_000);
    });

    it('feeds: newest first, trimmed to maxItems and by age, per key', async () => {
      const subs = store.subscriptions;
      const item = (key: string, i: number, at: number) => ({
        key,
        eventSeq: i,
        at,
        event: ev({ id: `feed-${key}-${i}` }),
      });
      await subs.appendFeed([item('k1', 1, 100), item('k1', 2, 200), item('k2', 3, 200)], {
        maxItems: 10,
        minAt: 0,
      });
      await subs.appendFeed([item('k1', 4, 300), item('k1', 5, 400)], { maxItems: 3, minAt: 150 });
      assert.deepEqual(
        (await subs.feed('k1', { limit: 10 })).map((f) => f.eventSeq),
        [5, 4, 2],
      );
      assert.deepEqual(
        (await subs.feed('k1', { limit: 10, sinceAt: 300 })).map((f) => f.event.id),
        ['feed-k1-5', 'feed-k1-4'],
      );
      assert.deepEqual(
        (await subs.feed('k2', { limit: 10 })).map((f) => f.eventSeq),
        [3],
      );
    });

    it('reading for projection: every event once, in append order, pages continuing from `next`', async () => {
      // Follows the log from `cursor` until `want` events are read. A write transaction left open
      // elsewhere on a shared PostgreSQL server may hold events back a while, never skip them.
      const follow = async (cursor: number, want: number) => {
        const read: StoredEvent[] = [];
        const deadline = Date.now() + 60_000;
        while (read.length < want) {
          const page = await store.events.readForProjection(cursor, 2);
          assert.ok(page.events.length <= 2, 'at most limit');
          read.push(...page.events);
          cursor = page.next;
          if (page.events.length > 0) continue;
          if (Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        return { read, cursor };
      };
      const total = await store.events.count();
      const whole = await follow(0, total);
      assert.equal(whole.read.length, total, 'the whole log from the start');
      assert.equal(new Set(whole.read.map((e) => e.seq)).size, total, 'no event twice');
      const x = [ev({ id: 'follow-1' }), ev({ id: 'follow-2' }), ev({ id: 'follow-3' })];
      await store.events.append([x[0]!, x[1]!], 800);
      await store.events.append([x[2]!], 801);
      const more = await follow(whole.cursor, 3);
      assert.deepEqual(
        more.read.map((e) => e.event.id),
        ['follow-1', 'follow-2', 'follow-3'],
      );
      assert.deepEqual(more.read[2]!.event, x[2]);
      const end = await store.events.readForProjection(more.cursor, 10);
      assert.deepEqual(end, { events: [], next: more.cursor }, 'nothing new: the cursor stays');
    });

    it('projections: one transaction applies rows, applied ids, failures, outbox and cursor; never twice', async () => {
      const views = store.projections;
      const [a, b, c] = await store.events.append(
        [ev({ id: 'p-1' }), ev({ id: 'p-2' }), ev({ id: 'p-3' })],
        100,
      );
      assert.equal(await views.cursor('stock'), 0);
      // Decrements the row once per event not applied before.
      const decrement = (events: { seq: number; id: string }[]) => ({
        projection: 'stock',
        keys: ['sku-1'],
        events: events.map((e) => ({ source: 'contract', id: e.id })),
        now: 500,
        compute(rows: Map<string, Record<string, unknown>>, applied: Set<string>) {
          const row = { ...(rows.get('sku-1') ?? { qty: 10 }) } as { qty: number };
          const done = events.filter((e) => !applied.has(appliedKey('contract', e.id)));
          row.qty -= done.length;
          return {
            rows: new Map([['sku-1', row]]),
            applied: done.map((e) => ({ eventSeq: e.seq, source: 'contract', id: e.id })),
            failures: [],
            outbox: [],
          };
        },
      });
      const first = await views.apply({
        ...decrement([{ seq: a!.seq, id: 'p-1' }]),
        cursor: { from: 0, to: a!.seq },
      });
      assert.deepEqual(first, { ok: true });
      assert.equal(await views.cursor('stock'), a!.seq);
      // A stale cursor writes nothing.
      const stale = await views.apply({
        ...decrement([{ seq: b!.seq, id: 'p-2' }]),
        cursor: { from: 0, to: b!.seq },
      });
      assert.deepEqual(stale, { ok: false, cursor: a!.seq });
      assert.deepEqual((await views.get('stock', 'sku-1'))?.value, { qty: 9 });
      // Redelivering p-1 alongside p-2 applies only p-2.
      await views.apply(
        decrement([
          { seq: a!.seq, id: 'p-1' },
          { seq: b!.seq, id: 'p-2' },
        ]),
      );
      const row = await views.get('stock', 'sku-1');
      assert.deepEqual(row?.value, { qty: 8 });
      assert.equal(row?.updatedAt, 500);
      assert.equal(await views.cursor('stock'), a!.seq, 'a replay leaves the cursor alone');

      await views.apply({
        projection: 'stock',
        keys: [],
        events: [{ source: 'contract', id: 'p-3' }],
        now: 600,
        cursor: { from: a!.seq, to: c!.seq },
        compute: () => ({
          rows: new Map<string, Record<string, unknown> | null>([
            ['sku-2', { name: 'Widget "B"', qty: 4 }],
            ['sku-3', { name: 'gadget', qty: 1 }],
          ]),
          applied: [],
          failures: [{ eventSeq: c!.seq, reason: 'no key: after.product_id is missing' }],
          outbox: [ev({ id: 'alert-1', type: 'inventory.low_stock' })],
        }),
      });
      const dead = await store.dlq.list({ limit: 10, channel: 'projection:stock' });
      assert.equal(dead.length, 1);
      assert.equal(dead[0]!.eventId, 'p-3');
      assert.equal(dead[0]!.lastError, 'no key: after.product_id is missing');
      assert.equal(dead[0]!.trigger, 'projection:stock');
      const outbox = await views.outbox(10);
      assert.deepEqual(
        outbox.map((o) => [o.projection, o.event.id]),
        [['stock', 'alert-1']],
      );
      await views.ackOutbox(outbox.map((o) => o.id));
      assert.deepEqual(await views.outbox(10), []);

      assert.deepEqual(
        (await views.list('stock', { limit: 10 })).map((r) => r.key),
        ['sku-1', 'sku-2', 'sku-3'],
      );
      assert.deepEqual(
        (await views.list('stock', { limit: 1, after: 'sku-1' })).map((r) => r.key),
        ['sku-2'],
      );
      assert.deepEqual(
        (await views.list('stock', { limit: 10, q: 'WIDGET' })).map((r) => r.key),
        ['sku-2'],
      );
      assert.deepEqual(await views.list('stock', { limit: 10, q: '%' }), [], '% is literal');
      assert.deepEqual((await views.counts()).stock, 3);
      await views.apply({
        projection: 'stock',
        keys: [],
        events: [],
        now: 700,
        compute: () => ({ rows: new Map([['sku-3', null]]), applied: [], failures: [], outbox: [] }),
      });
      assert.equal(await views.get('stock', 'sku-3'), null);
      assert.equal(await views.get('other', 'sku-1'), null);
    });

    const bucket = { perSecond: 10, burst: 5 };
    const take = (channel: string, wanted: number, now: number, limit = bucket) =>
      store.rateLimits.take({ channel, wanted, now, ...limit });

    it('rate limits: a new bucket grants its burst at once, then refills at the rate, never above burst', async () => {
      assert.deepEqual(await take('rl-a', 8, 1000), { granted: 5, nextAt: 1100 });
      assert.deepEqual(await take('rl-a', 1, 1000), { granted: 0, nextAt: 1100 });
      assert.deepEqual(await take('rl-a', 10, 1100), { granted: 1, nextAt: 1200 });
      // 250 ms at 10/s is 2.5 tokens: two whole ones now, the half counts towards the next.
      assert.deepEqual(await take('rl-a', 10, 1350), { granted: 2, nextAt: 1400 });
      assert.deepEqual(await take('rl-a', 10, 1400), { granted: 1, nextAt: 1500 });
      assert.deepEqual(await take('rl-a', 100, 1_000_000), { granted: 5, nextAt: 1_000_100 }, 'capped');
      // A process whose clock is behind gets no refill, and does not move the bucket back.
      assert.deepEqual(await take('rl-a', 1, 999_000), { granted: 0, nextAt: 1_000_100 });
      assert.equal((await take('rl-a', 1, 1_000_100)).granted, 1);
      // Tokens left: the next one is available now. Buckets are per channel.
      assert.deepEqual(await take('rl-b', 3, 1000), { granted: 3, nextAt: 1000 });
      assert.deepEqual(await take('rl-b', 3, 1000), { granted: 2, nextAt: 1100 });
      // Slower than one per second; a smaller burst caps a bucket at once.
      const slow = { perSecond: 0.5, burst: 1 };
      assert.deepEqual(await take('rl-c', 4, 1000, slow), { granted: 1, nextAt: 3000 });
      assert.deepEqual(await take('rl-c', 4, 2999, slow), { granted: 0, nextAt: 3000 });
      assert.deepEqual(await take('rl-c', 4, 3000, slow), { granted: 1, nextAt: 5000 });
      assert.equal((await take('rl-b', 10, 9000, { perSecond: 10, burst: 2 })).granted, 2);
    });

    it('rate limits: tokens given back can be taken again, never above burst', async () => {
      assert.equal((await take('rl-d', 5, 1000)).granted, 5);
      await store.rateLimits.giveBack({ channel: 'rl-d', count: 3, now: 1000, ...bucket });
      assert.deepEqual(await take('rl-d', 10, 1000), { granted: 3, nextAt: 1100 });
      await store.rateLimits.giveBack({ channel: 'rl-d', count: 50, now: 1200, ...bucket });
      assert.equal((await take('rl-d', 10, 1200)).granted, 5);
      // A bucket never taken from is full anyway.
      await store.rateLimits.giveBack({ channel: 'rl-e', count: 2, now: 1000, ...bucket });
      assert.equal((await take('rl-e', 10, 1000)).granted, 5);
    });

    it('rate limits: concurrent takers never get more than the bucket holds, in total', async () => {
      const limit = { perSecond: 2, burst: 20 };
      const round = (now: number) =>
        Promise.all(
          Array.from({ length: 25 }, (_, i) =>
            store.rateLimits.take({ channel: 'rl-busy', wanted: 1 + (i % 3), now, ...limit }),
          ),
        );
      // The bucket does not exist yet: every taker races to create it.
      const first = await round(1000);
      assert.equal(
        first.reduce((sum, r) => sum + r.granted, 0),
        20,
      );
      // 1.5 s at 2/s: three tokens, however many ask at once.
      const second = await round(2500);
      assert.equal(
        second.reduce((sum, r) => sum + r.granted, 0),
        3,
      );
      assert.ok(second.every((r, i) => r.granted <= 1 + (i % 3)));
    });

    it('answers ping while open', async () => {
      await store.ping();
    });
  });
}
