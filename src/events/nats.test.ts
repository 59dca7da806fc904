import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EventValidationError } from '../errors.js';
import {
  NotACloudEventError,
  parseNatsMessage,
  toBinaryNats,
  toStructuredNats,
  validateEvent,
} from './index.js';
import type { CloudEvent } from './types.js';

const bytes = (s: string) => Buffer.from(s, 'utf8');
const minimal = { specversion: '1.0', id: '1', source: '/src', type: 'com.example.t' };

describe('NATS binding', () => {
  it('structured mode, by content type or by a payload carrying specversion', () => {
    const payload = bytes(JSON.stringify({ ...minimal, data: { a: 1 } }));
    const byType = parseNatsMessage({ headers: { 'Content-Type': 'application/cloudevents+json' }, payload });
    assert.equal(byType.mode, 'structured');
    assert.deepEqual(byType.events, [{ ...minimal, data: { a: 1 } }]);
    assert.deepEqual(parseNatsMessage({ headers: {}, payload }).events, byType.events);
  });

  it('binary mode: ce- headers in any case, content-type becomes datacontenttype', () => {
    const { mode, events } = parseNatsMessage({
      headers: {
        'ce-specversion': '1.0',
        'CE-ID': '7',
        'ce-source': 'shop',
        'ce-type': 't',
        'ce-tenant': 'acme',
      },
      payload: bytes('hello'),
    });
    assert.equal(mode, 'binary');
    assert.deepEqual(events, [
      { specversion: '1.0', id: '7', source: 'shop', type: 't', tenant: 'acme', data_base64: 'aGVsbG8=' },
    ]);
    const text = parseNatsMessage({
      headers: {
        'ce-specversion': '1.0',
        'ce-id': '8',
        'ce-source': 's',
        'ce-type': 't',
        'content-type': 'text/plain',
      },
      payload: bytes('100% done'),
    }).events[0]!;
    assert.equal(text.data, '100% done', 'no percent-decoding over NATS');
    assert.equal(text.datacontenttype, 'text/plain');
  });

  it('batch mode', () => {
    const { events } = parseNatsMessage({
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      payload: bytes(JSON.stringify([minimal, { ...minimal, id: '2' }])),
    });
    assert.deepEqual(
      events.map((e) => e.id),
      ['1', '2'],
    );
  });

  it('says what is wrong: not a CloudEvent, or which attribute is invalid', () => {
    assert.throws(() => parseNatsMessage({ headers: {}, payload: bytes('{"a":1}') }), NotACloudEventError);
    assert.throws(() => parseNatsMessage({ headers: {}, payload: bytes('garbage') }), NotACloudEventError);
    assert.throws(
      () => parseNatsMessage({ headers: { 'content-type': 'text/plain' }, payload: bytes('x') }),
      NotACloudEventError,
    );
    assert.throws(
      () =>
        parseNatsMessage({ headers: {}, payload: bytes(JSON.stringify({ ...minimal, type: undefined })) }),
      (err: unknown) => err instanceof EventValidationError && err.attribute === 'type',
    );
    assert.throws(
      () =>
        parseNatsMessage({
          headers: {
            'ce-specversion': '1.0',
            'ce-id': '1',
            'ce-source': 's',
            'ce-type': 't',
            'content-type': 'application/json',
          },
          payload: bytes('{nope'),
        }),
      (err: unknown) => err instanceof EventValidationError && err.attribute === 'data',
    );
  });

  it('structured and binary serialisations parse back to the same event (property)', () => {
    fc.assert(
      fc.property(arbitraryEvent(), (input) => {
        const event = validateEvent(input);
        assert.deepEqual(parseNatsMessage(toStructuredNats(event)).events[0], event);
        const back = parseNatsMessage(toBinaryNats(event)).events[0]!;
        const expected: Record<string, unknown> = { ...event };
        for (const [k, v] of Object.entries(expected)) {
          if (!['data', 'data_base64'].includes(k) && typeof v !== 'string') expected[k] = String(v);
        }
        if (expected.data !== undefined && expected.datacontenttype === undefined)
          expected.datacontenttype = 'application/json';
        assert.deepEqual(back, expected);
      }),
    );
  });
});

function arbitraryEvent(): fc.Arbitrary<CloudEvent> {
  const text = fc.string({ minLength: 1, maxLength: 12 });
  return fc
    .record(
      {
        id: text,
        source: fc.constantFrom('/a', 'https://example.com/x', 'urn:x:y', 'shop'),
        type: text,
        subject: text,
        time: fc
          .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
          .map((d) => d.toISOString()),
        datacontenttype: fc.constantFrom('application/json', 'text/plain; charset=utf-8'),
        data: fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown),
        data_base64: fc
          .uint8Array({ minLength: 1, maxLength: 16 })
          .map((b) => Buffer.from(b).toString('base64')),
        extone: fc.oneof(fc.string(), fc.boolean(), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
      },
      { requiredKeys: ['id', 'source', 'type'] },
    )
    .map((e) => ({ specversion: '1.0' as const, ...e }))
    .filter((e) => !(e.data !== undefined && e.data_base64 !== undefined))
    .filter((e) => !(e.data_base64 !== undefined && e.datacontenttype !== undefined))
    .filter((e) => !(e.datacontenttype?.startsWith('text/') && typeof e.data !== 'string'));
}
