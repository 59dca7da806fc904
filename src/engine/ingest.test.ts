import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import { createSqliteStore } from '../store/sqlite/index.js';
import { Dispatcher } from './dispatcher.js';
import { IngestBatcher } from './ingest.js';
import { OutcomeWriter } from './outcomes.js';
import type { AttemptOutcome, PlannedRouting, Store } from './store.js';
import { type Channel, delivered } from './types.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-pipelined-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const silent = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/**
 * An SQLite store whose WAL fsyncs wait until the test lets each of them finish (or fail), so what
 * may happen while one runs can be looked at.
 */
function slowSyncStore(name: string) {
  const fsyncs: ((err: Error | null) => void)[] = [];
  const store = createSqliteStore({
    path: join(dir, `${name}.db`),
    fsync: (_fd, done) => {
      fsyncs.push(done);
    },
  });
  return {
    store,
    /** fsyncs started so far. */
    started: () => fsyncs.length,
    finish: (n: number, err: Error | null = null) => fsyncs[n - 1]!(err),
  };
}

const event = (id: string): CloudEvent => ({
  specversion: '1.0',
  id,
  source: 'pipeline',
  type: 'pipeline.test',
});

/** Says (synchronously, any time) whether `p` has settled, and how. */
function watch<T>(p: Promise<T>) {
  const state = { settled: false, value: undefined as T | undefined, error: undefined as unknown };
  p.then(
    (v) => {
      state.settled = true;
      state.value = v;
    },
    (e) => {
      state.settled = true;
      state.error = e;
    },
  );
  return state;
}

const stored = (store: Store, id: string) => store.events.findById(id, 'pipeline').then((e) => e !== null);

/** One webhook-like delivery per event, due at once. */
const plan = (key: string, at: number): PlannedRouting => ({
  record: { matched: ['all'], errors: [], deliveries: 1 },
  deliveries: [
    {
      eventSeq: 0,
      trigger: 'all',
      action: 0,
      channel: 'hook',
      recipient: null,
      idempotencyKey: key,
      maxAttempts: 3,
      notBefore: at,
    },
  ],
});

describe('commits pipelined with the WAL fsync (sqlite)', () => {
  it("commits a batch while the last one's fsync runs, and answers each in order once its own fsync is done", async () => {
    const { store, started, finish } = slowSyncStore('ingest');
    await store.migrate();
    const handedOn: string[] = [];
    const batcher = new IngestBatcher(
      store.events,
      (durable) => handedOn.push(...durable.map((d) => d.event.id)),
      silent,
    );
    const answered: string[] = [];
    const first = watch(batcher.ingest([event('first')]).then(() => answered.push('first')));
    await until(() => started() === 1, 'the first batch to commit and its fsync to start');

    const second = watch(batcher.ingest([event('second')]).then(() => answered.push('second')));
    // Committed while the first batch's fsync still runs, not one whole fsync later, and its
    // own fsync starts at once: the first one started before this commit, so cannot cover it.
    await until(() => stored(store, 'second'), 'the second batch to commit');
    await until(() => started() === 2, 'the second fsync to start beside the first');
    await sleep(20);
    assert.deepEqual([first.settled, second.settled], [false, false]);
    assert.deepEqual(handedOn, []);

    finish(1);
    await until(() => first.settled, 'the first answer');
    await sleep(20);
    assert.equal(second.settled, false);
    assert.deepEqual(handedOn, ['first']);

    finish(2);
    await until(() => second.settled, 'the second answer');
    assert.deepEqual(answered, ['first', 'second']);
    assert.deepEqual(handedOn, ['first', 'second']);
    await batcher.close();
    await store.close();
  });

  it('answers a duplicate no earlier than the commit of the event it duplicates', async () => {
    const { store, started, finish } = slowSyncStore('duplicate');
    await store.migrate();
    const batcher = new IngestBatcher(store.events, () => {}, silent);
    const original = watch(batcher.ingest([event('once')]));
    await until(() => started() === 1, 'the first fsync');
    const again = watch(batcher.ingest([event('once')]));
    await sleep(30);
    assert.deepEqual([original.settled, again.settled], [false, false]);
    finish(1);
    await until(() => original.settled, 'the answer to the original');
    // Looked up while the original's commit was not on disk: an fsync after it covers both.
    await until(() => started() === 2, 'a later fsync');
    await sleep(20);
    assert.equal(again.settled, false);
    finish(2);
    await until(() => again.settled, 'the answer to the duplicate');
    assert.deepEqual(again.value, [{ id: 'once', source: 'pipeline', duplicate: true }]);
    await batcher.close();
    await store.close();
  });

  it('a failed fsync answers 503 to the batches waiting for it and to every later one', async () => {
    const { store, started, finish } = slowSyncStore('failing');
    await store.migrate();
    const batcher = new IngestBatcher(store.events, () => {}, silent);
    const first = watch(batcher.ingest([event('a')]));
    await until(() => started() === 1, 'the first fsync');
    const second = watch(batcher.ingest([event('b')]));
    await until(() => stored(store, 'b'), 'the second batch to commit');
    finish(1, Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
    await until(() => first.settled && second.settled, 'both answers');
    for (const answer of [first, second]) {
      assert.ok(answer.error instanceof HeraldError, String(answer.error));
      assert.equal(answer.error.status, 503);
    }
    await assert.rejects(batcher.ingest([event('c')]), (e: HeraldError) => e.status === 503);
    await batcher.close();
    await store.close().catch(() => {});
  });

  it('never claims or sends a delivery before the fsync of the commit that stored it', async () => {
    const { store, started, finish } = slowSyncStore('claim');
    await store.migrate();
    const sent: string[] = [];
    const channel: Channel = {
      concurrency: 4,
      timeoutMs: 5_000,
      async send(req) {
        sent.push(req.event.id);
        return delivered();
      },
    };
    const dispatcher = new Dispatcher(
      store,
      new Map([['hook', channel]]),
      [
        {
          name: 'all',
          matcher: () => true,
          actions: [{ index: 0, channel: 'hook', to: { kind: 'none' }, params: null }],
          policy: {
            maxAttempts: 3,
            backoff: { kind: 'fixed', initialMs: 100, maxMs: 100, multiplier: 1, jitter: 0 },
          },
        },
      ],
      // Polls as often as it can: every poll is a claim that could find the committed delivery.
      { leaseMs: 60_000, pollIntervalMs: 5 },
      silent,
    );
    dispatcher.start();
    const now = Date.now();
    // Committed at once; the promise waits for the fsync, which the test holds back.
    const appended = watch(store.events.appendRouted!([event('early')], [plan('early-1', now)], now, now));
    await until(() => started() === 1, 'the fsync to start');
    assert.equal((await store.deliveries.list({ limit: 10 })).length, 1, 'the delivery is committed');
    dispatcher.wake('hook');
    await sleep(150);
    assert.deepEqual(sent, [], 'sent before its event was durable');
    assert.equal(await store.deliveries.nextDue('hook'), null);

    finish(1);
    await until(() => appended.settled, 'the append to be durable');
    await until(() => sent.length === 1, 'the send once durable');
    assert.deepEqual(sent, ['early']);
    // The outcome's own commit waits for its fsync too; let it finish so the dispatcher can stop.
    await until(() => started() === 2, "the outcome's fsync");
    finish(2);
    await dispatcher.stop(1000);
    await store.close();
  });

  it('hands back the deliveries it stored as they are, leasable without a read once durable, never twice', async () => {
    const { store, started, finish } = slowSyncStore('hand-off');
    await store.migrate();
    const now = Date.now();
    const committed = await store.events.appendCommitted!([event('h1'), event('h2')], now, {
      plans: [plan('h1', now), plan('h2', now)],
      routedAt: now,
    });
    const claimable = committed.value.claimable ?? [];
    assert.equal(claimable.length, 2);
    for (const d of claimable) assert.deepEqual(d, await store.deliveries.get(d.id), 'as a read gives it');
    const ids = claimable.map((d) => d.id);
    await until(() => started() === 1, 'the append fsync');
    assert.deepEqual(store.deliveries.leaseRouted!(ids, now, 60_000), [], 'leased before it is on disk');
    finish(1);
    await committed.durable;
    // A claim (the poller, say) gets the first one before the hand-off does.
    const [claimed] = await store.deliveries.claim({ channel: 'hook', limit: 1, now, leaseMs: 60_000 });
    assert.equal(claimed?.id, ids[0]);
    assert.deepEqual(store.deliveries.leaseRouted!(ids, now, 60_000), [ids[1]]);
    assert.deepEqual(await store.deliveries.claim({ channel: 'hook', limit: 5, now, leaseMs: 60_000 }), []);
    await store.close();
  });

  it("records outcomes while the last batch's fsync runs, answering each once durable", async () => {
    const { store, started, finish } = slowSyncStore('outcomes');
    await store.migrate();
    const now = Date.now();
    const appended = store.events.appendRouted!(
      [event('o1'), event('o2')],
      [plan('o1', now), plan('o2', now)],
      now,
      now,
    );
    await until(() => started() === 1, 'the append fsync');
    finish(1);
    await appended;
    const [d2, d1] = await store.deliveries.list({ limit: 10 });
    const outcome = (id: number): AttemptOutcome => ({
      deliveryId: id,
      attempt: {
        deliveryId: id,
        number: 1,
        startedAt: now,
        durationMs: 1,
        outcome: 'delivered',
        error: null,
        nextAttemptAt: null,
      },
      status: 'delivered',
      error: null,
    });
    const writer = new OutcomeWriter(store);
    const done: number[] = [];
    const first = watch(writer.record(outcome(d1!.id)).then(() => done.push(1)));
    await until(() => started() === 2, "the first outcome's fsync");
    const second = watch(writer.record(outcome(d2!.id)).then(() => done.push(2)));
    await until(
      async () => (await store.deliveries.get(d2!.id))?.status === 'delivered',
      "the second outcome to commit during the first one's fsync",
    );
    assert.deepEqual([first.settled, second.settled], [false, false]);
    finish(2);
    await until(() => first.settled, 'the first outcome to be durable');
    await until(() => started() === 3, "the second outcome's fsync");
    assert.equal(second.settled, false);
    finish(3);
    await until(() => second.settled, 'the second outcome to be durable');
    assert.deepEqual(done, [1, 2]);
    await writer.flush();
    await store.close();
  });
});
