import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import type { Store } from '../../src/engine/store.js';
import { HeraldError } from '../../src/errors.js';
import type { CloudEvent } from '../../src/events/types.js';
import { registries } from '../../src/plugins.js';
import { REDACTED } from '../../src/redact.js';
import { natsSource } from '../../src/sources/nats/index.js';
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

const NATS = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const suffix = () => randomBytes(5).toString('hex');

interface Listed {
  events: { seq: number; event: CloudEvent }[];
}

async function eventsOf(herald: TestHerald, query = ''): Promise<CloudEvent[]> {
  const res = await herald.get(`/api/events?limit=1000${query}`);
  return ((await res.json()) as Listed).events.map((e) => e.event);
}

const ce = (id: string, extra: Record<string, unknown> = {}) => ({
  specversion: '1.0',
  id,
  source: 'urn:test:nats',
  type: 'test.nats',
  ...extra,
});

describe('nats source', () => {
  let nc: NatsConnection;
  before(async () => {
    nc = await connect({ servers: NATS });
  });
  after(async () => {
    await nc.drain();
  });

  it('takes structured and binary CloudEvents, maps plain JSON, and survives garbage', async () => {
    const base = `herald.test.${suffix()}`;
    const herald = await startTestHerald(`
sources:
  bus:
    kind: nats
    url: ${NATS}
    subjects: ["${base}.>"]
    map:
      type: "order.{{ body.status }}"
      subject: "{{ subject }}"
      data: { order: "{{ body.order }}", via: "{{ headers.x-via }}" }
`);
    try {
      nc.publish(
        `${base}.structured`,
        JSON.stringify(ce('s-1', { subject: 'orders/1', data: { total: 42 } })),
        {
          headers: (() => {
            const h = headers();
            h.set('content-type', 'application/cloudevents+json');
            return h;
          })(),
        },
      );
      const binary = headers();
      binary.set('ce-specversion', '1.0');
      binary.set('ce-id', 'b-1');
      binary.set('ce-source', 'urn:test:nats');
      binary.set('ce-type', 'test.binary');
      binary.set('ce-subject', 'orders/2');
      binary.set('ce-tenant', 'acme');
      binary.set('content-type', 'application/json');
      nc.publish(`${base}.binary`, JSON.stringify({ total: 7 }), { headers: binary });
      nc.publish(`${base}.garbage`, new Uint8Array([0xff, 0x00, 0x7b]));
      const plain = headers();
      plain.set('x-via', 'bot');
      nc.publish(`${base}.plain`, JSON.stringify({ order: 9, status: 'paid' }), { headers: plain });
      // A payload that parses as a CloudEvent but is invalid: named, dropped, not fatal.
      nc.publish(`${base}.invalid`, JSON.stringify({ specversion: '1.0', id: 'x', source: 'y' }));
      nc.publish(`${base}.structured`, JSON.stringify(ce('s-2')));
      await nc.flush();

      const events = await eventually(async () => {
        const list = await eventsOf(herald);
        return list.length >= 4 ? list : undefined;
      });
      const byType = new Map(events.map((e) => [e.type, e]));
      const structured = events.find((e) => e.id === 's-1')!;
      assert.equal(structured.subject, 'orders/1');
      assert.deepEqual(structured.data, { total: 42 });
      const bin = byType.get('test.binary')!;
      assert.equal(bin.id, 'b-1');
      assert.equal(bin.subject, 'orders/2');
      assert.equal(bin.tenant, 'acme');
      assert.equal(bin.datacontenttype, 'application/json');
      assert.deepEqual(bin.data, { total: 7 });
      const mapped = byType.get('order.paid')!;
      assert.equal(mapped.subject, `${base}.plain`);
      assert.equal(mapped.source, 'herald://bus');
      assert.deepEqual(mapped.data, { order: '9', via: 'bot' });
      assert.ok(
        events.some((e) => e.id === 's-2'),
        'messages after the garbage still arrive',
      );
      assert.equal(events.length, 4);

      const warnings = herald.logs.filter((l) => l.level === 40).map((l) => String(l.msg));
      assert.ok(
        warnings.some((m) => m.includes(`${base}.garbage`) && m.includes('not JSON')),
        warnings.join('\n'),
      );
      assert.ok(
        warnings.some((m) => m.includes(`${base}.invalid`) && m.includes('"type"')),
        warnings.join('\n'),
      );
    } finally {
      await herald.close();
    }
  });

  it('without a map, a JSON payload that is not a CloudEvent is set aside with a reason', async () => {
    const subject = `herald.test.${suffix()}`;
    const herald = await startTestHerald(`
sources:
  bus: { kind: nats, url: ${NATS}, subjects: ["${subject}"] }
`);
    try {
      nc.publish(subject, JSON.stringify({ hello: 'world' }));
      nc.publish(subject, JSON.stringify(ce('after')));
      await eventually(async () => (await eventsOf(herald)).some((e) => e.id === 'after'));
      assert.equal((await eventsOf(herald)).length, 1);
      assert.ok(
        herald.logs.some(
          (l) => String(l.msg).includes(subject) && String(l.msg).includes('no map is configured'),
        ),
      );
      const [letter] = await sourceDeadLetters(herald, 'bus');
      assert.deepEqual(JSON.parse(letter!.payload), { hello: 'world' });
      assert.match(letter!.reason, /no map is configured/);
    } finally {
      await herald.close();
    }
  });

  it('core: a poison message is set aside, those behind it are stored, and it replays after a config fix', async () => {
    const subject = `herald.test.${suffix()}`;
    const data = tempDir();
    const config = (type: string) => `
sources:
  feed: { kind: nats, url: ${NATS}, subjects: ["${subject}"], map: { type: "${type}" } }
`;
    let herald = await startTestHerald(config('{{ body.kind }}'), { dataDir: data.path });
    try {
      const poison = headers();
      poison.set('Nats-Msg-Id', 'poison-1');
      poison.set('Authorization', 'Bearer s3cret');
      nc.publish(subject, JSON.stringify({ kind: 'order.created', n: 1 }));
      nc.publish(subject, JSON.stringify({ n: 2 }), { headers: poison });
      nc.publish(subject, JSON.stringify({ kind: 'order.created', n: 3 }));
      await nc.flush();
      await eventually(async () => (await eventsOf(herald)).length >= 2, 5000, 'the messages around it');
      const [letter, ...more] = await sourceDeadLetters(herald, 'feed');
      assert.equal(more.length, 0);
      assert.equal(letter!.position, 'poison-1', 'a core message is named by its Nats-Msg-Id');
      assert.equal(letter!.subject, subject);
      assert.equal(letter!.headers['Nats-Msg-Id'], 'poison-1');
      assert.equal(letter!.headers.Authorization, REDACTED, 'credentials are not kept');
      assert.deepEqual(JSON.parse(letter!.payload), { n: 2 });
      assert.equal(await metricValue(herald, 'herald_source_dead_letters_total{source="feed"}'), 1);
      await herald.close();

      herald = await startTestHerald(config("{{ body.kind | default: 'order.unknown' }}"), {
        dataDir: data.path,
      });
      const replayed = await replaySourceDeadLetter(herald, letter!.id);
      assert.equal(replayed.status, 200, JSON.stringify(replayed.body));
      const event = (await eventsOf(herald)).find((e) => e.id === 'poison-1');
      assert.equal(event?.type, 'order.unknown');
      assert.deepEqual(await sourceDeadLetters(herald, 'feed'), []);
      assert.equal((await replaySourceDeadLetter(herald, letter!.id)).status, 404, 'replayed once');
    } finally {
      await herald.close();
      data.remove();
    }
  });

  it('a queue group splits a subject between Herald processes: disjoint, nothing missing', async () => {
    const subject = `herald.test.${suffix()}`;
    const config = `
sources:
  bus: { kind: nats, url: ${NATS}, subjects: ["${subject}"], queue: heralds }
`;
    const a = await startTestHerald(config);
    const b = await startTestHerald(config);
    try {
      const total = 300;
      for (let i = 0; i < total; i++) nc.publish(subject, JSON.stringify(ce(`q-${i}`)));
      await nc.flush();
      const [idsA, idsB] = await eventually(async () => {
        const ids = await Promise.all([a, b].map(async (h) => (await eventsOf(h)).map((e) => e.id)));
        return ids[0]!.length + ids[1]!.length >= total ? ids : undefined;
      }, 10_000);
      assert.ok(
        idsA!.length > 0 && idsB!.length > 0,
        `both share the work (${idsA!.length}/${idsB!.length})`,
      );
      const setA = new Set(idsA);
      assert.equal(idsB!.filter((id) => setA.has(id)).length, 0, 'no message went to both');
      assert.equal(new Set([...idsA!, ...idsB!]).size, total);
    } finally {
      await a.close();
      await b.close();
    }
  });

  describe('JetStream', () => {
    it('consumes what was published before Herald started, and redelivers a batch whose ingest failed', async () => {
      const jsm = await jetstreamManager(nc);
      const stream = `HERALD_TEST_${suffix().toUpperCase()}`;
      const subject = `herald.js.${stream.toLowerCase()}`;
      await jsm.streams.add({ name: stream, subjects: [`${subject}.>`] });
      const js = jsm.jetstream();
      try {
        for (let i = 0; i < 5; i++) await js.publish(`${subject}.early`, JSON.stringify(ce(`early-${i}`)));
        await js.publish(`${subject}.bad`, 'not json at all');
        await js.publish(`${subject}.plain`, JSON.stringify({ n: 1 }));

        let failures = 0;
        const herald = await startTestHerald(
          `
sources:
  bus:
    kind: nats
    url: ${NATS}
    subjects: ["${subject}.>"]
    jetstream: { stream: ${stream}, consumer: herald, nakDelayMs: 100 }
    map: { type: plain.json }
`,
          {
            wrapStore: (store: Store) =>
              wrapAppends(store, (write) =>
                failures++ < 2 ? Promise.reject(new Error('disk is full')) : write(),
              ),
          },
        );
        try {
          const events = await eventually(async () => {
            const list = await eventsOf(herald);
            return list.length >= 6 ? list : undefined;
          }, 10_000);
          const ids = events.map((e) => e.id).sort();
          assert.deepEqual(
            ids.filter((id) => id.startsWith('early')),
            ['early-0', 'early-1', 'early-2', 'early-3', 'early-4'],
          );
          const plain = events.find((e) => e.type === 'plain.json')!;
          assert.equal(plain.id, `${stream}/7`, 'a mapped message’s id is its stream position');
          assert.ok(failures >= 2, 'the store refused the first batches');
          assert.ok(herald.logs.some((l) => String(l.msg).includes('JetStream redelivers them')));

          // Everything acknowledged, the bad message terminated rather than retried forever.
          await eventually(async () => {
            const info = await jsm.consumers.info(stream, 'herald');
            return info.num_ack_pending === 0 && info.num_pending === 0;
          });
          assert.ok(herald.logs.some((l) => String(l.msg).includes(`${subject}.bad`)));

          // New messages while running arrive as well, and a redelivered one is stored once.
          await js.publish(`${subject}.late`, JSON.stringify(ce('late')));
          await js.publish(`${subject}.late`, JSON.stringify(ce('late')));
          await eventually(async () => (await eventsOf(herald)).some((e) => e.id === 'late'));
          await eventually(async () => (await jsm.consumers.info(stream, 'herald')).num_ack_pending === 0);
          assert.equal((await eventsOf(herald)).filter((e) => e.id === 'late').length, 1);
        } finally {
          await herald.close();
        }
      } finally {
        await jsm.streams.delete(stream);
      }
    });

    it('a poison message is terminated alone: its companions are acknowledged once, it replays after a config fix', async () => {
      const jsm = await jetstreamManager(nc);
      const stream = `HERALD_TEST_${suffix().toUpperCase()}`;
      const subject = `herald.js.${stream.toLowerCase()}`;
      await jsm.streams.add({ name: stream, subjects: [subject] });
      const js = jsm.jetstream();
      const data = tempDir();
      const config = (type: string) => `
sources:
  orders:
    kind: nats
    url: ${NATS}
    subjects: ["${subject}"]
    jetstream: { stream: ${stream}, consumer: herald }
    map: { type: "${type}" }
`;
      try {
        // Published before Herald starts, so one pull hands them over as one batch.
        await js.publish(subject, JSON.stringify({ kind: 'order.created', n: 1 }));
        await js.publish(subject, JSON.stringify({ n: 2 }));
        await js.publish(subject, 'not json');
        for (let n = 4; n <= 6; n++) await js.publish(subject, JSON.stringify({ kind: 'order.created', n }));
        let herald = await startTestHerald(config('{{ body.kind }}'), { dataDir: data.path });
        try {
          const stored = await eventually(
            async () => {
              const list = await eventsOf(herald);
              return list.length >= 4 ? list : undefined;
            },
            5000,
            'the messages behind the poison ones',
          );
          assert.deepEqual(stored.map((e) => e.id).sort(), [4, 5, 6, 1].map((n) => `${stream}/${n}`).sort());
          await eventually(async () => {
            const info = await jsm.consumers.info(stream, 'herald');
            return info.num_ack_pending === 0 && info.num_pending === 0;
          });
          assert.equal((await jsm.consumers.info(stream, 'herald')).num_redelivered, 0, 'nothing came back');
          const letters = await sourceDeadLetters(herald, 'orders');
          assert.deepEqual(
            letters.map((l) => [l.position, l.subject]),
            [
              [`${stream}/3`, subject],
              [`${stream}/2`, subject],
            ],
          );
          assert.match(letters[0]!.reason, /not JSON/);
          assert.match(letters[1]!.reason, /"type" must not be empty/);
          assert.equal(await metricValue(herald, 'herald_source_dead_letters_total{source="orders"}'), 2);
          await herald.close();

          herald = await startTestHerald(config("{{ body.kind | default: 'order.unknown' }}"), {
            dataDir: data.path,
          });
          assert.equal((await replaySourceDeadLetter(herald, letters[1]!.id)).status, 200);
          const event = (await eventsOf(herald)).find((e) => e.id === `${stream}/2`);
          assert.equal(event?.type, 'order.unknown');
          const stillBad = await replaySourceDeadLetter(herald, letters[0]!.id);
          assert.equal(stillBad.status, 422);
          assert.match(String(stillBad.body.error), /not JSON/);
          assert.deepEqual(
            (await sourceDeadLetters(herald, 'orders')).map((l) => l.position),
            [`${stream}/3`],
          );
        } finally {
          await herald.close();
        }
      } finally {
        data.remove();
        await jsm.streams.delete(stream);
      }
    });

    it('an event ingest refuses is set aside and terminated alone; nothing is redelivered', async () => {
      const jsm = await jetstreamManager(nc);
      const stream = `HERALD_TEST_${suffix().toUpperCase()}`;
      const subject = `herald.js.${stream.toLowerCase()}`;
      await jsm.streams.add({ name: stream, subjects: [subject] });
      const js = jsm.jetstream();
      const stored: string[] = [];
      const setAside: string[] = [];
      const source = natsSource.create(
        'bus',
        natsSource.configSchema.parse({
          url: NATS,
          subjects: [subject],
          jetstream: { stream, consumer: 'herald' },
        }),
        {
          logger: captureLogger().logger,
          ingest: async (events) => {
            if (events.some((e) => e.id === 'refused'))
              throw new HeraldError('EVENT_INVALID', 'data nests deeper than 64 levels', { status: 400 });
            stored.push(...events.map((e) => e.id));
            return events.map((e) => ({ id: e.id, source: e.source, duplicate: false }));
          },
          deadLetter: async (message, reason) => {
            setAside.push(`${message.position}: ${reason}`);
          },
          kv: undefined as never,
          env: {},
        },
      );
      try {
        for (const id of ['a', 'b', 'refused', 'c']) await js.publish(subject, JSON.stringify(ce(id)));
        await source.start();
        await eventually(() => stored.length === 3, 5000, 'the companions');
        assert.deepEqual(stored, ['a', 'b', 'c']);
        assert.deepEqual(setAside, [`${stream}/3: data nests deeper than 64 levels`]);
        await eventually(async () => {
          const info = await jsm.consumers.info(stream, 'herald');
          return info.num_ack_pending === 0 && info.num_pending === 0;
        });
        await new Promise((r) => setTimeout(r, 300));
        assert.equal((await jsm.consumers.info(stream, 'herald')).num_redelivered, 0);
        assert.deepEqual(stored, ['a', 'b', 'c'], 'each stored once');
      } finally {
        await source.stop();
        await jsm.streams.delete(stream);
      }
    });

    it('with a maxDeliver limit, a message JetStream gives up on is set aside, not lost from sight', async () => {
      const jsm = await jetstreamManager(nc);
      const stream = `HERALD_TEST_${suffix().toUpperCase()}`;
      const subject = `herald.js.${stream.toLowerCase()}`;
      await jsm.streams.add({ name: stream, subjects: [subject] });
      const js = jsm.jetstream();
      // The store does not take the event: an outage as far as the source can tell.
      let stuck = true;
      const herald = await startTestHerald(
        `
sources:
  bus:
    kind: nats
    url: ${NATS}
    subjects: ["${subject}"]
    jetstream: { stream: ${stream}, consumer: herald, maxDeliver: 2, nakDelayMs: 50 }
`,
        {
          wrapStore: (store: Store) =>
            wrapAppends(store, (write) => (stuck ? Promise.reject(new Error('disk is full')) : write())),
        },
      );
      try {
        await js.publish(subject, JSON.stringify(ce('stuck')));
        const [letter] = await eventually(
          async () => {
            const list = await sourceDeadLetters(herald, 'bus');
            return list.length > 0 ? list : undefined;
          },
          10_000,
          'the message JetStream gave up on',
        );
        assert.equal(letter!.position, `${stream}/1`);
        assert.equal(letter!.subject, subject);
        assert.equal(JSON.parse(letter!.payload).id, 'stuck');
        assert.match(letter!.reason, /gave up on it after 2 deliveries/);
        stuck = false;
        assert.equal((await replaySourceDeadLetter(herald, letter!.id)).status, 200);
        assert.ok((await eventsOf(herald)).some((e) => e.id === 'stuck'));
      } finally {
        await herald.close();
        await jsm.streams.delete(stream);
      }
    });

    it('a process stopped mid-stream leaves the rest to the next: every event stored once', async () => {
      const jsm = await jetstreamManager(nc);
      const stream = `HERALD_TEST_${suffix().toUpperCase()}`;
      const subject = `herald.js.${stream.toLowerCase()}`;
      await jsm.streams.add({ name: stream, subjects: [subject] });
      const js = jsm.jetstream();
      const config = `
sources:
  bus:
    kind: nats
    url: ${NATS}
    subjects: ["${subject}"]
    jetstream: { stream: ${stream}, consumer: shared, batch: 10, ackWaitMs: 1500 }
`;
      const total = 400;
      // A slow disk, so that the first process is stopped with work still in flight.
      const a = await startTestHerald(config, {
        wrapStore: (store: Store) =>
          wrapAppends(store, async (write) => {
            await new Promise((r) => setTimeout(r, 30));
            return write();
          }),
      });
      try {
        for (let i = 0; i < total / 2; i++) js.publish(subject, JSON.stringify(ce(`m-${i}`)));
        const first = await eventually(async () => {
          const n = (await eventsOf(a)).length;
          return n > 0 ? n : undefined;
        });
        assert.ok(first < total / 2, 'the first process is stopped mid-stream');
        await a.stop();
        const b = await startTestHerald(config, { dataDir: a.dir });
        try {
          for (let i = total / 2; i < total; i++) await js.publish(subject, JSON.stringify(ce(`m-${i}`)));
          const ids = await eventually(
            async () => {
              const list = (await eventsOf(b)).map((e) => e.id);
              return list.length >= total ? list : undefined;
            },
            15_000,
            `all ${total} events in the log (what the stopped process had pulled comes back after ackWaitMs)`,
          );
          assert.equal(ids.length, total);
          assert.equal(new Set(ids).size, total, 'each event once');
          await eventually(async () => (await jsm.consumers.info(stream, 'shared')).num_ack_pending === 0);
          assert.equal((await jsm.consumers.info(stream, 'shared')).ack_floor.stream_seq, total);
        } finally {
          await b.close();
        }
      } finally {
        rmSync(a.dir, { recursive: true, force: true });
        await jsm.streams.delete(stream);
      }
    });
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
    assert.ok(issues('sources: { bus: { kind: nats } }').some((m) => m.startsWith('sources.bus.subjects:')));
    assert.ok(
      issues('sources: { bus: { kind: nats, url: "http://x", subjects: [a] } }').some((m) =>
        m.startsWith('sources.bus.url:'),
      ),
    );
    assert.ok(
      issues('sources: { bus: { kind: nats, subjects: [a], jetstream: { stream: S } } }').some((m) =>
        m.startsWith('sources.bus.jetstream.consumer:'),
      ),
    );
    assert.ok(
      issues('sources: { bus: { kind: nats, subjects: [a], map: { type: "{{ oops" } } }').some((m) =>
        m.startsWith('sources.bus.map.type:'),
      ),
    );
  });
});
