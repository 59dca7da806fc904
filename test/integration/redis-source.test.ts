import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import type { Store } from '../../src/engine/store.js';
import { HeraldError } from '../../src/errors.js';
import type { CloudEvent } from '../../src/events/types.js';
import { registries } from '../../src/plugins.js';
import { redisSource } from '../../src/sources/redis/index.js';
import {
  captureLogger,
  eventually,
  metricValue,
  replaySourceDeadLetter,
  sourceDeadLetters,
  startTestHerald,
  type TestHerald,
  tempDir,
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

  it('stream entries become events: mapped fields, an embedded CloudEvent, a bad entry set aside', async () => {
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
      const [bad] = await sourceDeadLetters(herald, 'bot');
      assert.equal(bad?.payload, JSON.stringify({ event: '{broken' }));
      assert.match(bad!.reason, /the "event" field is not JSON/);
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

  it('a poison entry is set aside, the entries behind it are stored, and it replays after a config fix', async () => {
    const stream = key('poison');
    const data = tempDir();
    const config = (type: string) => `
sources:
  orders:
    kind: redis
    url: ${REDIS}
    streams: [{ key: "${stream}", blockMs: 200, startAt: oldest }]
    map: { type: "${type}" }
`;
    await redis.xadd(stream, '*', 'kind', 'order.created', 'n', '1');
    // No "kind": the mapped type renders empty, which no CloudEvent may have.
    const poison = await redis.xadd(stream, '*', 'n', '2');
    for (let n = 3; n <= 5; n++) await redis.xadd(stream, '*', 'kind', 'order.created', 'n', String(n));
    let herald = await startTestHerald(config('{{ fields.kind }}'), { dataDir: data.path });
    try {
      const stored = await eventually(
        async () => {
          const list = await eventsOf(herald);
          return list.length >= 4 ? list : undefined;
        },
        5000,
        'the entries behind the poison one',
      );
      assert.deepEqual(stored.map((e) => (e.data as { n: string }).n).sort(), ['1', '3', '4', '5']);
      await eventually(async () => (await pendingCount(stream)) === 0, 5000, 'every entry acknowledged');
      const [letter, ...more] = await sourceDeadLetters(herald, 'orders');
      assert.equal(more.length, 0);
      assert.equal(letter!.position, `${stream}/${poison}`);
      assert.equal(letter!.subject, stream);
      assert.deepEqual(JSON.parse(letter!.payload), { n: '2' });
      assert.match(letter!.reason, /"type" must not be empty/);
      assert.equal(await metricValue(herald, 'herald_source_dead_letters_total{source="orders"}'), 1);
      const logged = herald.logs.filter((l) => l.position === `${stream}/${poison}`);
      assert.equal(logged.length, 1, 'logged once, with its position');

      // Still failing with the same config: answered 422, kept.
      const again = await replaySourceDeadLetter(herald, letter!.id);
      assert.equal(again.status, 422);
      assert.equal(again.body.code, 'EVENT_INVALID');
      assert.equal((await sourceDeadLetters(herald, 'orders')).length, 1);
      await herald.close();

      herald = await startTestHerald(config("{{ fields.kind | default: 'order.unknown' }}"), {
        dataDir: data.path,
      });
      const replayed = await replaySourceDeadLetter(herald, letter!.id);
      assert.equal(replayed.status, 200, JSON.stringify(replayed.body));
      const event = (await eventsOf(herald)).find((e) => e.id === `${stream}/${poison}`);
      assert.equal(event?.type, 'order.unknown');
      assert.deepEqual(event?.data, { n: '2' });
      assert.deepEqual(await sourceDeadLetters(herald, 'orders'), []);
    } finally {
      await herald.close();
      data.remove();
    }
  });

  it('the deeply nested event of issue 18 is set aside, and the entries behind it are stored', async () => {
    const stream = key('deep');
    const herald = await startTestHerald(`
sources:
  q: { kind: redis, url: "${REDIS}", streams: [{ key: "${stream}", blockMs: 200, startAt: oldest }] }
`);
    try {
      // A CloudEvent whose data nests 20,000 arrays (40 KB): before, retried forever.
      const deep = `{"specversion":"1.0","id":"deep","source":"urn:test:redis","type":"test.redis","data":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
      const deepId = await redis.xadd(stream, '*', 'event', deep);
      for (const id of ['behind-1', 'behind-2']) await redis.xadd(stream, '*', 'event', ce(id));
      const ids = await eventually(
        async () => {
          const list = (await eventsOf(herald)).map((e) => e.id);
          return list.length >= 2 ? list : undefined;
        },
        5000,
        'the entries behind the deep one',
      );
      assert.deepEqual(ids.sort(), ['behind-1', 'behind-2']);
      const [letter] = await sourceDeadLetters(herald, 'q');
      assert.equal(letter?.position, `${stream}/${deepId}`);
      assert.equal(letter?.payloadBytes, JSON.stringify({ event: deep }).length);
      await eventually(async () => (await pendingCount(stream)) === 0, 5000, 'every entry acknowledged');
    } finally {
      await herald.close();
    }
  });

  it('an event ingest refuses is set aside alone; an outage holds the batch back unacknowledged', async () => {
    const stream = key('refused');
    const stored: string[] = [];
    const setAside: { position: string; reason: string }[] = [];
    let outage = false;
    const { logger } = captureLogger();
    const source = redisSource.create(
      'q',
      redisSource.configSchema.parse({
        url: REDIS,
        streams: [{ key: stream, blockMs: 100, startAt: 'oldest' }],
      }),
      {
        logger,
        ingest: async (events) => {
          if (outage) throw new HeraldError('STORE_UNAVAILABLE', 'the event log could not store the event');
          if (events.some((e) => e.id === 'refused'))
            throw new HeraldError('EVENT_INVALID', 'data nests deeper than 64 levels', { status: 400 });
          stored.push(...events.map((e) => e.id));
          return events.map((e) => ({ id: e.id, source: e.source, duplicate: false }));
        },
        deadLetter: async (message, reason) => {
          setAside.push({ position: message.position, reason });
        },
        kv: undefined as never,
        env: {},
      },
    );
    // One XREADGROUP reads them all: one batch, the refused event in the middle.
    const ids: string[] = [];
    for (const id of ['a', 'b', 'refused', 'c', 'd'])
      ids.push((await redis.xadd(stream, '*', 'event', ce(id)))!);
    await source.start();
    try {
      await eventually(() => stored.length === 4, 5000, 'the other four events');
      assert.deepEqual(stored, ['a', 'b', 'c', 'd']);
      assert.deepEqual(setAside, [
        { position: `${stream}/${ids[2]}`, reason: 'data nests deeper than 64 levels' },
      ]);
      await eventually(async () => (await pendingCount(stream)) === 0, 5000, 'every entry acknowledged');

      outage = true;
      await redis.xadd(stream, '*', 'event', ce('during-outage'));
      await eventually(async () => (await pendingCount(stream)) === 1, 5000, 'the entry read');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await pendingCount(stream), 1, 'held back, not acknowledged');
      assert.equal(setAside.length, 1, 'an outage sets nothing aside');
      outage = false;
      await eventually(() => stored.includes('during-outage'), 5000, 'the entry after the outage');
    } finally {
      await source.stop();
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
      { logger, ingest: async () => [], deadLetter: async () => {}, kv: undefined as never, env: {} },
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
