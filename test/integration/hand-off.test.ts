import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Store } from '../../src/engine/store.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

// Polls once a minute: within a test, every claim counted is one the engine asked for.
function config(sinkUrl: string, concurrency: number) {
  return `
dispatcher: { pollIntervalMs: 60000 }
channels:
  hook: { kind: webhook, url: ${sinkUrl}, timeoutMs: 5000, concurrency: ${concurrency} }
triggers:
  orders:
    filter: { exact: { type: com.example.order.created } }
    actions: [{ channel: hook }]
`;
}

const order = (id: string) => ({
  specversion: '1.0',
  id,
  source: 'test/hand-off',
  type: 'com.example.order.created',
  data: { id },
});

/** Counts the claims the store is asked for. */
function countingClaims() {
  const counts = { claims: 0 };
  const wrapStore = (store: Store): Store => {
    const claim = store.deliveries.claim.bind(store.deliveries);
    store.deliveries.claim = (query) => {
      counts.claims++;
      return claim(query);
    };
    return store;
  };
  return { counts, wrapStore };
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
});
