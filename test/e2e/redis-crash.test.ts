import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { CloudEvent } from '../../src/events/types.js';
import { eventually, spawnHerald, tempDir } from '../support/herald.js';

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TOTAL = 5000;

async function allEventIds(url: string): Promise<string[]> {
  const ids: string[] = [];
  let before: number | null = null;
  for (;;) {
    const res = await fetch(`${url}/api/events?limit=1000${before ? `&before=${before}` : ''}`);
    const page = (await res.json()) as { events: { event: CloudEvent }[]; next: number | null };
    ids.push(...page.events.map((e) => e.event.id));
    if (page.next === null) return ids;
    before = page.next;
  }
}

describe('redis stream source: SIGKILL mid-consumption', () => {
  const redis = new Redis(REDIS);
  const stream = `herald-test:crash:${randomBytes(5).toString('hex')}`;
  const dir = tempDir('herald-redis-crash-');
  after(async () => {
    await redis.del(stream);
    redis.disconnect();
    dir.remove();
  });

  it(`after a restart every one of ${TOTAL} entries is in the log exactly once and nothing is pending`, async () => {
    const config = join(dir.path, 'herald.yaml');
    // Small batches so the kill lands mid-stream; a new process is a new consumer (another pid),
    // so what the killed one read but did not acknowledge comes back through XAUTOCLAIM.
    writeFileSync(
      config,
      `
sources:
  q:
    kind: redis
    url: ${REDIS}
    streams: [{ key: "${stream}", batch: 10, blockMs: 200, claimIdleMs: 500, startAt: oldest }]
    map: { type: crash.test }
`,
    );
    const pipeline = redis.pipeline();
    for (let i = 0; i < TOTAL; i++) pipeline.xadd(stream, '*', 'n', String(i));
    await pipeline.exec();

    const args = ['--config', config, '--data', join(dir.path, 'data'), '--port', '0'];
    const first = await spawnHerald(args);
    await eventually(
      async () => (await allEventIds(first.url)).length >= 200,
      15_000,
      'consumption to start',
    );
    await first.kill('SIGKILL');
    const [group] = (await redis.call('XINFO', ['GROUPS', stream])) as unknown[][];
    const info: Record<string, unknown> = {};
    for (let i = 0; i + 1 < group!.length; i += 2) info[String(group![i])] = group![i + 1];
    assert.ok(Number(info.pending) > 0 || Number(info['entries-read']) < TOTAL, 'killed mid-stream');

    const second = await spawnHerald(args);
    try {
      const ids = await eventually(
        async () => {
          const list = await allEventIds(second.url);
          return list.length >= TOTAL ? list : undefined;
        },
        30_000,
        `all ${TOTAL} events`,
      );
      assert.equal(ids.length, TOTAL, 'no entry stored twice');
      assert.equal(new Set(ids).size, TOTAL);
      await eventually(
        async () => ((await redis.call('XPENDING', [stream, 'herald'])) as [number])[0] === 0,
        10_000,
        'the pending list to empty',
      );
    } finally {
      await second.kill();
    }
  });
});
