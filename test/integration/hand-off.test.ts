import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { RECENT_EVENT_CHARS } from '../../src/engine/dispatcher.js';
import type { Store } from '../../src/engine/store.js';
import { watchEventReads } from '../support/event-reads.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

// Polls once a minute unless told otherwise: within a test, every claim counted is one the
// engine asked for. `trigger` adds lines to the trigger (a retry policy, say).
function config(
  sinkUrl: string,
  concurrency: number,
  { pollIntervalMs = 60000, action = '{ channel: hook }', trigger = '' } = {},
) {
  return `
dispatcher: { pollIntervalMs: ${pollIntervalMs} }
channels:
  hook: { kind: webhook, url: ${sinkUrl}, timeoutMs: 5000, concurrency: ${concurrency} }
triggers:
  orders:
    filter: { exact: { type: com.example.order.created } }
    actions: [${action}]
${trigger}`;
}

const order = (id: string) => ({
  specversion: '1.0',
  id,
  source: 'test/hand-off',
  type: 'com.example.order.created',
  data: { id },
});

/** Counts the claims the store is asked for, in all and by channel. */
function countingClaims() {
  const counts = { claims: 0, byChannel: new Map<string, number>() };
  const wrapStore = (store: Store): Store => {
    const claim = store.deliveries.claim.bind(store.deliveries);
    store.deliveries.claim = (query) => {
      counts.claims++;
      counts.byChannel.set(query.channel, (counts.byChannel.get(query.channel) ?? 0) + 1);
      return claim(query);
    };
    return store;
  };
  return { counts, wrapStore };
}

/** Records the seqs of the events the store is asked to read back. */
function countingEventReads() {
  const reads: number[] = [];
  const wrapStore = (store: Store): Store => watchEventReads(store, (seqs) => reads.push(...seqs));
  return { reads, wrapStore };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const idsAtSink = (sink: HttpSink) => sink.requests.map((r) => (JSON.parse(r.body) as { id: string }).id);

describe('deliveries routed at ingest go to their channel without a claim (embedded store)', () => {
  let sink: HttpSink;
  let h: TestHerald | undefined;
  before(async () => {
    sink = await startHttpSink();
  });
  after(() => sink.close());
  afterEach(async () => {
    await h?.close();
    h = undefined;
    sink.requests.length = 0;
    sink.setDefault({ status: 200 });
  });

  it('sends each event once its commit is on disk, and the store is asked for no claim', async () => {
    const { counts, wrapStore } = countingClaims();
    const herald = await startTestHerald(config(sink.url, 8), { wrapStore });
    h = herald;
    // The dispatcher's first look at start-up: a claim per channel, finding nothing.
    await until(() => counts.claims >= 1, 'the start-up claim');
    await new Promise((r) => setTimeout(r, 50));
    const atStart = counts.claims;
    for (let i = 0; i < 20; i++) {
      const res = await herald.post('/events', order(`one-${i}`), {
        'content-type': 'application/cloudevents+json',
      });
      assert.equal(res.status, 202);
    }
    await sink.waitFor(20);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(
      idsAtSink(sink).sort(),
      Array.from({ length: 20 }, (_, i) => `one-${i}`).sort(),
      'each event sent once',
    );
    assert.equal(counts.claims - atStart, 0, 'claims made for deliveries the engine had in hand');
  });

  it('a batch larger than the channel can hold ready is sent in full, the rest claimed from the store', async () => {
    const { counts, wrapStore } = countingClaims();
    sink.setDefault({ status: 200, delayMs: 20 });
    const herald = await startTestHerald(config(sink.url, 1), { wrapStore });
    h = herald;
    await until(() => counts.claims >= 1, 'the start-up claim');
    const atStart = counts.claims;
    const batch = Array.from({ length: 30 }, (_, i) => order(`batch-${i}`));
    const res = await herald.post('/events', batch, { 'content-type': 'application/cloudevents-batch+json' });
    assert.equal(res.status, 202);
    await sink.waitFor(30, 20_000);
    await new Promise((r) => setTimeout(r, 100));
    const ids = idsAtSink(sink);
    assert.equal(ids.length, 30, 'sent exactly once each');
    assert.deepEqual(
      ids,
      batch.map((e) => e.id),
      'sent in the order they were routed',
    );
    assert.ok(counts.claims > atStart, 'the deliveries beyond the buffer were claimed');
  });

  it('a receiver that takes a second per request holds up neither the other channel nor its hand-off', async () => {
    const slowSink = await startHttpSink();
    slowSink.setDefault({ status: 200, delayMs: 1000 });
    const { counts, wrapStore } = countingClaims();
    const herald = await startTestHerald(
      `
dispatcher: { pollIntervalMs: 60000 }
channels:
  fast: { kind: webhook, url: ${sink.url}, timeoutMs: 5000, concurrency: 8 }
  slow: { kind: webhook, url: ${slowSink.url}, timeoutMs: 5000, concurrency: 1 }
triggers:
  orders:
    filter: { exact: { type: com.example.order.created } }
    actions: [{ channel: fast }, { channel: slow }]
`,
      { wrapStore },
    );
    h = herald;
    try {
      await until(() => counts.byChannel.has('fast') && counts.byChannel.has('slow'), 'the start-up claims');
      await new Promise((r) => setTimeout(r, 50));
      const fastAtStart = counts.byChannel.get('fast');
      const startedAt = Date.now();
      for (let i = 0; i < 10; i++) {
        const res = await herald.post('/events', order(`both-${i}`), {
          'content-type': 'application/cloudevents+json',
        });
        assert.equal(res.status, 202);
      }
      await sink.waitFor(10, 5_000);
      const fastDoneMs = Date.now() - startedAt;
      assert.ok(slowSink.requests.length <= 2, `the slow receiver already had ${slowSink.requests.length}`);
      assert.ok(fastDoneMs < 1000, `the fast channel took ${fastDoneMs} ms, as long as the slow one's send`);
      assert.equal(
        counts.byChannel.get('fast'),
        fastAtStart,
        "claims on the fast channel: the slow one's backlog spilled over",
      );
      assert.deepEqual(idsAtSink(sink).sort(), Array.from({ length: 10 }, (_, i) => `both-${i}`).sort());
      // The slow channel gets all of them in the end, the part beyond its buffer claimed.
      await slowSink.waitFor(10, 20_000);
      assert.equal(slowSink.requests.length, 10);
      assert.ok((counts.byChannel.get('slow') ?? 0) > 1);
    } finally {
      await herald.close();
      h = undefined;
      await slowSink.close();
    }
  });

  it('an event sent with its delivery is not kept afterwards: only its retry reads it back from the log', async () => {
    const { reads, wrapStore } = countingEventReads();
    sink.respondWith({ status: 503 });
    const herald = await startTestHerald(
      config(sink.url, 8, {
        pollIntervalMs: 100,
        trigger: '    delivery: { maxAttempts: 3, backoff: { kind: fixed, initialMs: 200 } }\n',
      }),
      { wrapStore },
    );
    h = herald;
    const res = await herald.post('/events', order('again-1'), {
      'content-type': 'application/cloudevents+json',
    });
    assert.equal(res.status, 202);
    await sink.waitFor(1);
    assert.deepEqual(reads, [], 'the first send read its event back');
    await sink.waitFor(2, 10_000);
    assert.deepEqual(idsAtSink(sink), ['again-1', 'again-1']);
    assert.equal(reads.length, 1, `reads of the event for its retry: ${reads.length}`);
  });

  it('the events of deliveries with notification keys, always claimed, are kept for the claim: none is read back', async () => {
    const { reads, wrapStore } = countingEventReads();
    const herald = await startTestHerald(
      config(sink.url, 8, {
        action: '{ channel: hook, dedupe: { key: "{{ event.data.id }}", window: 1h } }',
      }),
      { wrapStore },
    );
    h = herald;
    for (const [n, id] of ['keyed-1', 'keyed-2', 'keyed-1'].entries()) {
      const res = await herald.post(
        '/events',
        { ...order(id), id: `${id}-event-${n}` },
        {
          'content-type': 'application/cloudevents+json',
        },
      );
      assert.equal(res.status, 202);
    }
    await sink.waitFor(2);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(
      sink.requests.map((r) => (JSON.parse(r.body) as { data: { id: string } }).data.id),
      ['keyed-1', 'keyed-2'],
      'one send per key',
    );
    assert.deepEqual(reads, [], 'events read back from the log');
  });

  it('the events of deliveries left to a claim are kept for it: none is read back', async () => {
    const { reads, wrapStore } = countingEventReads();
    sink.setDefault({ status: 200, delayMs: 10 });
    const herald = await startTestHerald(config(sink.url, 1), { wrapStore });
    h = herald;
    const batch = Array.from({ length: 30 }, (_, i) => order(`kept-${i}`));
    const res = await herald.post('/events', batch, { 'content-type': 'application/cloudevents-batch+json' });
    assert.equal(res.status, 202);
    await sink.waitFor(30, 20_000);
    assert.deepEqual(
      idsAtSink(sink),
      batch.map((e) => e.id),
    );
    assert.deepEqual(reads, [], 'events read back from the log');
  });

  it('large events waiting behind a slow receiver are not held in memory: only those being sent are', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    sink.setDefault({ status: 200, delayMs: 3000 });
    const herald = await startTestHerald(config(sink.url, 2));
    h = herald;
    // Too large for the dispatcher's cache of recent events: only a reference elsewhere keeps one alive.
    const refs = await (async () => {
      const events = Array.from({ length: 10 }, (_, i) => ({
        ...order(`large-${i}`),
        specversion: '1.0' as const,
        data: { id: `large-${i}`, blob: 'x'.repeat(RECENT_EVENT_CHARS + 1024) },
      }));
      await herald.engine.ingest(events);
      return events.map((e) => new WeakRef(e));
    })();
    await until(() => sink.requests.length >= 2, 'the first two sends to arrive');
    await new Promise((r) => setTimeout(r, 200));
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    const alive = refs.filter((r) => r.deref() !== undefined).length;
    // Two are being sent (concurrency 2); the six a pump holds ready to start must not pin theirs.
    assert.ok(alive <= 2, `${alive} of 10 large events still in memory while 2 are sent`);
    sink.setDefault({ status: 200 });
    await sink.waitFor(10, 30_000);
    assert.equal(new Set(idsAtSink(sink)).size, 10, 'every event sent once the receiver answers');
  });
});
