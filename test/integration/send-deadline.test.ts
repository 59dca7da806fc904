import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';

/**
 * A receiver that answers one byte every 200 ms and never finishes holds each send until its
 * deadline, longer than the lease: the delivery must still be in flight once at a time, be tried
 * exactly maxAttempts times, and end in the dead-letter queue with the timeout as its reason.
 */
const TIMEOUT_MS = 1500;
const LEASE_MS = 1000;

function config(sinkUrl: string, store: string) {
  return `
store: ${store}
channels:
  hook: { kind: webhook, url: ${sinkUrl}, timeoutMs: ${TIMEOUT_MS}, concurrency: 4 }
triggers:
  trickle:
    actions: [{ channel: hook }]
    delivery:
      maxAttempts: 2
      backoff: { kind: fixed, initialMs: 300, jitter: 0 }
dispatcher: { leaseMs: ${LEASE_MS}, pollIntervalMs: 100 }
`;
}

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`a receiver that trickles its answer (${kind} store)`, () => {
    const schema = `herald_trickle_${uniqueSuffix()}`;
    let sink: HttpSink;
    let herald: TestHerald;
    before(async () => {
      sink = await startHttpSink();
      sink.setDefault({ status: 200, trickleMs: 200 });
      herald = await startTestHerald(
        config(
          sink.url,
          kind === 'sqlite' ? '{ kind: sqlite }' : `{ kind: postgres, url: ${PG_URL}, schema: ${schema} }`,
        ),
      );
    });
    after(async () => {
      await herald?.close();
      await sink?.close();
      if (kind === 'postgres') {
        const db = await pgClient();
        await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await db.end();
      }
    });

    it('gets exactly maxAttempts requests, never two at once, and the delivery is dead-lettered with the timeout', async () => {
      const res = await herald.post(
        '/events',
        { specversion: '1.0', id: 'slow-1', source: 'test/trickle', type: 'test.trickle' },
        { 'content-type': 'application/cloudevents+json' },
      );
      assert.equal(res.status, 202);
      const settled = await eventually(
        async () => {
          assert.ok(
            sink.maxConcurrent <= 1 && sink.requests.length <= 2,
            `${sink.maxConcurrent} requests of the delivery at once, ${sink.requests.length} in all`,
          );
          const res = await herald.get('/api/deliveries?limit=1');
          const [d] = ((await res.json()) as { deliveries: { id: number; status: string }[] }).deliveries;
          return d && d.status !== 'pending' ? d : undefined;
        },
        15_000,
        'the delivery to be settled',
      );
      // Anything still to come would come now: the lease has run out several times over.
      await new Promise((r) => setTimeout(r, 2 * LEASE_MS));
      assert.equal(sink.requests.length, 2, 'exactly maxAttempts requests');
      assert.equal(sink.maxConcurrent, 1, 'never two requests of the delivery at once');
      const delivery = (await (await herald.get(`/api/deliveries/${settled.id}`)).json()) as {
        status: string;
        lastError: string | null;
        attemptLog: { number: number; error: string | null; durationMs: number }[];
      };
      assert.equal(delivery.status, 'dead');
      assert.match(delivery.lastError ?? '', /^gave up after 2 attempts: .*no answer within 1500 ms$/);
      const attempts = delivery.attemptLog;
      assert.deepEqual(
        attempts.map((a) => a.number),
        [1, 2],
      );
      for (const a of attempts) {
        assert.match(a.error ?? '', /no answer within 1500 ms/);
        assert.ok(a.durationMs >= TIMEOUT_MS && a.durationMs < TIMEOUT_MS + 1000, `${a.durationMs} ms`);
      }
    });
  });
}
