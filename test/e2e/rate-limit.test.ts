import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, type HeraldProcess, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';
import { PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';

const TOTAL = 100;
const LIMIT = { perSecond: 20, burst: 5 };
/**
 * The limit holds for grants, in PostgreSQL. Between a grant and the request reaching the sink lie
 * a claim, an event read and an HTTP request, whose durations vary by 100 ms and more on this
 * busy machine, so sends granted apart can arrive together: a window at the sink is judged as if
 * it were this much longer (5 tokens at 20/s). Two buckets instead of one would still show as
 * twice the rate over the run.
 */
const JITTER_MS = 250;

/** The window of deliveries most over `burst + perSecond × (length + jitter)`, and by how much. */
function fullestWindow(times: number[], jitterMs: number): { excess: number; text: string } {
  let worst = { excess: Number.NEGATIVE_INFINITY, text: '' };
  for (let i = 0; i < times.length; i++) {
    for (let j = i; j < times.length; j++) {
      const allowed = LIMIT.burst + (LIMIT.perSecond * (times[j]! - times[i]! + jitterMs)) / 1000;
      const excess = j - i + 1 - allowed;
      if (excess > worst.excess)
        worst = {
          excess,
          text: `${j - i + 1} in ${times[j]! - times[i]!} ms (allowed ${allowed.toFixed(1)})`,
        };
    }
  }
  return worst;
}

async function post(url: string, events: unknown[]): Promise<void> {
  const res = await fetch(`${url}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json' },
    body: JSON.stringify(events),
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(res.status, 202, await res.text());
}

describe('rate limit across processes: two Herald processes share one webhook channel’s bucket', () => {
  const schema = `herald_rate_${uniqueSuffix()}`;
  const dir = tempDir('herald-rate-');
  let sink: HttpSink;
  const processes: HeraldProcess[] = [];

  before(async () => {
    sink = await startHttpSink();
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `
store: { kind: postgres, url: ${PG_URL}, schema: ${schema}, poolSize: 4 }
bus: { kind: embedded }
dispatcher: { pollIntervalMs: 200 }
channels:
  hook:
    kind: webhook
    url: ${sink.url}
    concurrency: 8
    headers: { x-herald-process: "\${HERALD_PROCESS_NAME}" }
    rateLimit: { perSecond: ${LIMIT.perSecond}, burst: ${LIMIT.burst} }
triggers:
  everything:
    actions: [{ channel: hook }]
`,
    );
  });
  after(async () => {
    await Promise.all(processes.map((p) => p.kill('SIGKILL')));
    await sink?.close();
    const db = await pgClient();
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    dir.remove();
  });

  it(`${TOTAL} events: never faster than burst + perSecond × time, each delivered once, by both`, async (t) => {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--port', '0'];
    // One first, so the schema exists before the other starts.
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'p0' }));
    processes.push(await spawnHerald(args, { HERALD_PROCESS_NAME: 'p1' }));
    // Warm up both processes (connections, code paths) so start-up work does not delay the
    // measured sends unevenly; then let the bucket fill up again.
    const warmUp = (from: string) =>
      post(from, [
        { specversion: '1.0', id: `warm-up-${from}`, source: 'rate-limit-warm-up', type: 'test.rate' },
      ]);
    await Promise.all(processes.map((p) => warmUp(p.url)));
    await eventually(() => sink.requests.length >= 2, 60_000, 'the warm-up deliveries');
    await new Promise((r) => setTimeout(r, 1000));
    sink.requests.splice(0);
    const events = Array.from({ length: TOTAL }, (_, i) => ({
      specversion: '1.0',
      id: `rate-${i}`,
      source: 'rate-limit-test',
      type: 'test.rate',
    }));
    // Half through each process, so both route and both dispatchers have work at once.
    await Promise.all([
      post(processes[0]!.url, events.slice(0, TOTAL / 2)),
      post(processes[1]!.url, events.slice(TOTAL / 2)),
    ]);

    await eventually(
      () => sink.requests.length >= TOTAL,
      120_000,
      `${TOTAL} deliveries at the sink (${sink.requests.length} so far)`,
    );
    // Anything sent twice would arrive shortly after.
    await new Promise((r) => setTimeout(r, 1000));

    const keys = sink.requests.map((r) => String(r.headers['idempotency-key']));
    assert.equal(new Set(keys).size, TOTAL, 'every event delivered');
    assert.equal(sink.requests.length, TOTAL, 'none delivered twice');

    const times = sink.requests.map((r) => r.receivedAt).sort((a, b) => a - b);
    const span = times.at(-1)! - times[0]!;
    const at0 = fullestWindow(times, 0);
    const atJitter = fullestWindow(times, JITTER_MS);
    const byProcess = new Map<string, number>();
    for (const r of sink.requests) {
      const name = String(r.headers['x-herald-process']);
      byProcess.set(name, (byProcess.get(name) ?? 0) + 1);
    }
    t.diagnostic(
      `first to last delivery ${span} ms; fullest window ${at0.text}, or ${atJitter.text} counting ${JITTER_MS} ms of jitter; by process: ${JSON.stringify(Object.fromEntries(byProcess))}`,
    );

    assert.ok(atJitter.excess <= 0, `too many deliveries in a window: ${atJitter.text}`);
    // 5 at once, then 95 at 20/s: 4.75 s at least (a little less if the first ones arrived late).
    assert.ok(span >= 4500, `${TOTAL} deliveries took only ${span} ms`);
    assert.ok((byProcess.get('p0') ?? 0) > 0, 'p0 sent some');
    assert.ok((byProcess.get('p1') ?? 0) > 0, 'p1 sent some');
    assert.equal((byProcess.get('p0') ?? 0) + (byProcess.get('p1') ?? 0), TOTAL);

    // The bucket both processes shared is a row of the store.
    const db = await pgClient();
    try {
      const { rows } = await db.query(`SELECT channel FROM ${schema}.rate_buckets`);
      assert.deepEqual(
        rows.map((r) => r.channel),
        ['hook'],
      );
    } finally {
      await db.end();
    }
  });
});
