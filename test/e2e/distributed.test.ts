import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type JetStreamClient, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos, headers as natsHeaders } from '@nats-io/transport-node';
import pg from 'pg';
import type { CloudEvent } from '../../src/events/types.js';
import { eventually, type HeraldProcess, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { freePort } from '../support/ports.js';

const DATABASE_URL = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const NATS_URL = process.env.HERALD_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

function unique(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A JetStream stream that producers publish CloudEvents to, read by Herald's `nats` source. */
interface InputStream {
  name: string;
  /** Subject prefix; the stream and the source take `<prefix>.>`. */
  prefix: string;
  consumer: string;
}

interface Setup {
  schema: string;
  stream: string;
  configFile: string;
}

function writeConfig(
  dir: string,
  sink: HttpSink,
  natsUrl: string,
  extra: { recoverAfterMs?: number; input?: InputStream } = {},
): Setup {
  const schema = unique('herald_dist');
  const stream = unique('HERALD_DIST');
  const configFile = join(dir, 'herald.yaml');
  const input = extra.input;
  // Every process names the same durable consumer, so JetStream hands each message to one of them.
  const sources = input
    ? `
sources:
  orders:
    kind: nats
    url: ${natsUrl}
    subjects: ["${input.prefix}.>"]
    jetstream: { stream: ${input.name}, consumer: ${input.consumer}, batch: 100, ackWaitMs: 5000 }
`
    : '';
  writeFileSync(
    configFile,
    `
store: { kind: postgres, url: ${DATABASE_URL}, schema: ${schema}, poolSize: 6 }
bus:
  kind: jetstream
  url: ${natsUrl}
  subject: ${stream.toLowerCase()}.events
  stream: { name: ${stream}, maxAgeMs: 3600000 }
  consumer: { ackWaitMs: 3000, batch: 500 }
  recoverAfterMs: ${extra.recoverAfterMs ?? 5000}
dispatcher: { leaseMs: 5000, pollIntervalMs: 250 }
${sources}
channels:
  hook:
    kind: webhook
    url: ${sink.url}
    concurrency: 32
    headers: { x-herald-process: "\${HERALD_PROCESS_NAME}" }
triggers:
  everything:
    actions: [{ channel: hook }]
    delivery: { maxAttempts: 50, backoff: { initialMs: 100, maxMs: 1000 } }
`,
  );
  return { schema, stream, configFile };
}

async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
}

async function deleteStreams(natsUrl: string, ...streams: string[]): Promise<void> {
  const nc = await connect({ servers: natsUrl, maxReconnectAttempts: 0 }).catch(() => null);
  if (!nc) return;
  try {
    const jsm = await jetstreamManager(nc);
    for (const stream of streams) await jsm.streams.delete(stream).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

function batchOf(from: number, count: number, source: string) {
  return Array.from({ length: count }, (_, k) => ({
    specversion: '1.0',
    id: `evt-${from + k}`,
    source,
    type: 'test.distributed',
    data: { i: from + k },
  }));
}

async function postBatch(url: string, events: unknown[]): Promise<boolean> {
  try {
    const res = await fetch(`${url}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(events),
      signal: AbortSignal.timeout(30_000),
    });
    await res.body?.cancel();
    return res.status === 202;
  } catch {
    return false;
  }
}

const ORDER_SOURCE = 'urn:herald:test:orders';

/**
 * Publishes order event `i`: every fourth in binary mode (attributes in ce- headers, the data as
 * the payload), the others structured. The message id makes a retried publish a no-op.
 */
async function publishOrder(js: JetStreamClient, prefix: string, i: number): Promise<void> {
  const id = `order-${i}`;
  const kind = i % 2 === 0 ? 'created' : 'paid';
  const headers = natsHeaders();
  let payload: string;
  if (i % 4 === 3) {
    headers.set('ce-specversion', '1.0');
    headers.set('ce-id', id);
    headers.set('ce-source', ORDER_SOURCE);
    headers.set('ce-type', `order.${kind}`);
    headers.set('content-type', 'application/json');
    payload = JSON.stringify({ order: i });
  } else {
    headers.set('content-type', 'application/cloudevents+json');
    payload = JSON.stringify({
      specversion: '1.0',
      id,
      source: ORDER_SOURCE,
      type: `order.${kind}`,
      data: { order: i },
    });
  }
  for (let attempt = 1; ; attempt++) {
    try {
      const ack = await js.publish(`${prefix}.${kind}`, payload, { msgID: id, headers, timeout: 30_000 });
      // A duplicate is fine only as the answer to a retry whose first PubAck was lost.
      assert.ok(!ack.duplicate || attempt > 1, `${id} was stored in the stream twice`);
      return;
    } catch (err) {
      if (attempt >= 5 || err instanceof assert.AssertionError) throw err;
      await sleep(500);
    }
  }
}

/** What the idempotent sink kept, read incrementally: one entry per idempotency key, and who sent it. */
class SinkTally {
  readonly keysById = new Map<string, Set<string>>();
  readonly byProcess = new Map<string, number>();
  private readonly seenKeys = new Map<string, string>();
  /** Repeated keys by "first sender→repeating sender". */
  readonly repeatsBy = new Map<string, number>();
  private read = 0;

  constructor(private readonly sink: HttpSink) {}

  update(): this {
    const requests = this.sink.requests;
    for (; this.read < requests.length; this.read++) {
      const r = requests[this.read]!;
      const key = String(r.headers['idempotency-key']);
      const id = (JSON.parse(r.body) as { id: string }).id;
      const keys = this.keysById.get(id) ?? new Set<string>();
      keys.add(key);
      this.keysById.set(id, keys);
      const proc = String(r.headers['x-herald-process']);
      const first = this.seenKeys.get(key);
      if (first) {
        const pair = `${first}→${proc}`;
        this.repeatsBy.set(pair, (this.repeatsBy.get(pair) ?? 0) + 1);
        continue;
      }
      this.seenKeys.set(key, proc);
      this.byProcess.set(proc, (this.byProcess.get(proc) ?? 0) + 1);
    }
    return this;
  }

  get distinctIds(): number {
    return this.update().keysById.size;
  }

  get distinctKeys(): number {
    return this.update().seenKeys.size;
  }

  /** Requests that repeated an idempotency key the sink had already seen. */
  get repeats(): number {
    return this.update().read - this.seenKeys.size;
  }
}

/** Waits (generously: this machine's two cores are often shared) for `count` distinct events at the sink. */
async function sinkReaches(tally: SinkTally, count: number): Promise<void> {
  const deadline = Date.now() + 300_000;
  while (tally.distinctIds < count) {
    assert.ok(
      Date.now() < deadline,
      `only ${tally.distinctIds} of ${count} distinct events reached the sink`,
    );
    await sleep(100);
  }
}

/** Events this process stored (not counting repeats it recognised), from its /metrics. */
async function ingestedBy(process: HeraldProcess, source: string): Promise<number> {
  const text = await (await fetch(`${process.url}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^herald_events_ingested_total\{([^}]*)\} (\S+)$/gm)) {
    if (m[1]!.includes(`source="${source}"`)) total += Number(m[2]);
  }
  return total;
}

describe('distributed: three Herald processes consume one JetStream input stream into one PostgreSQL', () => {
  const TOTAL = 10_000;
  const WINDOW = 500;
  /** Events published when p1 is killed, and how far the producer may run ahead of the sink. */
  const KILL_AT = 5000;
  const MAX_LEAD = 2500;
  let sink: HttpSink;
  let nc: NatsConnection;
  const dir = tempDir('herald-dist-');
  const runId = randomBytes(4).toString('hex');
  const input: InputStream = {
    name: unique('HERALD_ORDERS'),
    prefix: `orders.${runId}`,
    consumer: `herald-orders-${runId}`,
  };
  let setup: Setup;
  const processes: HeraldProcess[] = [];

  before(async () => {
    sink = await startHttpSink();
    nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: input.name, subjects: [`${input.prefix}.>`], max_age: nanos(3_600_000) });
    setup = writeConfig(dir.path, sink, NATS_URL, { input });
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await sink.close();
    await nc?.close();
    await deleteStreams(NATS_URL, input.name, setup.stream);
    await dropSchema(setup.schema);
    dir.remove();
  });

  it(`takes ${TOTAL} events published to NATS exactly once, spread across processes, through a SIGKILL`, async (t) => {
    const started = Date.now();
    const args = ['--config', setup.configFile, '--port', '0'];
    // One first, so the consumer, bus stream and schema exist before the others race for them.
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'p0' }));
    processes.push(
      ...(await Promise.all(['p1', 'p2'].map((name) => spawnHerald(args, { HERALD_PROCESS_NAME: name })))),
    );
    const [p0, p1, p2] = processes as [HeraldProcess, HeraldProcess, HeraldProcess];
    t.diagnostic(`three processes up after ${Date.now() - started} ms`);

    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const tally = new SinkTally(sink);
    const publishStarted = Date.now();
    let kill: { p1Ingested: number; delivered: number; pending: number; ackPending: number } | undefined;
    for (let from = 0; from < TOTAL; from += WINDOW) {
      // Keep the producer at most MAX_LEAD events ahead of the sink, so that when p1 dies
      // thousands have been delivered and events are still streaming in.
      await sinkReaches(tally, from - MAX_LEAD);
      const upTo = Math.min(from + WINDOW, TOTAL);
      const killNow = from === KILL_AT;
      // p1 freezes before this window goes out, so it surely still holds messages of it, pulled
      // but not acknowledged, when it gets SIGKILL: the survivors must take those over.
      const p1Ingested = killNow ? await ingestedBy(p1, ORDER_SOURCE) : 0;
      if (killNow) p1.child.kill('SIGSTOP');
      await Promise.all(
        Array.from({ length: upTo - from }, (_, k) => publishOrder(js, input.prefix, from + k)),
      );
      if (killNow) {
        const info = await jsm.consumers.info(input.name, input.consumer);
        p1.child.kill('SIGKILL');
        kill = {
          p1Ingested,
          delivered: tally.distinctIds,
          pending: info.num_pending,
          ackPending: info.num_ack_pending,
        };
        t.diagnostic(
          `p1 killed after ${Date.now() - started} ms: ${kill.delivered} delivered, p1 had stored ${p1Ingested}; ` +
            `input consumer: ${kill.pending} not yet pulled, ${kill.ackPending} pulled and unacknowledged`,
        );
      }
    }
    t.diagnostic(`${TOTAL} published in ${Date.now() - publishStarted} ms`);
    assert.ok(kill, 'p1 was killed mid-run');
    const { p1Ingested, delivered: deliveredAtKill } = kill;
    assert.ok(deliveredAtKill < TOTAL, 'the kill happened while deliveries were still going on');

    await sinkReaches(tally, TOTAL);
    t.diagnostic(`all ${TOTAL} delivered after ${Date.now() - started} ms`);
    // Let late redeliveries (if any) arrive before judging duplicates.
    await sleep(1000);
    tally.update();
    assert.equal(tally.keysById.size, TOTAL, 'distinct event ids = events published');
    for (const [id, keys] of tally.keysById)
      assert.equal(keys.size, 1, `event ${id} arrived under ${keys.size} idempotency keys`);
    assert.equal(tally.distinctKeys, TOTAL, 'one delivery (idempotency key) per event');
    for (let i = 0; i < TOTAL; i++) assert.ok(tally.keysById.has(`order-${i}`), `order-${i} was delivered`);
    t.diagnostic(
      `${tally.repeats} repeated requests (first sender→repeating sender: ${[...tally.repeatsBy].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'})`,
    );
    // A repeat is a delivery sent again under the same key: by a survivor after p1 died mid-send,
    // or by any process whose lease ran out while this loaded machine stalled it. The idempotent
    // sink absorbs them; a flood of them would mean claims are not exclusive.
    assert.ok(tally.repeats < TOTAL / 20, `${tally.repeats} repeated requests`);
    for (const name of ['p0', 'p1', 'p2'])
      assert.ok((tally.byProcess.get(name) ?? 0) > 0, `process ${name} delivered some events`);

    // Each process took its own share of the input stream; a message stored by p1 but not yet
    // acknowledged came back to a survivor, whose ingest recognised it instead of counting it again.
    const [p0Ingested, p2Ingested] = await Promise.all([
      ingestedBy(p0, ORDER_SOURCE),
      ingestedBy(p2, ORDER_SOURCE),
    ]);
    t.diagnostic(
      `stored from NATS: p0 ${p0Ingested}, p1 ≥ ${p1Ingested} (before the kill), p2 ${p2Ingested}`,
    );
    assert.ok(p1Ingested > 0, 'p1 consumed from the input stream before it was killed');
    assert.ok(p0Ingested > 0 && p2Ingested > 0, 'both survivors consumed from the input stream');
    assert.ok(p0Ingested + p1Ingested + p2Ingested <= TOTAL, 'no event was stored twice');

    // Everything in the input stream was acknowledged once stored: nothing left pending.
    const drained = await eventually(
      async () => {
        const info = await jsm.consumers.info(input.name, input.consumer);
        return info.num_pending === 0 && info.num_ack_pending === 0 ? info : undefined;
      },
      60_000,
      'the input consumer to have every message acknowledged',
    );
    t.diagnostic(
      `input consumer delivered ${drained.delivered.consumer_seq} messages for ${TOTAL} published`,
    );
    assert.equal(drained.delivered.stream_seq, TOTAL);
    // Every delivery past one per message is a redelivery: here, what p1 held unacknowledged.
    assert.ok(
      drained.delivered.consumer_seq > TOTAL,
      'the messages p1 held unacknowledged were redelivered to the survivors',
    );

    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT (SELECT count(*) FROM ${setup.schema}.events)::int AS events,
                (SELECT count(*) FROM ${setup.schema}.unrouted_events)::int AS unrouted,
                (SELECT count(*) FROM ${setup.schema}.deliveries WHERE status = 'delivered')::int AS delivered,
                (SELECT count(*) FROM ${setup.schema}.deliveries)::int AS deliveries`,
      );
      assert.deepEqual(rows[0], { events: TOTAL, unrouted: 0, delivered: TOTAL, deliveries: TOTAL });
    } finally {
      await client.end();
    }

    // The log as the admin API shows it: every order once, binary-mode ones with their data intact.
    const listed = new Map<string, CloudEvent>();
    let cursor: number | null = null;
    do {
      const query: string = `/api/events?limit=1000&source=${encodeURIComponent(ORDER_SOURCE)}${cursor ? `&before=${cursor}` : ''}`;
      const page = (await (await fetch(`${p2.url}${query}`)).json()) as {
        events: { event: CloudEvent }[];
        next: number | null;
      };
      for (const { event } of page.events) {
        assert.ok(!listed.has(event.id), `${event.id} listed twice`);
        listed.set(event.id, event);
      }
      cursor = page.next;
    } while (cursor !== null);
    assert.equal(listed.size, TOTAL);
    assert.deepEqual(
      { type: listed.get('order-7')?.type, data: listed.get('order-7')?.data },
      { type: 'order.paid', data: { order: 7 } },
    );
    assert.deepEqual(
      { type: listed.get('order-8')?.type, data: listed.get('order-8')?.data },
      { type: 'order.created', data: { order: 8 } },
    );

    const ready = await fetch(`${p0.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', bus: 'connected' });
  });
});

/** A private nats-server (JetStream on, its own store dir) that the test may stop and restart. */
async function startNats(port: number, storeDir: string): Promise<ChildProcess> {
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('nats-server did not start')), 10_000);
    let out = '';
    child.stderr!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`nats-server exited with ${code}: ${out}`)));
  });
  return child;
}

function stopNats(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('distributed: a NATS restart mid-run', () => {
  let sink: HttpSink;
  const dir = tempDir('herald-nats-restart-');
  let setup: Setup;
  let nats: ChildProcess;
  let natsUrl: string;
  let port: number;
  const processes: HeraldProcess[] = [];

  before(async () => {
    sink = await startHttpSink();
    port = await freePort();
    natsUrl = `nats://127.0.0.1:${port}`;
    nats = await startNats(port, join(dir.path, 'nats'));
    setup = writeConfig(dir.path, sink, natsUrl, { recoverAfterMs: 3000 });
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await stopNats(nats);
    await sink.close();
    await dropSchema(setup.schema);
    dir.remove();
  });

  it('keeps accepting events, reports the outage on /readyz, reconnects and loses nothing', async () => {
    const args = ['--config', setup.configFile, '--port', '0'];
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'a' }));
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'b' }));
    const [a, b] = processes as [HeraldProcess, HeraldProcess];

    assert.ok(await postBatch(a.url, batchOf(0, 200, 'nats-restart')));
    const tally = new SinkTally(sink);
    await eventually(() => tally.distinctIds === 200, 20_000, 'the first 200 events delivered');

    await stopNats(nats);
    const outage = await eventually(
      async () => {
        const res = await fetch(`${a.url}/readyz`);
        return res.status === 503 ? ((await res.json()) as { status: string; bus: string }) : undefined;
      },
      10_000,
      '/readyz to report the NATS outage',
    );
    assert.equal(outage.status, 'unavailable');
    assert.match(outage.bus, /reconnecting/);
    const health = (await (await fetch(`${b.url}/api/health`)).json()) as { bus: { ok: boolean } };
    assert.equal(health.bus.ok, false, '/api/health shows the bus down');

    // The store still takes events: they are safe while the bus is away.
    assert.ok(await postBatch(a.url, batchOf(200, 200, 'nats-restart')));
    assert.ok(await postBatch(b.url, batchOf(400, 200, 'nats-restart')));

    nats = await startNats(port, join(dir.path, 'nats'));
    await eventually(
      async () =>
        (await fetch(`${a.url}/readyz`)).status === 200 && (await fetch(`${b.url}/readyz`)).status === 200,
      20_000,
      '/readyz ready again after NATS is back',
    );
    assert.ok(await postBatch(b.url, batchOf(600, 200, 'nats-restart')));

    await eventually(() => tally.distinctIds === 800, 60_000, 'all 800 events delivered');
    for (const [id, keys] of tally.update().keysById)
      assert.equal(keys.size, 1, `event ${id} under ${keys.size} keys`);
    assert.equal(tally.distinctKeys, 800);
  });
});
