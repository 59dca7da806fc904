import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { eventually, type HeraldProcess, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { freePort } from '../support/ports.js';

const DATABASE_URL = process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const NATS_URL = process.env.HERALD_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

function unique(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
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
  extra: { recoverAfterMs?: number } = {},
): Setup {
  const schema = unique('herald_dist');
  const stream = unique('HERALD_DIST');
  const configFile = join(dir, 'herald.yaml');
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

async function deleteStream(natsUrl: string, stream: string): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: natsUrl, maxReconnectAttempts: 0 }).catch(() => null);
  if (!nc) return;
  try {
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
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

/** What the idempotent sink kept: one entry per idempotency key, and who sent it. */
function sinkState(sink: HttpSink) {
  const keysById = new Map<string, Set<string>>();
  const byProcess = new Map<string, number>();
  const seenKeys = new Set<string>();
  for (const r of sink.requests) {
    const key = String(r.headers['idempotency-key']);
    const id = (JSON.parse(r.body) as { id: string }).id;
    const keys = keysById.get(id) ?? new Set<string>();
    keys.add(key);
    keysById.set(id, keys);
    if (seenKeys.has(key)) continue;
    seenKeys.add(key);
    const proc = String(r.headers['x-herald-process']);
    byProcess.set(proc, (byProcess.get(proc) ?? 0) + 1);
  }
  return { keysById, byProcess, distinctKeys: seenKeys.size };
}

describe('distributed: three Herald processes on one JetStream stream and one PostgreSQL', () => {
  const TOTAL = 10_000;
  const BATCH = 100;
  let sink: HttpSink;
  const dir = tempDir('herald-dist-');
  let setup: Setup;
  const processes: HeraldProcess[] = [];

  before(async () => {
    sink = await startHttpSink();
    setup = writeConfig(dir.path, sink, NATS_URL);
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await sink.close();
    await deleteStream(NATS_URL, setup.stream);
    await dropSchema(setup.schema);
    dir.remove();
  });

  it(`delivers ${TOTAL} events exactly once, spread across processes, and survives a SIGKILL`, async (t) => {
    const started = Date.now();
    const args = ['--config', setup.configFile, '--port', '0'];
    // One first, so the stream, consumer and schema exist before the others race for them.
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'p0' }));
    processes.push(
      ...(await Promise.all(['p1', 'p2'].map((name) => spawnHerald(args, { HERALD_PROCESS_NAME: name })))),
    );
    const [p0, p1, p2] = processes as [HeraldProcess, HeraldProcess, HeraldProcess];

    // A producer that retries a batch elsewhere when its process dies (ingest dedups on source+id).
    let killed = false;
    let sentBatches = 0;
    const alive = () => (killed ? [p0, p2] : [p0, p1, p2]);
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async (_, worker) => {
        while (next < TOTAL) {
          const from = next;
          next += BATCH;
          const events = batchOf(from, BATCH, 'distributed-test');
          for (let attempt = 0; ; attempt++) {
            const targets = alive();
            if (await postBatch(targets[(worker + attempt) % targets.length]!.url, events)) break;
            assert.ok(attempt < 20, `batch ${from} was never accepted`);
            await new Promise((r) => setTimeout(r, 100));
          }
          sentBatches++;
          if (!killed && sentBatches >= TOTAL / BATCH / 2 && sink.requests.length > 0) {
            killed = true;
            p1.child.kill('SIGKILL');
          }
        }
      }),
    );
    assert.ok(killed, 'p1 was killed mid-run');
    const deliveredAtKill = sink.requests.length;
    t.diagnostic(
      `all ${TOTAL} accepted after ${Date.now() - started} ms; ${deliveredAtKill} delivered by then`,
    );
    assert.ok(deliveredAtKill < TOTAL, 'the kill happened while deliveries were still going on');

    const state = await eventually(
      () => {
        const s = sinkState(sink);
        return s.keysById.size === TOTAL ? s : undefined;
      },
      // Generous: this machine's two cores are often shared with other suites.
      300_000,
      `${TOTAL} distinct events at the sink (${sinkState(sink).keysById.size} so far)`,
    );
    t.diagnostic(`all ${TOTAL} delivered after ${Date.now() - started} ms`);
    // Let late redeliveries (if any) arrive before judging duplicates.
    await new Promise((r) => setTimeout(r, 1000));
    const final = sinkState(sink);
    assert.equal(final.keysById.size, TOTAL, 'distinct event ids = events sent');
    for (const [id, keys] of final.keysById)
      assert.equal(keys.size, 1, `event ${id} arrived under ${keys.size} idempotency keys`);
    assert.equal(final.distinctKeys, TOTAL, 'one delivery (idempotency key) per event');
    // Only what p1 had sent but not yet recorded when it died may reach the sink twice.
    const duplicates = sink.requests.length - final.distinctKeys;
    assert.ok(duplicates <= 32 * 2, `${duplicates} repeated requests (more than p1 had in flight)`);
    for (const name of ['p0', 'p1', 'p2'])
      assert.ok((state.byProcess.get(name) ?? 0) > 0, `process ${name} delivered some events`);
    // The survivors took over: together they delivered everything p1 did not.
    assert.equal(
      (final.byProcess.get('p0') ?? 0) + (final.byProcess.get('p2') ?? 0) + (final.byProcess.get('p1') ?? 0),
      TOTAL,
    );

    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT (SELECT count(*) FROM ${setup.schema}.events)::int AS events,
                (SELECT count(*) FROM ${setup.schema}.events WHERE routed_at IS NULL)::int AS unrouted,
                (SELECT count(*) FROM ${setup.schema}.deliveries WHERE status = 'delivered')::int AS delivered,
                (SELECT count(*) FROM ${setup.schema}.deliveries)::int AS deliveries`,
      );
      assert.deepEqual(rows[0], { events: TOTAL, unrouted: 0, delivered: TOTAL, deliveries: TOTAL });
    } finally {
      await client.end();
    }
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
    await eventually(() => sinkState(sink).keysById.size === 200, 20_000, 'the first 200 events delivered');

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

    await eventually(() => sinkState(sink).keysById.size === 800, 60_000, 'all 800 events delivered');
    const final = sinkState(sink);
    for (const [id, keys] of final.keysById)
      assert.equal(keys.size, 1, `event ${id} under ${keys.size} keys`);
    assert.equal(final.distinctKeys, 800);
  });
});
