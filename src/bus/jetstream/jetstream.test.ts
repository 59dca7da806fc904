import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import fc from 'fast-check';
import { freePort } from '../../../test/support/ports.js';
import type { Store, StoredEvent } from '../../engine/store.js';
import { createLogger } from '../../logger.js';
import { busSchema } from '../config.js';
import { busFromEnv } from '../index.js';
import { JetStreamBus, messageId } from './index.js';

const NATS_URL = process.env.HERALD_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const logger = createLogger({ level: 'silent' });
const noStore = { events: { unrouted: async () => [] } } as unknown as Store;

function busConfig(overrides: Record<string, unknown> = {}) {
  const name = `HERALD_T_${process.pid}_${randomBytes(4).toString('hex')}`;
  const parsed = busSchema.parse({
    kind: 'jetstream',
    url: NATS_URL,
    subject: `${name.toLowerCase()}.events`,
    stream: { name, maxAgeMs: 600_000 },
    ...overrides,
  });
  if (parsed.kind !== 'jetstream') throw new Error('unreachable');
  return parsed;
}

function stored(seq: number, id: string): StoredEvent {
  return {
    seq,
    receivedAt: Date.now(),
    event: { specversion: '1.0', id, source: 'bus-test', type: 't' },
    routedAt: null,
    routing: null,
  };
}

describe('jetstream bus', () => {
  it('creates the stream, drops a second publish of the same events, routes each event once and acks it', async () => {
    const config = busConfig();
    const bus = new JetStreamBus({ config, store: noStore, logger });
    await bus.start();
    const nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    try {
      bus.publish([stored(1, 'a'), stored(2, 'b')]);
      // The recovery sweep publishing the same run again.
      bus.publish([stored(1, 'a'), stored(2, 'b')]);
      bus.publish([stored(3, 'c')]);
      // A message from before events were carried in runs: one event, not wrapped.
      await jetstream(nc).publish(
        config.subject,
        JSON.stringify({ seq: 4, receivedAt: Date.now(), event: stored(4, 'd').event }),
      );
      const routed: number[] = [];
      bus.consume(async (batch) => {
        for (const e of batch) routed.push(e.seq);
      });
      const deadline = Date.now() + 10_000;
      while (routed.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(
        routed.sort((x, y) => x - y),
        [1, 2, 3, 4],
      );
      const info = await jsm.streams.info(config.stream.name);
      assert.equal(info.state.messages, 3, 'the duplicate publish was dropped');
      const consumer = await jsm.consumers.info(config.stream.name, config.consumer.name);
      assert.equal(consumer.num_ack_pending, 0, 'routed events are acked');
      assert.equal(consumer.num_pending, 0);
      assert.deepEqual(bus.health().ok, true);
    } finally {
      await bus.close();
      await jsm.streams.delete(config.stream.name).catch(() => undefined);
      await nc.close();
    }
    assert.equal(bus.health().ok, false, 'a closed bus is not healthy');
  });

  it('carries a large ingest batch in several messages and routes at most consumer.batch events per commit', async () => {
    const config = busConfig({ consumer: { batch: 200 } });
    const bus = new JetStreamBus({ config, store: noStore, logger });
    await bus.start();
    const nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    try {
      bus.publish(Array.from({ length: 1000 }, (_, i) => stored(i + 1, `big-${i}`)));
      const routed = new Set<number>();
      const sizes: number[] = [];
      bus.consume(async (batch) => {
        sizes.push(batch.length);
        for (const e of batch) routed.add(e.seq);
      });
      const deadline = Date.now() + 20_000;
      while (routed.size < 1000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(routed.size, 1000);
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        1000,
        'each event routed once',
      );
      assert.ok(
        sizes.every((n) => n <= 200),
        `routing commits of at most 200 events: ${sizes}`,
      );
      const info = await jsm.streams.info(config.stream.name);
      assert.equal(info.state.messages, 5, '1,000 events in messages of 200');
    } finally {
      await bus.close();
      await jsm.streams.delete(config.stream.name).catch(() => undefined);
      await nc.close();
    }
  });

  it('does not ack a batch whose routing failed while the store is down: it is routed again', async () => {
    const config = busConfig();
    const down = {
      ...noStore,
      ping: async () => {
        throw new Error('connection refused');
      },
    } as unknown as Store;
    const bus = new JetStreamBus({ config, store: down, logger });
    await bus.start();
    let calls = 0;
    try {
      bus.publish([stored(7, 'x')]);
      const done = new Promise<void>((resolve) => {
        bus.consume(async () => {
          calls++;
          if (calls === 1) throw new Error('store down');
          resolve();
        });
      });
      await done;
      assert.equal(calls, 2);
    } finally {
      await bus.close();
      const nc = await connect({ servers: NATS_URL });
      await (await jetstreamManager(nc)).streams.delete(config.stream.name).catch(() => undefined);
      await nc.close();
    }
  });

  it('terminates a message that is not Herald events, alone: the router never sees it, the rest flow', async () => {
    const config = busConfig();
    let setAside = 0;
    const bus = new JetStreamBus({ config, store: noStore, logger, onDeadLetter: () => setAside++ });
    await bus.start();
    const nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    try {
      const js = jetstream(nc);
      bus.publish([stored(1, 'a')]);
      await js.publish(config.subject, 'not json');
      await js.publish(config.subject, JSON.stringify({ seq: 2, receivedAt: 1, event: { nonsense: true } }));
      await js.publish(config.subject, JSON.stringify({ seq: 'x', event: stored(3, 'c').event }));
      bus.publish([stored(4, 'd')]);
      const routed: unknown[] = [];
      bus.consume(async (batch) => {
        for (const e of batch) routed.push(e.event.id);
      });
      const deadline = Date.now() + 10_000;
      while ((routed.length < 2 || setAside < 3) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(routed.sort(), ['a', 'd'], 'only Herald events reach the router');
      assert.equal(setAside, 3);
      const consumer = await jsm.consumers.info(config.stream.name, config.consumer.name);
      assert.equal(consumer.num_ack_pending, 0);
      assert.equal(consumer.num_pending, 0);
      assert.equal(consumer.num_redelivered, 0, 'terminated, not redelivered');
      assert.equal(consumer.config.max_deliver, 10, 'a bounded default');
    } finally {
      await bus.close();
      await jsm.streams.delete(config.stream.name).catch(() => undefined);
      await nc.close();
    }
  });

  it('a message whose routing fails while the store answers goes back a few times, then is set aside; others flow', async () => {
    const config = busConfig();
    const recorded: { seq: number; record: unknown }[] = [];
    // The store answers; routing this one event fails whenever it is tried.
    const store = {
      events: { unrouted: async () => [] },
      ping: async () => {},
      routing: {
        commit: async (batch: { seq: number; record: unknown }[]) => {
          recorded.push(...batch.map(({ seq, record }) => ({ seq, record })));
          return 0;
        },
      },
    } as unknown as Store;
    let setAside = 0;
    const bus = new JetStreamBus({ config, store, logger, onDeadLetter: () => setAside++ });
    await bus.start();
    const nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    try {
      bus.publish([stored(1, 'a')]);
      bus.publish([stored(2, 'poison')]);
      bus.publish([stored(3, 'c')]);
      const routed: string[] = [];
      let poisonTries = 0;
      bus.consume(async (batch) => {
        if (batch.some((e) => e.event.id === 'poison')) {
          poisonTries++;
          throw new TypeError("Cannot read properties of undefined (reading 'length')");
        }
        for (const e of batch) routed.push(e.event.id);
      });
      const deadline = Date.now() + 15_000;
      while (setAside < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(routed.sort(), ['a', 'c'], 'the others were routed meanwhile');
      assert.equal(setAside, 1);
      assert.ok(poisonTries >= 3 && poisonTries <= 6, `${poisonTries} tries`);
      assert.deepEqual(recorded, [
        {
          seq: 2,
          record: {
            matched: [],
            errors: [
              {
                trigger: '',
                dialect: 'router',
                kind: 'unroutable',
                message: "Cannot read properties of undefined (reading 'length')",
              },
            ],
            deliveries: 0,
          },
        },
      ]);
      const consumer = await jsm.consumers.info(config.stream.name, config.consumer.name);
      assert.equal(consumer.num_ack_pending, 0);
      assert.equal(consumer.num_pending, 0);
    } finally {
      await bus.close();
      await jsm.streams.delete(config.stream.name).catch(() => undefined);
      await nc.close();
    }
  });

  it('says clearly when the NATS server has no JetStream', async () => {
    const port = await freePort();
    const server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    try {
      const url = `nats://127.0.0.1:${port}`;
      const deadline = Date.now() + 10_000;
      for (;;) {
        const nc = await connect({ servers: url }).catch(() => null);
        if (nc) {
          await nc.close();
          break;
        }
        assert.ok(Date.now() < deadline, 'nats-server did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      const bus = new JetStreamBus({ config: busConfig({ url }), store: noStore, logger });
      await assert.rejects(bus.start(), /has no JetStream \(start nats-server with -js/);
    } finally {
      server.kill('SIGKILL');
    }
  });

  it('names the URL, without its password, when NATS cannot be reached', async () => {
    const port = await freePort();
    const bus = new JetStreamBus({
      config: busConfig({ url: `nats://herald:s3cret@127.0.0.1:${port}` }),
      store: noStore,
      logger,
    });
    const err = await bus.start().then(
      () => assert.fail('started without NATS'),
      (e: Error) => e,
    );
    assert.match(err.message, /^bus\.url: cannot reach NATS at nats:\/\/.*@127\.0\.0\.1:\d+/);
    assert.doesNotMatch(err.message, /s3cret/);
  });

  it('rejects a subject the stream would not capture, naming bus.subject', () => {
    const result = busSchema.safeParse({
      kind: 'jetstream',
      url: NATS_URL,
      subject: 'herald.events',
      stream: { subjects: ['other.>'] },
    });
    assert.equal(result.success, false);
    assert.deepEqual(result.error?.issues[0]?.path, ['subject']);
  });

  it('HERALD_BUS selects the bus', () => {
    assert.deepEqual(busFromEnv({ kind: 'embedded' }, {}), { kind: 'embedded' });
    const js = busFromEnv({ kind: 'embedded' }, { HERALD_BUS: 'nats://n1:4222' });
    assert.equal(js.kind, 'jetstream');
    assert.equal(js.kind === 'jetstream' && js.url, 'nats://n1:4222');
    assert.equal(js.kind === 'jetstream' && js.stream.name, 'HERALD');
    assert.deepEqual(busFromEnv(busConfig(), { HERALD_BUS: 'embedded' }), { kind: 'embedded' });
    assert.throws(() => busFromEnv({ kind: 'embedded' }, { HERALD_BUS: 'redis://x' }), /HERALD_BUS/);
  });

  it('message ids are valid header values and differ whenever (source, id) differ', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.string(), fc.string(), (s1, i1, s2, i2) => {
        const a = messageId({ source: s1, id: i1 });
        assert.match(a, /^[A-Za-z0-9_-]{43}$/);
        if (s1 !== s2 || i1 !== i2) assert.notEqual(a, messageId({ source: s2, id: i2 }));
        else assert.equal(a, messageId({ source: s2, id: i2 }));
      }),
    );
  });
});
