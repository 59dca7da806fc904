import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replaySourceDeadLetter, startTestHerald } from '../support/herald.js';

const letter = {
  position: 'S/1',
  subject: 'orders',
  headers: {},
  payload: '{}',
  payloadEncoding: 'utf8' as const,
  payloadBytes: 2,
  truncated: false,
  reason: 'type renders empty',
};

describe('source dead-letter API', () => {
  it('answers what cannot be replayed with a 4xx naming why, and filters by source only', async () => {
    const herald = await startTestHerald(`
sources:
  feed: { kind: nats, url: "nats://127.0.0.1:4222", subjects: ["herald.test.api.${process.pid}"] }
`);
    try {
      const store = herald.engine.store.sourceDlq;
      const gone = await store.add({ ...letter, source: 'removed-from-config' }, 1);
      const cut = await store.add(
        { ...letter, source: 'feed', position: 'S/2', payloadBytes: 5_000_000, truncated: true },
        2,
      );

      const missing = await replaySourceDeadLetter(herald, 999_999);
      assert.equal(missing.status, 404);
      assert.equal(missing.body.code, 'NOT_FOUND');
      const noSource = await replaySourceDeadLetter(herald, gone.id);
      assert.equal(noSource.status, 409);
      assert.match(String(noSource.body.error), /source removed-from-config is not in the config/);
      const truncated = await replaySourceDeadLetter(herald, cut.id);
      assert.equal(truncated.status, 409);
      assert.match(String(truncated.body.error), /only the first 1048576 were kept/);
      assert.equal(await store.count(), 2, 'nothing left the table');

      const mixed = await herald.get('/api/dlq?source=feed&channel=slack');
      assert.equal(mixed.status, 400);
      assert.match(
        ((await mixed.json()) as { error: string }).error,
        /channel: .*cannot be combined with source/,
      );
      const listed = (await (await herald.get('/api/dlq?source=feed')).json()) as {
        sourceDeadLetters: { id: number }[];
        total: number;
      };
      assert.deepEqual(
        listed.sourceDeadLetters.map((l) => l.id),
        [cut.id],
      );
      assert.equal(listed.total, 1);
      const one = await herald.get(`/api/dlq/source/${cut.id}`);
      assert.equal(((await one.json()) as { position: string }).position, 'S/2');
      assert.equal((await herald.get('/api/dlq/source/abc')).status, 400);
    } finally {
      await herald.close();
    }
  });
});
