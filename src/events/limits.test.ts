import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EventValidationError } from '../errors.js';
import { parseHttpEvents } from './http.js';
import { checkJsonTextDepth, checkValueDepth, DEFAULT_EVENT_LIMITS, type EventLimits } from './limits.js';
import { parseNatsMessage } from './nats.js';
import { validateEvent } from './validate.js';

const nested = (levels: number, inner = '1') => `${'['.repeat(levels)}${inner}${']'.repeat(levels)}`;

function limitError(fn: () => unknown): EventValidationError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof EventValidationError, String(err));
    return err;
  }
  assert.fail('expected a limit error');
}

const base = { specversion: '1.0', id: '1', source: 'limits', type: 't' };
const structured = (event: unknown) => ({
  headers: { 'content-type': 'application/cloudevents+json' },
  body: Buffer.from(typeof event === 'string' ? event : JSON.stringify(event)),
});

describe('JSON nesting depth', () => {
  it('refuses 20,000 nested arrays in data before parsing, naming the path', () => {
    const body = `{"specversion":"1.0","id":"1","source":"s","type":"t","data":${nested(20_000)}}`;
    const err = limitError(() => parseHttpEvents(structured(body)));
    assert.equal(err.code, 'NESTING_TOO_DEEP');
    assert.equal(err.status, 400);
    assert.equal(err.attribute, 'data');
    assert.equal(err.limit, 64);
    assert.equal(err.path, 'data[0][0][0][0][0][0][0]…');
    assert.match(err.message, /nested deeper than 64 levels at data\[0\]/);
  });

  it('accepts exactly the limit and names keys and indexes on the way to the deep spot', () => {
    // The event is level 1, so data may nest 63 levels.
    const ok = `{"specversion":"1.0","id":"1","source":"s","type":"t","data":${nested(63)}}`;
    assert.equal(parseHttpEvents(structured(ok)).events.length, 1);
    const body = JSON.stringify({ ...base, data: { list: [0, { 'a key': [[[]]] }] } });
    const err = limitError(() => checkJsonTextDepth(body, 5));
    assert.equal(err.path, 'data.list[1]["a key"][0]');
  });

  it('counts brackets inside strings as text', () => {
    const body = JSON.stringify({ ...base, data: { s: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{' } });
    assert.doesNotThrow(() => checkJsonTextDepth(body, 3));
  });

  it('checks the text and the parsed value alike: same verdict, same path', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 1, max: 8 }), (value, max) => {
        const fromText = (() => {
          try {
            checkJsonTextDepth(JSON.stringify(value), max, 'data');
            return null;
          } catch (err) {
            return (err as EventValidationError).path;
          }
        })();
        const fromValue = (() => {
          try {
            checkValueDepth(value, max, 'data');
            return null;
          } catch (err) {
            return (err as EventValidationError).path;
          }
        })();
        assert.equal(fromText, fromValue);
      }),
      { numRuns: 500 },
    );
  });

  it('applies to data that arrives already parsed (mapped messages, rows), without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const err = limitError(() => validateEvent({ ...base, data: deep }));
    assert.equal(err.code, 'NESTING_TOO_DEEP');
    assert.equal(err.attribute, 'data');
  });

  it('applies to binary mode, where the body is the data, and to batches', () => {
    const binary = limitError(() =>
      parseHttpEvents({
        headers: {
          'ce-specversion': '1.0',
          'ce-id': '1',
          'ce-source': 's',
          'ce-type': 't',
          'content-type': 'application/json',
        },
        body: Buffer.from(nested(64)),
      }),
    );
    assert.equal(binary.path?.startsWith('data[0]'), true);
    const batch = limitError(() =>
      parseHttpEvents({
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: Buffer.from(`[${JSON.stringify(base)},{"data":${nested(100)}}]`),
      }),
    );
    assert.equal(batch.code, 'NESTING_TOO_DEEP');
    assert.equal(batch.path?.startsWith('[1].data[0]'), true);
  });

  it('applies to NATS payloads', () => {
    const err = limitError(() =>
      parseNatsMessage({
        headers: { 'content-type': 'application/cloudevents+json' },
        payload: Buffer.from(`{"specversion":"1.0","id":"1","source":"s","type":"t","data":${nested(500)}}`),
      }),
    );
    assert.equal(err.code, 'NESTING_TOO_DEEP');
  });
});

describe('attribute, extension and batch limits', () => {
  it('an attribute longer than 4 KB is 413 naming it; data is not an attribute', () => {
    for (const name of ['id', 'source', 'type', 'subject', 'myext']) {
      const err = limitError(() => validateEvent({ ...base, [name]: 'x'.repeat(4097) }));
      assert.equal(err.code, 'ATTRIBUTE_TOO_LONG', name);
      assert.equal(err.status, 413);
      assert.equal(err.attribute, name);
    }
    // Measured in UTF-8 bytes: 1,366 three-byte characters are 4,098 bytes.
    assert.equal(
      limitError(() => validateEvent({ ...base, subject: '€'.repeat(1366) })).attribute,
      'subject',
    );
    assert.doesNotThrow(() =>
      validateEvent({ ...base, subject: 'x'.repeat(4096), data: 'x'.repeat(100_000) }),
    );
  });

  it('more than 64 extensions is 413', () => {
    const extensions = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`ext${i}`, 'v']));
    const err = limitError(() => validateEvent({ ...base, ...extensions }));
    assert.equal(err.code, 'TOO_MANY_EXTENSIONS');
    assert.equal(err.attribute, 'ext64');
    const { ext64: _, ...allowed } = extensions;
    assert.doesNotThrow(() => validateEvent({ ...base, ...allowed }));
  });

  it('a batch of more than 1,000 events is refused whole', () => {
    const events = Array.from({ length: 1001 }, (_, i) => ({ ...base, id: String(i) }));
    const err = limitError(() =>
      parseHttpEvents({
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: Buffer.from(JSON.stringify(events)),
      }),
    );
    assert.equal(err.code, 'BATCH_TOO_LARGE');
    assert.equal(err.status, 413);
  });

  it('takes the limits it is given', () => {
    const limits: EventLimits = { ...DEFAULT_EVENT_LIMITS, attributeLength: 100, extensions: 1 };
    assert.equal(
      limitError(() => validateEvent({ ...base, type: 'x'.repeat(101) }, '', limits)).attribute,
      'type',
    );
    assert.equal(limitError(() => validateEvent({ ...base, a: '1', b: '2' }, '', limits)).attribute, 'b');
    assert.equal(
      limitError(() => validateEvent({ ...base, type: 'x'.repeat(101) }, '[2]', limits)).attribute,
      '[2].type',
    );
  });
});
