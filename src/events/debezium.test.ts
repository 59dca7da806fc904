import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HeraldError } from '../errors.js';
import { type DebeziumEnvelope, keySubject, type Normalised, normaliseDebezium } from './debezium.js';
import type { CloudEvent } from './types.js';
import { validateEvent } from './validate.js';

const root = new URL('../../../shared/conformance/debezium/', import.meta.url).pathname;
const read = (path: string): unknown => JSON.parse(readFileSync(join(root, path), 'utf8'));

function jsonFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) jsonFiles(full, out);
    else if (name.endsWith('.json')) out.push(relative(root, full));
  }
  return out.sort();
}

const keys = (schema: string | undefined, table: string | undefined) =>
  schema === 's1' && table === 'a' ? ['pk'] : undefined;

function eventOf(result: Normalised): CloudEvent {
  assert.equal(result.kind, 'event', JSON.stringify(result));
  if (result.kind !== 'event') throw new Error('unreachable');
  // Whatever comes out must be a valid CloudEvent that survives Herald's own validation.
  assert.deepEqual(
    validateEvent(JSON.parse(JSON.stringify(result.event))),
    JSON.parse(JSON.stringify(result.event)),
  );
  return result.event;
}

function normalised(path: string): CloudEvent {
  return eventOf(normaliseDebezium(read(path), { keyColumns: keys }));
}

function rejected(path: string, message: RegExp): void {
  assert.throws(
    () => normaliseDebezium(read(path), { keyColumns: keys }),
    (err: unknown) =>
      err instanceof HeraldError && err.code === 'REQUEST_INVALID' && message.test(err.message),
  );
}

function ignored(path: string, reason: RegExp): void {
  const result = normaliseDebezium(read(path));
  assert.equal(result.kind, 'ignored');
  if (result.kind === 'ignored') assert.match(result.reason, reason);
}

const data = (e: CloudEvent) => e.data as DebeziumEnvelope;

/** One check per conformance file; a file without one fails the suite. */
const expectations: Record<string, () => void> = {
  'cloudevents-converter/postgresql.json-data.cloudevent.json': () => {
    const e = normalised('cloudevents-converter/postgresql.json-data.cloudevent.json');
    assert.equal(e.type, 'io.debezium.connector.postgresql.DataChangeEvent');
    assert.equal(e.source, '/debezium/postgresql/test_server');
    assert.equal(e.subject, '1');
    assert.equal(e.time, '2020-01-13T13:55:39.738Z');
    assert.deepEqual(data(e), {
      before: null,
      after: { pk: 1, name: 'Bob' },
      source: {
        version: '3.7.0.Alpha2',
        connector: 'postgresql',
        name: 'test_server',
        ts_ms: 1578923739738,
        snapshot: true,
        db: 'postgres',
        schema: 's1',
        table: 'a',
        txId: 565,
        lsn: 29274832,
      },
      op: 'r',
      ts_ms: 1578923739738,
    });
    assert.equal(e.iodebeziumop, 'r');
    assert.equal(e.iodebeziumtable, 'a');
    assert.equal(e.iodebeziumtxid, '565');
  },
  'cloudevents-converter/postgresql.avro-data.cloudevent.json': () =>
    rejected(
      'cloudevents-converter/postgresql.avro-data.cloudevent.json',
      /application\/avro.*JSON data only/,
    ),
  'postgresql/create.with-schema.json': () => {
    const e = normalised('postgresql/create.with-schema.json');
    assert.deepEqual(e, normalised('postgresql/create.payload-only.json'));
  },
  'postgresql/create.payload-only.json': () => {
    const e = normalised('postgresql/create.payload-only.json');
    assert.equal(e.type, 'io.debezium.connector.postgresql.DataChangeEvent');
    assert.equal(e.source, '/debezium/postgresql/PostgreSQL_server');
    assert.equal(e.subject, '1');
    assert.equal(e.time, new Date(1559033904863).toISOString());
    assert.equal(data(e).op, 'c');
    assert.equal(data(e).before, null);
    assert.equal(data(e).after?.first_name, 'Anne');
    assert.equal(data(e).source.lsn, 24023128);
    assert.equal(e.iodebeziumlsn, '24023128');
    assert.equal(e.iodebeziumsnapshot, 'true');
    assert.deepEqual(
      data(e),
      read('postgresql/create.payload-only.json'),
      'the envelope is kept as received',
    );
  },
  'postgresql/update.with-schema.json': () =>
    assert.deepEqual(
      normalised('postgresql/update.with-schema.json'),
      normalised('postgresql/update.payload-only.json'),
    ),
  'postgresql/update.payload-only.json': () => {
    const e = normalised('postgresql/update.payload-only.json');
    assert.equal(data(e).op, 'u');
    assert.deepEqual(data(e).before, { id: 1 });
    assert.equal(data(e).after?.first_name, 'Anne Marie');
    assert.equal(e.subject, '1');
    assert.equal(e.iodebeziumtxid, '556');
  },
  'postgresql/delete.with-schema.json': () =>
    assert.deepEqual(
      normalised('postgresql/delete.with-schema.json'),
      normalised('postgresql/delete.payload-only.json'),
    ),
  'postgresql/delete.payload-only.json': () => {
    const e = normalised('postgresql/delete.payload-only.json');
    assert.equal(data(e).op, 'd');
    assert.equal(data(e).after, null);
    assert.equal(e.subject, '1', 'a delete takes its key from before');
  },
  'postgresql/tombstone.value.json': () => ignored('postgresql/tombstone.value.json', /tombstone/),
  'postgresql/truncate.payload-only.json': () => {
    const e = normalised('postgresql/truncate.payload-only.json');
    assert.equal(data(e).op, 't');
    assert.equal(e.subject, undefined);
    assert.equal(e.iodebeziumtable, 'customers');
  },
  'postgresql/message-transactional.payload-only.json': () => {
    const e = normalised('postgresql/message-transactional.payload-only.json');
    assert.equal(data(e).op, 'm');
    assert.deepEqual(data(e).message, { prefix: 'foo', content: 'Ymfy' });
    assert.equal(e.iodebeziumtxid, '556');
  },
  'postgresql/message-nontransactional.payload-only.json': () => {
    const e = normalised('postgresql/message-nontransactional.payload-only.json');
    assert.equal(data(e).op, 'm');
    assert.equal(e.iodebeziumtxid, undefined);
    assert.notEqual(e.id, normalised('postgresql/message-transactional.payload-only.json').id);
  },
  'postgresql/transaction-begin.json': () =>
    ignored('postgresql/transaction-begin.json', /transaction metadata \(BEGIN/),
  'postgresql/transaction-end.json': () =>
    ignored('postgresql/transaction-end.json', /transaction metadata \(END/),
  // Message keys are not change events: a sender posting them gets told so.
  'postgresql/key.doc-form.with-schema.json': () =>
    rejected('postgresql/key.doc-form.with-schema.json', /neither "op" nor "source"/),
  'postgresql/key.jsonconverter-form.with-schema.json': () =>
    rejected('postgresql/key.jsonconverter-form.with-schema.json', /neither "op" nor "source"/),
  'postgresql/key.payload-only.json': () =>
    rejected('postgresql/key.payload-only.json', /neither "op" nor "source"/),
  'upstream-test-resources/serde-with-schema.json': () => {
    const e = normalised('upstream-test-resources/serde-with-schema.json');
    const plain = normalised('upstream-test-resources/serde-without-schema.json');
    // The two upstream files are not the same record: this one also has ts_us and ts_ns.
    const { ts_us, ts_ns, ...rest } = data(e);
    assert.equal(ts_us, 1465491411815000);
    assert.ok(ts_ns);
    assert.deepEqual({ ...e, data: rest }, plain);
    assert.equal(
      e.time,
      '2016-06-09T16:56:51.815Z',
      'source.ts_ms 0 (unknown) falls back to the envelope ts_ms',
    );
  },
  'upstream-test-resources/serde-without-schema.json': () => {
    const e = normalised('upstream-test-resources/serde-without-schema.json');
    assert.equal(e.type, 'io.debezium.connector.mysql.DataChangeEvent');
    assert.equal(e.source, '/debezium/mysql/mysql-server-1');
    assert.equal(e.subject, '1004');
    assert.equal(data(e).op, 'c');
  },
  'upstream-test-resources/serde-update.json': () => {
    const e = normalised('upstream-test-resources/serde-update.json');
    assert.equal(data(e).op, 'u');
    assert.equal(data(e).before?.first_name, 'Anne-Marie');
    assert.equal(data(e).after?.first_name, 'Anne');
  },
  'upstream-test-resources/serde-unknown-property.json': () => {
    const e = normalised('upstream-test-resources/serde-unknown-property.json');
    assert.equal(data(e).after?.middle_name, 'L', 'columns Herald never heard of pass through');
    assert.notEqual(e.id, normalised('upstream-test-resources/serde-update.json').id);
  },
  'upstream-test-resources/serde-unwrapped.json': () =>
    rejected('upstream-test-resources/serde-unwrapped.json', /flattened row/),
};

describe('Debezium conformance files', () => {
  it('every file has an expectation', () => {
    assert.deepEqual(jsonFiles(root), Object.keys(expectations).sort());
  });
  for (const [file, check] of Object.entries(expectations)) it(file, check);

  it('a redelivered change keeps its id; a different change gets another', () => {
    const a = normalised('postgresql/create.payload-only.json');
    const again = read('postgresql/create.payload-only.json') as Record<string, unknown>;
    again.ts_ms = 1_700_000_000_000; // the connector's processing time differs on redelivery
    assert.equal(eventOf(normaliseDebezium(again)).id, a.id);
    assert.notEqual(normalised('postgresql/update.payload-only.json').id, a.id);
  });

  it('the CloudEvents converter form with upper-case txId folds to the lower-case attribute', () => {
    const input = read('cloudevents-converter/postgresql.json-data.cloudevent.json') as Record<
      string,
      unknown
    >;
    delete input.iodebeziumtxid;
    input.iodebeziumtxId = '565';
    assert.equal(data(eventOf(normaliseDebezium(input, { keyColumns: keys }))).source.txId, 565);
  });

  it('names what is wrong with a broken envelope', () => {
    const bad = (input: unknown, message: RegExp) =>
      assert.throws(
        () => normaliseDebezium(input),
        (err: unknown) => err instanceof HeraldError && message.test(err.message),
      );
    const source = { connector: 'postgresql', name: 'x' };
    bad([], /expected a JSON object/);
    bad({ op: 'x', source }, /"op" must be one of/);
    bad({ op: 'c', source: { connector: 'postgresql' } }, /source.name/);
    bad({ op: 'c', source, after: null }, /op "c" needs "after"/);
    bad({ op: 'd', source, before: 5 }, /"before" must be an object/);
  });
});

describe('keySubject', () => {
  it('is the value for one column and a JSON object for several', () => {
    assert.equal(keySubject({ id: 7, n: 'x' }, ['id']), '7');
    assert.equal(keySubject({ sku: 'a-1' }, ['sku']), 'a-1');
    assert.equal(keySubject({ b: 2, a: 1 }, ['a', 'b']), '{"a":1,"b":2}');
    assert.equal(keySubject({ a: 1 }, ['a', 'b']), undefined);
    assert.equal(keySubject(null, ['a']), undefined);
  });
});

describe('normalisation property', () => {
  const scalar = fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null));
  const row = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), scalar, { maxKeys: 6 });
  const envelope = fc
    .record({
      op: fc.constantFrom('c', 'u', 'd', 'r'),
      id: fc.integer({ min: 1 }),
      before: row,
      after: row,
      name: fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/),
      table: fc.stringMatching(/^[a-z_]{1,10}$/),
      lsn: fc.integer({ min: 0 }),
      txId: fc.integer({ min: 0, max: 2 ** 32 }),
      tsMs: fc.integer({ min: 0, max: 4_000_000_000_000 }),
      snapshot: fc.boolean(),
    })
    .map(({ op, id, before, after, name, table, lsn, txId, tsMs, snapshot }) => ({
      before: op === 'c' || op === 'r' ? null : { ...before, id },
      after: op === 'd' ? null : { ...after, id },
      source: {
        connector: 'postgresql',
        name,
        ts_ms: tsMs,
        snapshot,
        db: 'db',
        schema: 'public',
        table,
        txId,
        lsn,
      },
      op,
      ts_ms: tsMs + 5,
    }));

  it('normalise(wrap(envelope)) equals normalise(envelope) for the JSON converter wrapper', () => {
    fc.assert(
      fc.property(envelope, (env) => {
        const plain = normaliseDebezium(env);
        assert.deepEqual(normaliseDebezium({ schema: { type: 'struct', fields: [] }, payload: env }), plain);
        const event = eventOf(plain);
        assert.equal(event.subject, String(env.after?.id ?? env.before?.id));
        assert.equal(event.iodebeziumop, env.op);
      }),
    );
  });

  it('the CloudEvents converter form carries the same change as the envelope', () => {
    fc.assert(
      fc.property(envelope, (env) => {
        const s = env.source;
        const ce = {
          specversion: '1.0',
          id: `name:${s.name};lsn:${s.lsn};txId:${s.txId}`,
          source: `/debezium/postgresql/${s.name}`,
          type: 'io.debezium.connector.postgresql.DataChangeEvent',
          time: new Date(env.ts_ms).toISOString(),
          datacontenttype: 'application/json',
          iodebeziumop: env.op,
          iodebeziumconnector: 'postgresql',
          iodebeziumname: s.name,
          iodebeziumtsms: String(s.ts_ms),
          iodebeziumsnapshot: String(s.snapshot),
          iodebeziumdb: s.db,
          iodebeziumschema: s.schema,
          iodebeziumtable: s.table,
          iodebeziumlsn: String(s.lsn),
          iodebeziumtxid: String(s.txId),
          data: { before: env.before, after: env.after },
        };
        assert.deepEqual(normaliseDebezium(ce), normaliseDebezium(env));
      }),
    );
  });
});

/* A Kafka record forwarded by Knative's KafkaSource: its own attributes, the record key in `key`,
 * the record value (as Debezium's JSON converter wrote it) as data. */
function kafkaSourceEvent(value: unknown, key?: string, offset = 7): Record<string, unknown> {
  const event: Record<string, unknown> = {
    specversion: '1.0',
    id: `partition:0/offset:${offset}`,
    source: '/apis/v1/namespaces/shop/kafkasources/debezium-products#dbserver1.public.products',
    type: 'dev.knative.kafka.event',
    subject: `partition:0#${offset}`,
    time: '2026-01-15T10:30:00.000Z',
    datacontenttype: 'application/json',
  };
  if (key !== undefined) event.key = key;
  if (value !== undefined) event.data = value;
  return event;
}

describe('Kafka-bridged Debezium values (Knative KafkaSource)', () => {
  it('the conformance values, with and without {schema, payload}, become the same events as when posted bare', () => {
    for (const file of [
      'postgresql/create.with-schema.json',
      'postgresql/create.payload-only.json',
      'postgresql/update.with-schema.json',
      'postgresql/delete.with-schema.json',
      'postgresql/truncate.payload-only.json',
      'upstream-test-resources/serde-with-schema.json',
    ]) {
      const bridged = eventOf(normaliseDebezium(kafkaSourceEvent(read(file)), { keyColumns: keys }));
      assert.deepEqual(bridged, normalised(file), file);
    }
  });

  it('takes table and operation from the value, not from extensions', () => {
    const e = eventOf(normaliseDebezium(kafkaSourceEvent(read('postgresql/update.with-schema.json'))));
    assert.equal(e.type, 'io.debezium.connector.postgresql.DataChangeEvent');
    assert.equal(e.iodebeziumop, 'u');
    assert.equal(e.iodebeziumtable, 'customers');
    assert.equal(e.iodebeziumschema, 'public');
    assert.equal(e.iodebeziumdb, 'postgres');
    assert.equal(e.key, undefined, "the bridge's attributes do not leak into the change event");
  });

  it('a tombstone (no data) and transaction metadata are ignored, not refused', () => {
    const tombstone = normaliseDebezium(kafkaSourceEvent(undefined, '{"id":1}'));
    assert.equal(tombstone.kind, 'ignored');
    assert.equal(normaliseDebezium(kafkaSourceEvent(null)).kind, 'ignored');
    assert.equal(
      normaliseDebezium(kafkaSourceEvent(read('postgresql/transaction-begin.json'))).kind,
      'ignored',
    );
  });

  it('the Kafka key, bare or wrapped, is the subject when no key columns are configured', () => {
    const value = read('postgresql/create.payload-only.json') as Record<string, unknown>;
    const after = value.after as Record<string, unknown>;
    const withoutId = { ...value, after: { ...after, id: undefined, customer_no: 'c-9' } };
    const wrapped = JSON.stringify({ schema: { type: 'struct' }, payload: { customer_no: 'c-9' } });
    assert.equal(eventOf(normaliseDebezium(kafkaSourceEvent(withoutId, wrapped))).subject, 'c-9');
    assert.equal(eventOf(normaliseDebezium(kafkaSourceEvent(value, '{"id":1}'))).subject, '1');
    const composite = eventOf(normaliseDebezium(kafkaSourceEvent(value, '{"order_id":7,"line":2}')));
    assert.equal(composite.subject, '{"order_id":7,"line":2}');
    // A key that is not a JSON row (a plain string key) leaves the row's own id as the subject.
    assert.equal(eventOf(normaliseDebezium(kafkaSourceEvent(value, 'not json'))).subject, '1');
    // Configured key columns win over the Kafka key.
    const configured = normaliseDebezium(kafkaSourceEvent(value, '{"id":1}'), {
      keyColumns: () => ['email'],
    });
    assert.equal(eventOf(configured).subject, 'annek@noanswer.org');
  });

  it('says what is missing when the data is neither shape', () => {
    const refused = (input: unknown, message: RegExp) =>
      assert.throws(
        () => normaliseDebezium(input),
        (err: unknown) =>
          err instanceof HeraldError &&
          err.code === 'REQUEST_INVALID' &&
          /no "iodebeziumop" extension/.test(err.message) &&
          message.test(err.message),
      );
    refused(kafkaSourceEvent({ msg: 'This is a test!' }), /neither "op" nor "source"/);
    refused(kafkaSourceEvent(read('postgresql/key.doc-form.with-schema.json')), /neither/);
    refused(kafkaSourceEvent({ op: 'c', source: { connector: 'postgresql' }, after: {} }), /source.name/);
    refused(kafkaSourceEvent('a string'), /expected a JSON object, got string/);
    assert.throws(
      () => normaliseDebezium(kafkaSourceEvent(kafkaSourceEvent({}))),
      /data is itself a CloudEvent/,
    );
  });
});

describe('Kafka-bridged normalisation properties', () => {
  const scalar = fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null));
  const row = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), scalar, { maxKeys: 5 });
  const change = fc
    .record({
      op: fc.constantFrom('c', 'u', 'd', 'r'),
      id: fc.integer({ min: 1 }),
      before: row,
      after: row,
      table: fc.stringMatching(/^[a-z_]{1,10}$/),
      lsn: fc.integer({ min: 0 }),
      tsMs: fc.integer({ min: 1, max: 4_000_000_000_000 }),
    })
    .map(({ op, id, before, after, table, lsn, tsMs }) => ({
      before: op === 'c' || op === 'r' ? null : { ...before, id },
      after: op === 'd' ? null : { ...after, id },
      source: {
        connector: 'postgresql',
        name: 'shop',
        db: 'shop',
        schema: 'public',
        table,
        lsn,
        ts_ms: tsMs,
      },
      op,
      ts_ms: tsMs + 3,
    }));
  const wrap = (value: unknown) => ({ schema: { type: 'struct', optional: false }, payload: value });

  it('with or without the envelope, any offset or key: the same event as the value posted bare', () => {
    fc.assert(
      fc.property(change, fc.boolean(), fc.nat(), (value, wrapped, offset) => {
        const key = JSON.stringify(wrapped ? wrap({ id: value.after?.id ?? value.before?.id }) : { id: 1 });
        const bridged = normaliseDebezium(kafkaSourceEvent(wrapped ? wrap(value) : value, key, offset));
        const plain = normaliseDebezium(value);
        if (wrapped) assert.deepEqual(bridged, plain);
        const event = eventOf(bridged);
        assert.equal(event.iodebeziumop, value.op);
        assert.equal(event.iodebeziumtable, value.source.table);
        assert.equal(event.id, eventOf(plain).id, 'a change keeps its id whichever way it came');
      }),
    );
  });

  const required = ['op', 'source', 'source.connector', 'source.name', 'row'] as const;
  it('a value missing a required field is refused naming it, never a crash', () => {
    fc.assert(
      fc.property(change, fc.constantFrom(...required), fc.boolean(), (value, missing, wrapped) => {
        const broken = structuredClone(value) as Record<string, unknown>;
        const source = broken.source as Record<string, unknown>;
        if (missing === 'op') delete broken.op;
        else if (missing === 'source') delete broken.source;
        else if (missing === 'source.connector') delete source.connector;
        else if (missing === 'source.name') delete source.name;
        else delete broken[value.op === 'd' ? 'before' : 'after'];
        const named =
          missing === 'row'
            ? new RegExp(`needs "${value.op === 'd' ? 'before' : 'after'}"`)
            : new RegExp(missing.replace('.', '\\.'));
        assert.throws(
          () => normaliseDebezium(kafkaSourceEvent(wrapped ? wrap(broken) : broken)),
          (err: unknown) =>
            err instanceof HeraldError && err.code === 'REQUEST_INVALID' && named.test(err.message),
        );
      }),
    );
  });

  it('any JSON as the data is an event, ignored, or a REQUEST_INVALID error', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), fc.option(fc.string(), { nil: undefined }), (data, key) => {
        try {
          const result = normaliseDebezium(kafkaSourceEvent(data, key));
          if (result.kind === 'event') eventOf(result);
        } catch (err) {
          assert.ok(err instanceof HeraldError && err.code === 'REQUEST_INVALID', String(err));
        }
      }),
      { numRuns: 500 },
    );
  });
});
