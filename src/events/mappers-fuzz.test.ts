import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { eventMapSchema } from '../sources/map.js';
import { natsMessageToEvents } from '../sources/nats/index.js';
import { entryToEvent, pubsubMessageToEvent } from '../sources/redis/index.js';
import { normaliseDebezium } from './debezium.js';
import type { CloudEvent } from './types.js';
import { validateEvent } from './validate.js';

/**
 * Hostile messages for the stream mappers and the Debezium normaliser. A message either becomes
 * valid events or is refused with an error that says what is wrong with it — never a TypeError
 * or a stack overflow from inside, which a source could not tell from a bug — and no call holds
 * the event loop for 100 ms.
 */
const RUNS = 300;

const map = eventMapSchema('body', 'a UUID').parse({
  type: 'mapped.{{ body.kind }}',
  subject: '{{ body.subject }}{{ fields.topic }}',
  id: '{{ body.id }}',
});

const nasty = fc.oneof(
  fc.constantFrom('', '\u0000', '\ud800', '__proto__', '%', 'x'.repeat(10_000), '1e309', 'true'),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
const value: fc.Arbitrary<unknown> = fc.oneof(nasty, fc.jsonValue({ maxDepth: 4 }));
const deep = fc
  .tuple(fc.integer({ min: 1, max: 50_000 }), fc.constantFrom('[', '{"kind":'))
  .map(([n, open]) => `${open.repeat(n)}0${(open === '[' ? ']' : '}').repeat(n)}`);
const object = fc.dictionary(
  fc.oneof(
    fc.constantFrom('specversion', 'id', 'source', 'type', 'subject', 'data', 'data_base64', 'kind', 'time'),
    fc.string({ maxLength: 6 }),
  ),
  value,
  { maxKeys: 10 },
);
const payloadText = fc.oneof(
  object.map((o) => JSON.stringify(o)),
  object.map((o) => JSON.stringify({ specversion: '1.0', ...o })),
  fc.array(object, { maxLength: 4 }).map((a) => JSON.stringify(a)),
  deep,
  deep.map((d) => `{"specversion":"1.0","id":"1","source":"s","type":"t","data":${d}}`),
  fc.string({ unit: 'binary', maxLength: 100 }),
);
const headers = fc.dictionary(
  fc.constantFrom(
    'content-type',
    'ce-specversion',
    'ce-id',
    'ce-source',
    'ce-type',
    'ce-data',
    'ce-x',
    'Nats-Msg-Id',
  ),
  fc.oneof(
    fc.constantFrom(
      'application/cloudevents+json',
      'application/cloudevents-batch+json',
      'application/json',
      'text/plain',
      '1.0',
    ),
    fc.string({ maxLength: 20 }),
  ),
);

/** Runs `fn` and checks its outcome: valid events, or an error that names the problem. */
function expectEventsOrRefusal(fn: () => CloudEvent[]): void {
  // CPU time, not wall time: the work one message costs, whatever else shares the machine.
  const started = process.cpuUsage();
  let events: CloudEvent[] = [];
  try {
    events = fn();
  } catch (err) {
    assert.ok(err instanceof Error, `threw ${String(err)}`);
    assert.ok(
      !(err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError),
      `an internal ${err.name}: ${err.message}`,
    );
    assert.ok(err.message.length > 0);
  }
  for (const event of events) validateEvent(JSON.parse(JSON.stringify(event)));
  const used = process.cpuUsage(started);
  const elapsed = (used.user + used.system) / 1000;
  assert.ok(elapsed < 100, `took ${elapsed.toFixed(0)} ms of CPU`);
}

describe('fuzzing the stream mappers and the Debezium normaliser', () => {
  it('NATS: a message becomes events or is refused with a reason', () => {
    fc.assert(
      fc.property(payloadText, headers, fc.boolean(), (text, hdrs, withMap) => {
        expectEventsOrRefusal(() =>
          natsMessageToEvents(
            { subject: 'orders.new', data: Buffer.from(text), headers: hdrs },
            { sourceName: 'fuzz', map: withMap ? map : undefined, defaultId: () => 'id' },
          ),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('Redis streams and Pub/Sub: an entry becomes an event or is refused with a reason', () => {
    const fields = fc.dictionary(
      fc.oneof(fc.constantFrom('event', 'cloudevent', 'topic', 'kind'), fc.string({ maxLength: 6 })),
      fc.oneof(payloadText, fc.string({ maxLength: 30 })),
      { maxKeys: 5 },
    );
    fc.assert(
      fc.property(fields, payloadText, fc.boolean(), (entryFields, text, withMap) => {
        const options = { sourceName: 'fuzz', map: withMap ? map : undefined };
        expectEventsOrRefusal(() => [entryToEvent({ key: 'k', id: '1-0', fields: entryFields }, options)]);
        expectEventsOrRefusal(() => [pubsubMessageToEvent({ channel: 'c', text }, options)]);
      }),
      { numRuns: RUNS },
    );
  });

  it('Debezium: a change event is normalised, ignored or refused with a reason', () => {
    const row = fc.oneof(fc.dictionary(fc.string({ maxLength: 5 }), value), value);
    const envelope = fc.record(
      {
        op: fc.oneof(fc.constantFrom('c', 'u', 'd', 'r', 't', 'm'), value),
        source: fc.oneof(
          fc.record({ connector: value, name: value, schema: value, table: value, ts_ms: value, lsn: value }),
          value,
        ),
        before: row,
        after: row,
        ts_ms: value,
        specversion: fc.oneof(fc.constant(undefined), fc.constant('1.0'), value),
        iodebeziumop: value,
        data: value,
        datacontenttype: value,
      },
      { requiredKeys: [] },
    );
    const input = fc.oneof(
      envelope,
      envelope.map((e) => ({ schema: {}, payload: e })),
      value,
      deep.map((d) => ({
        op: 'c',
        source: { connector: 'pg', name: 'n' },
        after: { id: 1, deep: JSON.parse(d) },
      })),
    );
    fc.assert(
      fc.property(input, (message) => {
        expectEventsOrRefusal(() => {
          const result = normaliseDebezium(message, { keyColumns: () => ['id'] });
          return result.kind === 'event' ? [validateEvent(result.event)] : [];
        });
      }),
      { numRuns: RUNS },
    );
  });
});
