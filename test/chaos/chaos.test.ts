import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Store } from '../../src/engine/store.js';
import {
  eventually,
  type HeraldProcess,
  spawnHerald,
  startTestHerald,
  tempDir,
  wrapAppends,
} from '../support/herald.js';
import { startHttpSink } from '../support/http-sink.js';
import { freePort } from '../support/ports.js';

const post = (url: string, id: string) =>
  fetch(`${url}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents+json' },
    body: JSON.stringify({ specversion: '1.0', id, source: 'chaos', type: 'chaos.test' }),
  }).then(
    async (r) => {
      await r.body?.cancel();
      return r.status;
    },
    () => 0,
  );

/** Sends events one after another from `senders` loops until stopped; records which got a 202. */
function steadyLoad(url: () => string, senders = 4) {
  const accepted = new Set<string>();
  let n = 0;
  let running = true;
  const loops = Array.from({ length: senders }, async () => {
    while (running) {
      const id = `ev-${n++}`;
      if ((await post(url(), id)) === 202) accepted.add(id);
      else await new Promise((r) => setTimeout(r, 20));
    }
  });
  return {
    accepted,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

function config(sinkUrl: string, extra = '') {
  return `
channels:
  hook: { kind: webhook, url: ${sinkUrl}, concurrency: 8, timeoutMs: 5000 }
triggers:
  all:
    actions: [{ channel: hook }]
    delivery: { maxAttempts: 30, backoff: { initialMs: 100, maxMs: 1000, jitter: 0.2 } }
${extra}`;
}

describe('chaos', () => {
  const dirs: { remove(): void }[] = [];
  after(() => {
    for (const d of dirs) d.remove();
  });

  /** A Herald child process delivering to `sinkUrl`, with its own data dir; `port` 0 picks one. */
  async function heraldFor(name: string, sinkUrl: string, port = 0) {
    const dir = tempDir(`herald-chaos-${name}-`);
    dirs.push(dir);
    writeFileSync(join(dir.path, 'herald.yaml'), config(sinkUrl));
    const args = [
      '--config',
      join(dir.path, 'herald.yaml'),
      '--data',
      join(dir.path, 'data'),
      '--port',
      String(port),
    ];
    return { args, proc: await spawnHerald(args) };
  }

  it('kill loop: SIGKILL every two seconds under load, five times — every accepted event arrives, one key each', async () => {
    const sink = await startHttpSink();
    const started = await heraldFor('kill', sink.url, await freePort());
    const args = started.args;
    let proc: HeraldProcess = started.proc;
    const load = steadyLoad(() => proc.url);
    for (let kill = 0; kill < 5; kill++) {
      await new Promise((r) => setTimeout(r, 2000));
      await proc.kill('SIGKILL');
      proc = await spawnHerald(args);
    }
    await new Promise((r) => setTimeout(r, 500));
    await load.stop();
    try {
      assert.ok(load.accepted.size > 100, `only ${load.accepted.size} events were accepted`);
      const keysOf = () => {
        const byId = new Map<string, Set<string>>();
        for (const r of sink.requests) {
          const id = JSON.parse(r.body).id as string;
          byId.set(id, (byId.get(id) ?? new Set()).add(String(r.headers['idempotency-key'])));
        }
        return byId;
      };
      await eventually(
        () => {
          const seen = keysOf();
          return [...load.accepted].every((id) => seen.has(id));
        },
        30_000,
        'every accepted event at the sink',
      );
      const byId = keysOf();
      for (const [id, keys] of byId) assert.equal(keys.size, 1, `${id} arrived under ${keys.size} keys`);
      const distinctKeys = new Set(sink.requests.map((r) => String(r.headers['idempotency-key'])));
      assert.equal(distinctKeys.size, byId.size);
    } finally {
      await proc.kill();
      await sink.close();
    }
  });

  it('sink outage: down for 10 s under load — no dead letters, everything delivered after it returns', async () => {
    const sink = await startHttpSink();
    const { proc } = await heraldFor('outage', sink.url);
    const load = steadyLoad(() => proc.url, 2);
    try {
      await new Promise((r) => setTimeout(r, 1000));
      await sink.stop();
      await new Promise((r) => setTimeout(r, 10_000));
      const during = (await (await fetch(`${proc.url}/api/status`)).json()) as {
        deadLetters: number;
        deliveries: { pending: number };
      };
      assert.equal(during.deadLetters, 0, 'nothing is dead while retries remain');
      assert.ok(during.deliveries.pending > 0, 'deliveries wait while the sink is down');
      await sink.start();
      await new Promise((r) => setTimeout(r, 1000));
      await load.stop();
      await eventually(
        async () => {
          const s = (await (await fetch(`${proc.url}/api/status`)).json()) as {
            deadLetters: number;
            deliveries: { pending: number; delivered: number };
          };
          return s.deliveries.pending === 0 ? s : undefined;
        },
        20_000,
        'the backlog to drain',
      );
      const delivered = new Set(sink.requests.map((r) => JSON.parse(r.body).id as string));
      for (const id of load.accepted) assert.ok(delivered.has(id), `${id} was not delivered`);
      const final = (await (await fetch(`${proc.url}/api/status`)).json()) as { deadLetters: number };
      assert.equal(final.deadLetters, 0);
    } finally {
      await load.stop();
      await proc.kill();
      await sink.close();
    }
  });

  it('store error on write: ingest answers 503 (never 202) and recovers when the store does', async () => {
    let failing = false;
    const herald = await startTestHerald(config('http://127.0.0.1:9/unused'), {
      wrapStore: (store: Store) =>
        wrapAppends(store, (write) =>
          failing ? Promise.reject(new Error('SQLITE_FULL: database or disk is full')) : write(),
        ),
    });
    try {
      assert.equal(await post(herald.url, 'before'), 202);
      failing = true;
      const res = await herald.post(
        '/events',
        { specversion: '1.0', id: 'during', source: 'chaos', type: 't' },
        { 'content-type': 'application/cloudevents+json' },
      );
      assert.equal(res.status, 503);
      const body = (await res.json()) as { error: string; code: string };
      assert.equal(body.code, 'STORE_UNAVAILABLE');
      assert.doesNotMatch(body.error, /SQLITE_FULL/, 'internal details stay in the log');
      assert.equal((await herald.post('/notify', {})).status, 404);
      failing = false;
      assert.equal(await post(herald.url, 'after'), 202);
      assert.equal(
        await herald.engine.store.events.findById('during'),
        null,
        'the refused event was not stored',
      );
      assert.ok(await herald.engine.store.events.findById('after'));
      assert.ok(herald.logs.some((l) => String(l.msg).includes('event log write failed')));
    } finally {
      await herald.close();
    }
  });

  it('slow consumer: a sink taking 2 s per request keeps in-flight bounded and memory flat', async () => {
    const sink = await startHttpSink();
    sink.setDefault({ status: 200, delayMs: 2000 });
    const { proc } = await heraldFor('slow', sink.url);
    const rss = () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.child.pid}/status`, 'utf8'))![1]) / 1024;
    try {
      const start = rss();
      let sent = 0;
      const samples: number[] = [];
      for (let round = 0; round < 10; round++) {
        await Promise.all(Array.from({ length: 300 }, () => post(proc.url, `slow-${sent++}`)));
        samples.push(rss());
      }
      await new Promise((r) => setTimeout(r, 2500));
      samples.push(rss());
      const status = (await (await fetch(`${proc.url}/api/status`)).json()) as {
        inFlight: number;
        deliveries: { pending: number };
      };
      assert.ok(
        sink.maxConcurrent <= 8,
        `the sink saw ${sink.maxConcurrent} requests at once (concurrency is 8)`,
      );
      assert.ok(status.inFlight <= 8);
      assert.ok(status.deliveries.pending > 2500, 'the backlog waits in the store, not in memory');
      const growth = Math.max(...samples) - start;
      assert.ok(growth < 120, `RSS grew by ${growth.toFixed(0)} MB while 3,000 deliveries queued`);
    } finally {
      await proc.kill('SIGKILL');
      await sink.close();
    }
  });
});
