import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { eventually, type HeraldProcess, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { type PrivatePostgres, startPrivatePostgres } from '../support/postgres.js';

const NATS_URL = process.env.HERALD_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const SOURCE = 'pg-restart';

function batchOf(from: number, count: number) {
  return Array.from({ length: count }, (_, k) => ({
    specversion: '1.0',
    id: `evt-${from + k}`,
    source: SOURCE,
    type: 'test.pg-restart',
    data: { i: from + k },
  }));
}

async function postBatch(url: string, events: unknown[]): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json' },
    body: JSON.stringify(events),
    signal: AbortSignal.timeout(60_000),
  });
  return { status: res.status, body: await res.json() };
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Requests per event id at the sink, and the idempotency keys each came with. */
function sinkState(sink: HttpSink) {
  const byId = new Map<string, { requests: number; keys: Set<string> }>();
  for (const r of sink.requests) {
    const id = (JSON.parse(r.body) as { id: string }).id;
    const entry = byId.get(id) ?? { requests: 0, keys: new Set<string>() };
    entry.requests++;
    entry.keys.add(String(r.headers['idempotency-key']));
    byId.set(id, entry);
  }
  return byId;
}

/** Fails with the process's last output when it has exited, instead of a bare "fetch failed". */
function assertAlive(p: HeraldProcess): void {
  if (p.child.exitCode === null && p.child.signalCode === null) return;
  assert.fail(
    `herald exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output.join('').slice(-4000)}`,
  );
}

async function storeCounts(url: string, schema: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      `SELECT (SELECT count(*) FROM ${schema}.events)::int AS events,
              (SELECT count(*) FROM ${schema}.unrouted_events)::int AS unrouted,
              (SELECT count(*) FROM ${schema}.deliveries)::int AS deliveries,
              (SELECT count(*) FROM ${schema}.deliveries WHERE status = 'delivered')::int AS delivered`,
    );
    return rows[0] as { events: number; unrouted: number; deliveries: number; delivered: number };
  } finally {
    await client.end();
  }
}

async function deleteStream(stream: string): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: NATS_URL, maxReconnectAttempts: 0 }).catch(() => null);
  if (!nc) return;
  try {
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

describe('distributed: a PostgreSQL restart mid-run', () => {
  const dir = tempDir('herald-pg-restart-');
  const suffix = `${process.pid}_${randomBytes(4).toString('hex')}`;
  const schema = `herald_pgr_${suffix}`;
  const stream = `HERALD_PGR_${suffix}`;
  let postgres: PrivatePostgres;
  let sink: HttpSink;
  const processes: HeraldProcess[] = [];

  before(async () => {
    postgres = await startPrivatePostgres();
    sink = await startHttpSink();
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await sink?.close();
    await deleteStream(stream);
    await postgres?.remove();
    dir.remove();
  });

  it('answers 503 and reports the store on /readyz and /api/health while it is down, then reconnects and loses nothing', async (t) => {
    const started = Date.now();
    const configFile = join(dir.path, 'herald.yaml');
    writeFileSync(
      configFile,
      `
store: { kind: postgres, url: ${postgres.url}, schema: ${schema}, poolSize: 6 }
bus:
  kind: jetstream
  url: ${NATS_URL}
  subject: ${stream.toLowerCase()}.events
  stream: { name: ${stream}, maxAgeMs: 3600000 }
  consumer: { ackWaitMs: 3000, batch: 500 }
  recoverAfterMs: 3000
dispatcher: { leaseMs: 10000, pollIntervalMs: 250 }
channels:
  hook: { kind: webhook, url: ${sink.url}, concurrency: 16 }
triggers:
  everything:
    actions: [{ channel: hook }]
    delivery: { maxAttempts: 1000, backoff: { initialMs: 100, maxMs: 1000 } }
`,
    );
    const args = ['--config', configFile, '--port', '0'];
    // One first, so the stream, consumer and schema exist before the second looks for them.
    processes.push(await spawnHerald(args));
    processes.push(await spawnHerald(args));
    const [a, b] = processes as [HeraldProcess, HeraldProcess];
    let accepted = 0;
    const accept = async (url: string, from: number, count: number) => {
      const res = await postBatch(url, batchOf(from, count));
      assert.equal(res.status, 202, `batch ${from}: ${JSON.stringify(res.body)}`);
      assert.deepEqual(res.body, { accepted: count, duplicates: 0 });
      accepted += count;
    };

    // 1. Delivered, and recorded as delivered, before the outage.
    await accept(a.url, 0, 200);
    await eventually(() => sinkState(sink).size === 200, 60_000, 'the first 200 events at the sink');
    await eventually(
      async () => (await storeCounts(postgres.url, schema)).delivered === 200,
      60_000,
      'the first 200 deliveries recorded',
    );

    // 2. Accepted and routed, but not delivered (the receiver is away) when the store goes down.
    await sink.stop();
    await accept(b.url, 200, 200);
    await eventually(
      async () => {
        const c = await storeCounts(postgres.url, schema);
        return c.unrouted === 0 && c.deliveries === 400;
      },
      60_000,
      'the second 200 events routed',
    );

    await postgres.stop('immediate');
    const outageStarted = Date.now();
    for (const p of [a, b]) {
      const ready = await eventually(
        async () => {
          assertAlive(p);
          const r = await getJson(`${p.url}/readyz`);
          return r.status !== 200 ? r : undefined;
        },
        30_000,
        '/readyz to report the PostgreSQL outage',
      );
      assert.equal(ready.status, 503);
      assert.equal(ready.body.status, 'unavailable');
      assert.match(String(ready.body.store), /PostgreSQL/);
      const health = await getJson(`${p.url}/api/health`);
      assert.equal(health.status, 200, 'the dashboard still gets its health page');
      const store = health.body.store as { kind: string; ok: boolean; detail: string };
      assert.equal(store.kind, 'postgres');
      assert.equal(store.ok, false, '/api/health names the store as failing');
      assert.match(store.detail, /PostgreSQL/);
      assert.equal(health.body.deliveries, null, 'no stale counts while the store is away');
    }

    // 3. Not accepted while the store is down: a clear 503; the sender keeps them and retries.
    const refused = await postBatch(a.url, batchOf(400, 200));
    assert.equal(refused.status, 503);
    assert.equal((refused.body as { code: string }).code, 'STORE_UNAVAILABLE');
    assert.match((refused.body as { error: string }).error, /could not store the event; try again/);
    const single = await fetch(`${b.url}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify(batchOf(600, 1)[0]),
    });
    assert.equal(single.status, 503);
    assert.equal(((await single.json()) as { code: string }).code, 'STORE_UNAVAILABLE');

    // Long enough for routers, dispatchers and the recovery sweep to fail a few rounds each.
    await new Promise((r) => setTimeout(r, 3000));
    await sink.start();
    await postgres.start();
    const restarted = Date.now();
    t.diagnostic(`PostgreSQL was down for ${restarted - outageStarted} ms`);

    await eventually(
      async () =>
        (await getJson(`${a.url}/readyz`)).status === 200 &&
        (await getJson(`${b.url}/readyz`)).status === 200,
      60_000,
      '/readyz ready again on both processes',
    );
    t.diagnostic(`/readyz 200 on both ${Date.now() - restarted} ms after the restart`);
    // 4. The sender re-sends what was refused, and new events follow.
    await accept(a.url, 400, 200);
    await accept(b.url, 600, 200);

    await eventually(
      () => sinkState(sink).size === accepted,
      120_000,
      `all ${accepted} events at the sink (${sinkState(sink).size} so far)`,
    );
    t.diagnostic(`all ${accepted} at the sink ${Date.now() - restarted} ms after the restart`);
    await eventually(
      async () => (await storeCounts(postgres.url, schema)).delivered === accepted,
      60_000,
      'every delivery recorded as delivered',
    );
    // Late repeats, if any, would arrive within a lease.
    await new Promise((r) => setTimeout(r, 2000));
    const final = sinkState(sink);
    assert.equal(final.size, accepted, 'distinct event ids at the sink = events accepted');
    for (const [id, entry] of final) {
      assert.equal(entry.keys.size, 1, `event ${id} arrived under ${entry.keys.size} idempotency keys`);
      assert.equal(entry.requests, 1, `event ${id} was sent ${entry.requests} times`);
    }
    assert.equal(sink.requests.length, accepted);
    assert.deepEqual(await storeCounts(postgres.url, schema), {
      events: accepted,
      unrouted: 0,
      deliveries: accepted,
      delivered: accepted,
    });
    for (const p of [a, b]) {
      const ready = await getJson(`${p.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.body, { status: 'ready', bus: 'connected' });
      const health = await getJson(`${p.url}/api/health`);
      assert.deepEqual(health.body.store, { kind: 'postgres', ok: true, detail: null });
      assert.equal((health.body.deliveries as { delivered: number }).delivered, accepted);
    }
    for (const p of [a, b]) assertAlive(p);
    t.diagnostic(`${accepted} events accepted and delivered once in ${Date.now() - started} ms`);
  });
});
