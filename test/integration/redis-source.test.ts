import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import type { CloudEvent } from '../../src/events/types.js';
import { registries } from '../../src/plugins.js';
import { redisSource } from '../../src/sources/redis/index.js';
import type { Store } from '../../src/store/types.js';
import {
  captureLogger,
  eventually,
  startTestHerald,
  type TestHerald,
  wrapAppends,
} from '../support/herald.js';

const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const unique = (prefix: string) => `herald-test:${prefix}:${randomBytes(5).toString('hex')}`;

async function eventsOf(herald: TestHerald): Promise<CloudEvent[]> {
  const res = await herald.get('/api/events?limit=1000');
  return ((await res.json()) as { events: { event: CloudEvent }[] }).events.map((e) => e.event);
}

const ce = (id: string) =>
  JSON.stringify({ specversion: '1.0', id, source: 'urn:test:redis', type: 'test.redis' });

describe('redis source', () => {
  let redis: Redis;
  const keys: string[] = [];
  const key = (prefix: string) => {
    const k = unique(prefix);
    keys.push(k);
    return k;
  };
  const pendingCount = async (stream: string, group = 'herald') =>
    ((await redis.call('XPENDING', [stream, group])) as [number])[0];

  before(() => {
    redis = new Redis(REDIS);
  });
  after(async () => {
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('stream entries become events: mapped fields, an embedded CloudEvent, a bad entry skipped', async () => {
    const stream = key('notify');
    const herald = await startTestHerald(`
sources:
  bot:
    kind: redis
    url: ${REDIS}
    streams: [{ key: "${stream}", blockMs: 200 }]
    map:
      type: notification.created
      subject: "{{ fields.topic }}"
`);
    try {
      const first = await redis.xadd(
        stream,
        '*',
        'topic',
        'sales',
        'description',
        'Customer asks for a quote',
      );
      await redis.xadd(stream, '*', 'event', '{broken');
      await redis.xadd(stream, '*', 'event', ce('embedded-1'));
      await redis.xadd(stream, '*', 'topic', 'pricing', 'description', 'Discount?');
      const events = await eventually(async () => {
        const list = await eventsOf(herald);
        return list.length >= 3 ? list : undefined;
      });
      const sales = events.find((e) => e.subject === 'sales')!;
      assert.equal(sales.type, 'notification.created');
      assert.equal(sales.id, `${stream}/${first}`);
      assert.equal(sales.source, 'herald://bot');
      assert.deepEqual(sales.data, { topic: 'sales', description: 'Customer asks for a quote' });
      assert.ok(events.some((e) => e.id === 'embedded-1' && e.type === 'test.redis'));
      assert.ok(events.some((e) => e.subject === 'pricing'));
      assert.equal(events.length, 3);
      assert.ok(
        herald.logs.some(
          (l) => String(l.msg).includes(`of stream ${stream}`) && String(l.msg).includes('not JSON'),
        ),
      );
      await eventually(async () => (await pendingCount(stream)) === 0, 5000, 'the pending list to empty');
    } finally {
      await herald.close();
    }
  });

  it('at start, processes its own pending entries and claims those another consumer left idle', async () => {
    const stream = key('pending');
    await redis.call('XGROUP', ['CREATE', stream, 'herald', '$', 'MKSTREAM']);
    for (let i = 0; i < 3; i++) await redis.xadd(stream, '*', 'event', ce(`own-${i}`));
    await redis.call('XREADGROUP', ['GROUP', 'herald', 'me', 'COUNT', 3, 'STREAMS', stream, '>']);
    for (let i = 0; i < 4; i++) await redis.xadd(stream, '*', 'event', ce(`ghost-${i}`));
    await redis.call('XREADGROUP', ['GROUP', 'herald', 'ghost', 'COUNT', 4, 'STREAMS', stream, '>']);
    await redis.xadd(stream, '*', 'event', ce('new'));
    assert.equal(await pendingCount(stream), 7);
    await new Promise((r) => setTimeout(r, 300));

    const herald = await startTestHerald(`
sources:
  q:
    kind: redis
    url: ${REDIS}
    streams: [{ key: "${stream}", consumer: me, claimIdleMs: 250, blockMs: 200 }]
`);
    try {
      const ids = await eventually(async () => {
        const list = (await eventsOf(herald)).map((e) => e.id);
        return list.length >= 8 ? list : undefined;
      });
      assert.deepEqual(ids.sort(), [
        'ghost-0',
        'ghost-1',
        'ghost-2',
        'ghost-3',
        'new',
        'own-0',
        'own-1',
        'own-2',
      ]);
      await eventually(async () => (await pendingCount(stream)) === 0, 5000, 'the pending list to empty');
      assert.ok(herald.logs.some((l) => String(l.msg).includes('claimed 4 entries')));
    } finally {
      await herald.close();
    }
  });

  it('entries whose ingest failed stay pending and are stored once when the store recovers', async () => {
    const stream = key('retry');
    let failures = 0;
    const herald = await startTestHerald(
      `
sources:
  q: { kind: redis, url: "${REDIS}", streams: [{ key: "${stream}", blockMs: 200 }] }
`,
      {
        wrapStore: (store: Store) =>
          wrapAppends(store, (write) =>
            failures++ < 1 ? Promise.reject(new Error('disk is full')) : write(),
          ),
      },
    );
    try {
      for (let i = 0; i < 5; i++) await redis.xadd(stream, '*', 'event', ce(`r-${i}`));
      const ids = await eventually(async () => {
        const list = (await eventsOf(herald)).map((e) => e.id);
        return list.length >= 5 ? list : undefined;
      }, 8000);
      assert.equal(new Set(ids).size, 5);
      assert.equal(ids.length, 5);
      assert.ok(failures >= 2);
      assert.ok(herald.logs.some((l) => String(l.msg).includes('retrying its pending entries')));
      await eventually(async () => (await pendingCount(stream)) === 0);
    } finally {
      await herald.close();
    }
  });

  it('a Pub/Sub message becomes an event (a CloudEvent as is, anything else through the map)', async () => {
    const channel = unique('chan');
    const herald = await startTestHerald(`
sources:
  q:
    kind: redis
    url: ${REDIS}
    channels: ["${channel}"]
    map: { type: "chat.{{ channel }}", data: { said: "{{ body.text }}" } }
`);
    try {
      await redis.publish(channel, ce('pubsub-1'));
      await redis.publish(channel, JSON.stringify({ text: 'hi' }));
      const events = await eventually(async () => {
        const list = await eventsOf(herald);
        return list.length >= 2 ? list : undefined;
      });
      assert.ok(events.some((e) => e.id === 'pubsub-1' && e.type === 'test.redis'));
      const mapped = events.find((e) => e.type === `chat.${channel}`)!;
      assert.deepEqual(mapped.data, { said: 'hi' });
    } finally {
      await herald.close();
    }
  });

  it('config errors name the key', () => {
    const issues = (yaml: string) => {
      try {
        loadConfig(yaml, registries, { env: {} });
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
      }
      assert.fail('expected the config to be rejected');
    };
    assert.deepEqual(issues('sources: { q: { kind: redis } }'), [
      'sources.q.streams: list at least one stream or channel',
    ]);
    assert.ok(
      issues('sources: { q: { kind: redis, url: "http://x", channels: [a] } }').some((m) =>
        m.startsWith('sources.q.url:'),
      ),
    );
    assert.ok(
      issues('sources: { q: { kind: redis, streams: [{ group: g }] } }').some((m) =>
        m.startsWith('sources.q.streams.0.key:'),
      ),
    );
  });

  it('a URL password never reaches the log or the error', async () => {
    const { logger, lines } = captureLogger();
    const source = redisSource.create(
      'q',
      redisSource.configSchema.parse({ url: 'redis://:s3cret-pw@127.0.0.1:1', channels: ['x'] }),
      { logger, ingest: async () => [], kv: undefined as never, env: {} },
    );
    await assert.rejects(source.start(), (err: Error) => {
      assert.match(err.message, /cannot connect to Redis at redis:\/\/••••@127\.0\.0\.1:1: .*ECONNREFUSED/);
      assert.doesNotMatch(err.message, /s3cret/);
      return true;
    });
    const check = await source.check!();
    assert.equal(check.ok, false);
    assert.doesNotMatch(JSON.stringify([check, lines]), /s3cret/);
  });
});
