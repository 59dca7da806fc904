import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { natsChannel, natsChannelConfigSchema } from '../../src/channels/nats/index.js';
import type { Channel, DeliveryRequest } from '../../src/engine/types.js';
import type { CloudEvent } from '../../src/events/types.js';
import { createLogger } from '../../src/logger.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';

const NATS_URL = process.env.HERALD_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const unique = () => randomBytes(5).toString('hex');

/** Every message a plain subscriber gets on `pattern`. */
function collect(nc: NatsConnection, pattern: string): Msg[] {
  const messages: Msg[] = [];
  nc.subscribe(pattern, {
    callback: (_err, msg) => {
      messages.push(msg);
    },
  });
  return messages;
}

const headersOf = (msg: Msg) =>
  Object.fromEntries([...(msg.headers?.keys() ?? [])].map((k) => [k, msg.headers!.get(k)]));

describe('nats channel through Herald: a plain NATS subscriber receives what triggers publish', () => {
  const prefix = `herald-nats-${unique()}`;
  let herald: TestHerald;
  let nc: NatsConnection;
  let received: Msg[];

  before(async () => {
    nc = await connect({ servers: NATS_URL });
    received = collect(nc, `${prefix}.>`);
    await nc.flush();
    herald = await startTestHerald(`
channels:
  bus-structured: { kind: nats, url: ${NATS_URL} }
  bus-binary: { kind: nats, url: ${NATS_URL}, mode: binary }
triggers:
  orders:
    filter: { exact: { type: order.created } }
    actions:
      - channel: bus-structured
        subject: "${prefix}.orders.{{ event.data.region }}"
      - channel: bus-binary
        subject: "${prefix}.binary.{{ event.data.region }}"
      - channel: bus-structured
        subject: "${prefix}.announced"
        event: { type: order.announced, subject: "{{ event.subject }}", data: { region: "{{ event.data.region }}" } }
  bad-subject:
    filter: { exact: { type: order.odd } }
    delivery: { maxAttempts: 3 }
    actions:
      - channel: bus-structured
        subject: "${prefix}.{{ event.data.region }}"
`);
  });
  after(async () => {
    await herald?.close();
    await nc?.close();
  });

  const order = (id: string, type: string, region: string) => ({
    specversion: '1.0',
    id,
    source: 'urn:shop',
    type,
    subject: `order-${id}`,
    data: { region, total: 42 },
  });

  it('publishes structured to the rendered subject, binary with ce- headers, and a templated event with its own id', async () => {
    const event = order('o-1', 'order.created', 'emea');
    const res = await herald.post('/events', event, { 'content-type': 'application/cloudevents+json' });
    assert.equal(res.status, 202);
    await eventually(() => received.length === 3, 10_000, 'three messages');
    const bySubject = new Map(received.map((m) => [m.subject, m]));

    const structured = bySubject.get(`${prefix}.orders.emea`);
    assert.ok(structured, `subjects: ${[...bySubject.keys()].join(', ')}`);
    assert.match(headersOf(structured)['content-type'] ?? '', /^application\/cloudevents\+json/);
    const body = structured.json<CloudEvent>();
    assert.deepEqual(
      { id: body.id, source: body.source, type: body.type, subject: body.subject, data: body.data },
      { id: 'o-1', source: 'urn:shop', type: 'order.created', subject: 'order-o-1', data: event.data },
    );

    const binary = bySubject.get(`${prefix}.binary.emea`);
    assert.ok(binary);
    const headers = headersOf(binary);
    assert.equal(headers['ce-id'], 'o-1');
    assert.equal(headers['ce-source'], 'urn:shop');
    assert.equal(headers['ce-type'], 'order.created');
    assert.equal(headers['ce-specversion'], '1.0');
    assert.equal(headers['content-type'], 'application/json');
    assert.deepEqual(binary.json(), event.data);

    const announced = bySubject.get(`${prefix}.announced`)!.json<CloudEvent>();
    assert.equal(announced.type, 'order.announced');
    assert.equal(announced.source, 'herald://nats/bus-structured');
    assert.equal(announced.subject, 'order-o-1');
    assert.deepEqual(announced.data, { region: 'emea' });
    assert.notEqual(
      announced.id,
      'o-1',
      'the templated event has an id of its own, derived from the delivery',
    );
    assert.equal(announced.heraldhops, 1);
  });

  it('a subject that renders to something NATS cannot carry fails to the DLQ at once, saying what it rendered', async () => {
    const res = await herald.post('/events', order('o-2', 'order.odd', 'north america'), {
      'content-type': 'application/cloudevents+json',
    });
    assert.equal(res.status, 202);
    const dead = await eventually(async () => {
      const page = (await (await herald.get('/api/dlq')).json()) as {
        deadLetters: { eventId: string; attempts: number; lastError: string }[];
      };
      return page.deadLetters.find((d) => d.eventId === 'o-2');
    }, 10_000);
    assert.equal(dead.attempts, 1);
    assert.match(dead.lastError, new RegExp(`"${prefix}\\.north america", which is not a NATS subject`));
  });

  it('a config with a URL that is not nats:// or tls:// is refused, naming the key', async () => {
    await assert.rejects(
      startTestHerald('channels:\n  out: { kind: nats, url: "http://127.0.0.1:4222" }\n'),
      /channels\.out\.url[\s\S]*nats:\/\/ or tls:\/\//,
    );
  });
});

describe('nats channel with jetstream: true: a retried delivery is one stream message', () => {
  const subject = `herald-nats-js.${unique()}`;
  const stream = `HERALD_NATS_JS_${unique().toUpperCase()}`;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let channel: Channel;
  const store = createSqliteStore({ path: ':memory:' });

  before(async () => {
    nc = await connect({ servers: NATS_URL });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [subject], duplicate_window: 120_000_000_000 });
    const config = natsChannelConfigSchema.parse({ url: NATS_URL, jetstream: true, timeoutMs: 5000 });
    channel = natsChannel.create('registrations', config, {
      logger: createLogger({ level: 'silent' }),
      kv: store.kv,
      inbox: store.inbox,
      emit: async () => undefined,
      env: {},
    }) as Channel;
  });
  after(async () => {
    await channel?.close?.();
    await jsm?.streams.delete(stream).catch(() => undefined);
    await nc?.close();
    await store.close();
  });

  const request = (idempotencyKey: string, attempt: number): DeliveryRequest => ({
    deliveryId: 1,
    idempotencyKey,
    attempt,
    event: { specversion: '1.0', id: 'r-1', source: 'urn:crm', type: 'customer.registered', data: { n: 1 } },
    trigger: 'registrations',
    action: natsChannel.actionSchema.parse({ subject }),
    recipient: null,
    signal: new AbortController().signal,
  });

  it('the second attempt under the same key is acknowledged as a duplicate; the stream holds one message with Nats-Msg-Id = the key', async () => {
    const key = `key-${unique()}`;
    const first = await channel.send(request(key, 1));
    const second = await channel.send(request(key, 2));
    assert.equal(first.outcome, 'delivered');
    assert.equal(second.outcome, 'delivered');
    assert.equal((first as { remoteId?: string }).remoteId, (second as { remoteId?: string }).remoteId);
    assert.equal((second.rendered as { duplicate: boolean }).duplicate, true);
    const info = await jsm.streams.info(stream);
    assert.equal(info.state.messages, 1);
    const stored = await jsm.streams.getMessage(stream, { seq: info.state.last_seq });
    assert.equal(stored?.header.get('Nats-Msg-Id'), key);
    assert.equal(stored?.json<CloudEvent>().id, 'r-1');

    // Another delivery of the same event (another trigger, another key) is a message of its own.
    const other = await channel.send(request(`key-${unique()}`, 1));
    assert.equal(other.outcome, 'delivered');
    assert.equal((await jsm.streams.info(stream)).state.messages, 2);
  });
});
