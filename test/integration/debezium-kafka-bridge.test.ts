import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { CloudEvent } from '../../src/events/types.js';
import { eventually, metricValue, startTestHerald, type TestHerald } from '../support/herald.js';
import { PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';

/*
 * Seed 000's topology: Debezium writes row changes to Kafka with its JSON converter
 * (`{schema, payload}` values, the row key as the record key); a Knative KafkaSource reads the
 * topic and POSTs each record to Herald as a CloudEvent. These requests are shaped as KafkaSource
 * sends them: binary mode (ce-* headers, the record value as the body), type
 * dev.knative.kafka.event, source /apis/v1/namespaces/<ns>/kafkasources/<name>#<topic>, subject
 * partition:<n>#<offset>, id partition:<n>/offset:<offset>, the record key in the `key` extension.
 */
const TOPIC = 'dbserver1.public.products';
const BRIDGE_SOURCE = `/apis/v1/namespaces/shop/kafkasources/debezium-products#${TOPIC}`;
const COMMITTED = 1_736_936_400_000;

const rowSchema = {
  type: 'struct',
  optional: true,
  name: 'dbserver1.public.products.Value',
  fields: [
    { type: 'int32', optional: false, field: 'id' },
    { type: 'string', optional: false, field: 'name' },
    { type: 'string', optional: true, field: 'description' },
    { type: 'string', optional: false, field: 'price' },
    { type: 'int32', optional: false, field: 'stock_quantity' },
  ],
};

/** A Kafka record value as Debezium's JSON converter writes it (schemas.enable=true). */
function recordValue(op: 'c' | 'u' | 'd' | 'r', before: unknown, after: unknown, lsn: number) {
  return {
    schema: {
      type: 'struct',
      name: 'dbserver1.public.products.Envelope',
      fields: [
        { ...rowSchema, field: 'before' },
        { ...rowSchema, field: 'after' },
        { type: 'struct', field: 'source', fields: [] },
        { type: 'string', field: 'op' },
        { type: 'int64', optional: true, field: 'ts_ms' },
      ],
    },
    payload: {
      before,
      after,
      source: {
        version: '2.7.0.Final',
        connector: 'postgresql',
        name: 'dbserver1',
        ts_ms: COMMITTED + lsn,
        snapshot: 'false',
        db: 'shop',
        schema: 'public',
        table: 'products',
        txId: 700 + lsn,
        lsn,
      },
      op,
      ts_ms: COMMITTED + lsn + 120,
    },
  };
}

const recordKey = (id: number) =>
  JSON.stringify({
    schema: { type: 'struct', fields: [{ type: 'int32', optional: false, field: 'id' }] },
    payload: { id },
  });

/** The headers of KafkaSource's binary-mode request for the record at `offset`. */
function bridgeHeaders(offset: number, key: string, contentType?: string): Record<string, string> {
  const headers: Record<string, string> = {
    'ce-specversion': '1.0',
    'ce-id': `partition:0/offset:${offset}`,
    'ce-source': BRIDGE_SOURCE,
    'ce-type': 'dev.knative.kafka.event',
    'ce-subject': `partition:0#${offset}`,
    'ce-time': new Date(COMMITTED + offset * 10).toISOString(),
    'ce-key': key,
  };
  if (contentType) headers['content-type'] = contentType;
  return headers;
}

async function postBinary(h: TestHerald, headers: Record<string, string>, body: string): Promise<Response> {
  // Bytes, so that fetch adds no content type of its own.
  return fetch(`${h.url}/debezium`, { method: 'POST', headers, body: new TextEncoder().encode(body) });
}

async function storedChanges(h: TestHerald): Promise<CloudEvent[]> {
  const res = await h.get('/api/events?type=io.debezium.connector.postgresql.DataChangeEvent&limit=100');
  assert.equal(res.status, 200);
  const body = (await res.json()) as { events: { event: CloudEvent }[] };
  return body.events.map((e) => e.event);
}

const INVENTORY = `
sources:
  debezium:
    kind: debezium
projections:
  inventory:
    filter: { exact: { type: io.debezium.connector.postgresql.DataChangeEvent } }
    key: id
    rules:
      - filter: { sql: "iodebeziumtable = 'products' AND iodebeziumop <> 'd'" }
        upsert:
          id: "{{ event.data.after.id }}"
          name: "{{ event.data.after.name }}"
          stock_quantity: "{{ event.data.after.stock_quantity }}"
          last_updated: "{{ event.time }}"
          cdc_timestamp: "{{ event.data.ts_ms }}"
      - filter: { sql: "iodebeziumtable = 'products' AND iodebeziumop = 'd'" }
        delete: true
    alerts:
      - field: stock_quantity
        below: 10
        emit: { type: inventory.low_stock }
`;

describe('Debezium through Kafka and a Knative KafkaSource, at /debezium', () => {
  let h: TestHerald;
  before(async () => {
    h = await startTestHerald(INVENTORY);
  });
  after(() => h?.close());

  it('a binary-mode record with {schema, payload} is stored as the change it carries; the structured form is the same change', async () => {
    const value = recordValue('c', null, { id: 1, name: 'Lamp', price: '19.90', stock_quantity: 12 }, 101);
    const res = await postBinary(
      h,
      bridgeHeaders(564, recordKey(1), 'application/json'),
      JSON.stringify(value),
    );
    assert.equal(res.status, 202, await res.clone().text());
    assert.deepEqual(((await res.json()) as { accepted: number }).accepted, 1);
    const [event] = await storedChanges(h);
    assert.ok(event);
    assert.equal(event.source, '/debezium/postgresql/dbserver1');
    assert.equal(event.subject, '1');
    assert.equal(event.iodebeziumtable, 'products');
    assert.equal(event.iodebeziumop, 'c');
    assert.equal(event.time, new Date(COMMITTED + 101).toISOString());
    assert.deepEqual((event.data as { after: unknown }).after, value.payload.after);

    // The same record again (KafkaSource redelivers after a timeout), this time in structured
    // mode and without the converter's schema: one change, so a duplicate.
    const structured = {
      specversion: '1.0',
      id: 'partition:0/offset:564',
      source: BRIDGE_SOURCE,
      type: 'dev.knative.kafka.event',
      subject: 'partition:0#564',
      key: '{"id":1}',
      datacontenttype: 'application/json',
      data: value.payload,
    };
    const again = await h.post('/debezium', structured, { 'content-type': 'application/cloudevents+json' });
    assert.equal(again.status, 202);
    assert.deepEqual(await again.json(), { accepted: 0, duplicates: 1, ignored: 0, ids: [event.id] });
  });

  it('a tombstone (an empty body) is acknowledged and ignored, and a body without a content type is read as JSON', async () => {
    const tombstone = await postBinary(h, bridgeHeaders(570, recordKey(1)), '');
    assert.equal(tombstone.status, 202, await tombstone.clone().text());
    assert.deepEqual(await tombstone.json(), { accepted: 0, duplicates: 0, ignored: 1, ids: [] });

    const value = recordValue(
      'u',
      { id: 2 },
      { id: 2, name: 'Desk', price: '120.00', stock_quantity: 50 },
      102,
    );
    const untyped = await postBinary(h, bridgeHeaders(571, recordKey(2)), JSON.stringify(value));
    assert.equal(untyped.status, 202, await untyped.clone().text());
    assert.equal(((await untyped.json()) as { accepted: number }).accepted, 1);
  });

  it('a record that is not a Debezium change is a 400 that names what is missing', async () => {
    const plain = await postBinary(
      h,
      bridgeHeaders(580, 'k', 'application/json'),
      JSON.stringify({ msg: 'This is a test!' }),
    );
    assert.equal(plain.status, 400);
    const { error } = (await plain.json()) as { error: string };
    assert.match(error, /no "iodebeziumop" extension/);
    assert.match(error, /neither "op" nor "source"/);

    const broken = recordValue('c', null, { id: 3 }, 103) as { payload: Record<string, unknown> };
    delete broken.payload.op;
    const res = await postBinary(
      h,
      bridgeHeaders(581, recordKey(3), 'application/json'),
      JSON.stringify(broken),
    );
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /"op" must be one of c, u, d, r, t, m/);

    const text = await postBinary(h, bridgeHeaders(582, 'k', 'text/plain'), 'hello');
    assert.equal(text.status, 400);
    assert.match(
      ((await text.json()) as { error: string }).error,
      /data is text\/plain; Herald reads JSON data only/,
    );
  });

  it('the same record sent to /events is stored as sent, and Herald says where it belongs', async () => {
    const value = recordValue('c', null, { id: 9, name: 'Stool', price: '5.00', stock_quantity: 3 }, 109);
    const headers = bridgeHeaders(590, recordKey(9), 'application/json');
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${h.url}/events`, {
        method: 'POST',
        headers: { ...headers, 'ce-id': `partition:0/offset:${590 + i}` },
        body: JSON.stringify(value),
      });
      assert.equal(res.status, 202);
    }
    const hints = h.logs.filter((l) => /Debezium changes forwarded from Kafka/.test(String(l.msg)));
    assert.equal(hints.length, 1, 'said once per source');
    assert.equal(hints[0]!.source, BRIDGE_SOURCE);
    assert.match(String(hints[0]!.msg), /default \/debezium/);
  });
});

describe('a KafkaSource-shaped change updates a projection on PostgreSQL, and the metrics move', () => {
  const schema = `herald_bridge_${uniqueSuffix()}`;
  let h: TestHerald;
  let db: pg.Client;
  before(async () => {
    db = await pgClient();
    h = await startTestHerald(`store: { kind: postgres, url: "${PG_URL}", schema: ${schema} }\n${INVENTORY}`);
  });
  after(async () => {
    await h?.close();
    await db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db?.end();
  });

  const scrape = (sample: string) => metricValue(h, sample);
  const row = async (key: string) => {
    const res = await h.get(`/api/views/inventory/${key}`);
    return res.status === 200 ? ((await res.json()) as { value: Record<string, unknown> }).value : undefined;
  };

  it('creates, updates (crossing the alert threshold) and deletes the row; applied, alerts, failures and lag are counted', async () => {
    const applied = 'herald_projection_events_applied_total{projection="inventory"}';
    const alerts = 'herald_projection_alerts_total{projection="inventory"}';
    const failed = 'herald_projection_events_failed_total{projection="inventory"}';
    const dead = 'herald_projection_dead_letters_total{projection="inventory"}';
    assert.equal(await scrape(applied), 0);

    const send = async (offset: number, value: unknown, key: number) => {
      const res = await postBinary(
        h,
        bridgeHeaders(offset, recordKey(key), 'application/json'),
        JSON.stringify(value),
      );
      assert.equal(res.status, 202, await res.clone().text());
    };
    await send(
      10,
      recordValue('c', null, { id: 5, name: 'Shelf', price: '80.00', stock_quantity: 12 }, 201),
      5,
    );
    const created = await eventually(() => row('5'), 10_000, 'row 5 created');
    assert.deepEqual(created, {
      id: 5,
      name: 'Shelf',
      stock_quantity: 12,
      last_updated: new Date(COMMITTED + 201).toISOString(),
      cdc_timestamp: COMMITTED + 201 + 120,
    });
    await eventually(async () => (await scrape(applied)) === 1, 10_000, 'one applied');
    // The change was committed long ago (a fixed 2025 time): the view is that far behind it.
    assert.ok((await scrape('herald_projection_lag_seconds{projection="inventory"}')) > 3600);
    assert.ok((await scrape('herald_cdc_lag_seconds{source="/debezium/postgresql/dbserver1"}')) > 3600);
    assert.equal(await scrape('herald_cdc_lsn{source="/debezium/postgresql/dbserver1"}'), 201);
    assert.equal(await scrape('herald_projection_lag_events{projection="inventory"}'), 0);

    await send(
      11,
      recordValue(
        'u',
        { id: 5, name: 'Shelf', price: '80.00', stock_quantity: 12 },
        { id: 5, name: 'Shelf', price: '80.00', stock_quantity: 4 },
        202,
      ),
      5,
    );
    await eventually(async () => (await row('5'))?.stock_quantity === 4, 10_000, 'row 5 updated');
    await eventually(async () => (await scrape(alerts)) === 1, 10_000, 'the low-stock alert counted');
    assert.equal(await scrape(applied), 2);
    assert.equal(await scrape('herald_cdc_lsn{source="/debezium/postgresql/dbserver1"}'), 202);

    // A change of a table no rule knows is this projection's failure and a dead letter.
    const unknown = recordValue('c', null, { id: 1 }, 203);
    unknown.payload.source.table = 'warehouses';
    await send(12, unknown, 1);
    await eventually(async () => (await scrape(dead)) === 1, 10_000, 'one dead letter');
    assert.equal(await scrape(failed), 1);

    await send(
      13,
      recordValue('d', { id: 5, name: 'Shelf', price: '80.00', stock_quantity: 4 }, null, 204),
      5,
    );
    await eventually(
      async () => (await h.get('/api/views/inventory/5')).status === 404,
      10_000,
      'row 5 deleted',
    );
    await eventually(async () => (await scrape(applied)) === 3, 10_000, 'three applied');
    // Views, cursor and log are in PostgreSQL.
    const stored = await db.query(`SELECT count(*)::int AS n FROM ${schema}.events`);
    assert.ok(stored.rows[0].n >= 4);
  });
});
