import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { CloudEvent } from '../events/types.js';
import { changedDialect } from './changed.js';
import { compileFilter } from './index.js';

const change = (before: unknown, after: unknown): CloudEvent => ({
  specversion: '1.0',
  id: '1',
  source: 's',
  type: 't',
  data: { before, after, op: 'u' },
});
const matcher = (value: unknown) => compileFilter({ changed: value }, ['filter'], [changedDialect]);

describe('changed filter dialect', () => {
  it('matches when a named field differs, not when only others do', () => {
    const m = matcher(['price']);
    assert.equal(m(change({ price: '10.00', name: 'a' }, { price: '12.50', name: 'a' }), []), true);
    assert.equal(m(change({ price: '10.00', name: 'a' }, { price: '10.00', name: 'b' }), []), false);
    assert.equal(
      matcher('meta.colour')(change({ meta: { colour: 'red' } }, { meta: { colour: 'blue' } }), []),
      true,
    );
  });

  it('inserts, deletes and non-change events do not match', () => {
    const m = matcher('price');
    assert.equal(m(change(null, { price: 1 }), []), false);
    assert.equal(m(change({ price: 1 }, null), []), false);
    assert.equal(m({ specversion: '1.0', id: '1', source: 's', type: 't', data: 'text' }, []), false);
  });

  it('a bad value is a compile error', () => {
    assert.throws(() => matcher(42), /expected a field name or a list of field names/);
  });

  it('property: matches exactly when the field’s values differ', () => {
    const value = fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null));
    fc.assert(
      fc.property(value, value, (a, b) => {
        const matched = matcher('f')(change({ f: a, other: 1 }, { f: b, other: 2 }), []);
        assert.equal(matched, JSON.stringify(a) !== JSON.stringify(b));
      }),
    );
  });
});
