import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually, spawnHerald, tempDir } from '../support/herald.js';
import { type HttpSink, startHttpSink } from '../support/http-sink.js';

const TOTAL = 2000;

describe('crash: SIGKILL mid-load loses nothing that got a 202', () => {
  let sink: HttpSink;
  const dir = tempDir('herald-crash-');
  before(async () => {
    sink = await startHttpSink();
    writeFileSync(
      join(dir.path, 'herald.yaml'),
      `
channels:
  hook: { kind: webhook, url: ${sink.url}, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, concurrency: 16 }
triggers:
  everything:
    actions: [{ channel: hook }]
    delivery: { maxAttempts: 20, backoff: { initialMs: 50, maxMs: 500 } }
`,
    );
  });
  after(async () => {
    await sink.close();
    dir.remove();
  });

  it(`accepted events of ${TOTAL} sent concurrently are each delivered, with one webhook-id per event`, async () => {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'];
    const first = await spawnHerald(args);
    const accepted = new Set<string>();
    let killed = false;
    let sent = 0;
    const sendOne = async (i: number) => {
      const id = `evt-${i}`;
      try {
        const res = await fetch(`${first.url}/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/cloudevents+json' },
          body: JSON.stringify({
            specversion: '1.0',
            id,
            source: 'crash-test',
            type: 'test.crash',
            data: { i },
          }),
        });
        if (res.status === 202) accepted.add(id);
        await res.body?.cancel();
      } catch {
        // Connection reset by the kill: not accepted.
      }
      sent++;
      if (!killed && sent >= TOTAL / 2) {
        killed = true;
        first.child.kill('SIGKILL');
      }
    };
    // 64 concurrent senders.
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < TOTAL) await sendOne(next++);
      }),
    );
    await first.kill('SIGKILL');
    assert.ok(accepted.size > 0, 'some events were accepted before the kill');
    assert.ok(accepted.size < TOTAL, 'the kill happened mid-run');

    const second = await spawnHerald(args);
    try {
      const keysById = new Map<string, Set<string>>();
      await eventually(
        () => {
          keysById.clear();
          for (const r of sink.requests) {
            const id = JSON.parse(r.body).id as string;
            const keys = keysById.get(id) ?? new Set<string>();
            keys.add(String(r.headers['webhook-id']));
            keysById.set(id, keys);
          }
          return [...accepted].every((id) => keysById.has(id));
        },
        30_000,
        'every accepted event at the sink',
      );
      const distinctKeys = new Set(sink.requests.map((r) => String(r.headers['webhook-id'])));
      // Events that were stored but whose 202 was lost in the kill may also arrive: each has one key.
      for (const [id, keys] of keysById)
        assert.equal(keys.size, 1, `event ${id} arrived under ${keys.size} keys`);
      assert.ok(distinctKeys.size >= accepted.size);
      assert.equal(distinctKeys.size, keysById.size, 'distinct webhook-ids = distinct events delivered');
      assert.ok(
        keysById.size <= accepted.size + 64,
        'at most the in-flight requests were stored without a 202',
      );
    } finally {
      await second.kill('SIGTERM');
    }
  });
});
