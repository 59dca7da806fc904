import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { newEventId } from './ids.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** Any millisecond a 48-bit field holds. */
const millisecond = fc.integer({ min: 0, max: 2 ** 48 - 1 });

describe('newEventId', () => {
  it('is a UUID version 7 whose first 48 bits are the time given', () => {
    fc.assert(
      fc.property(millisecond, (now) => {
        const id = newEventId(now);
        assert.match(id, UUID_V7);
        assert.equal(Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16), now);
      }),
    );
  });

  it('sorts as text in the order of the milliseconds it was made in', () => {
    fc.assert(
      fc.property(millisecond, millisecond, (a, b) => {
        fc.pre(a !== b);
        assert.equal(newEventId(a) < newEventId(b), a < b);
      }),
    );
  });

  it('differs for ids made in the same millisecond', () => {
    const now = Date.now();
    const ids = new Set(Array.from({ length: 10_000 }, () => newEventId(now)));
    assert.equal(ids.size, 10_000);
  });
});
