import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { CloudEvent } from '../events/types.js';
import { compileFilter, FilterCompileError } from './index.js';
import type { FilterEvaluationError } from './types.js';

const event: CloudEvent = {
  specversion: '1.0',
  id: '1',
  source: 'https://shop.example/orders',
  type: 'com.example.order.created',
  subject: 'orders/42',
  priority: 3,
  urgent: true,
};

const matches = (filter: unknown, e: CloudEvent = event) => {
  const errors: FilterEvaluationError[] = [];
  return compileFilter(filter, ['filter'])(e, errors);
};

describe('Subscriptions API filter dialects', () => {
  it('exact matches whole values of every listed attribute', () => {
    assert.equal(matches({ exact: { type: 'com.example.order.created' } }), true);
    assert.equal(matches({ exact: { type: 'com.example.order' } }), false);
    assert.equal(matches({ exact: { type: 'com.example.order.created', subject: 'orders/41' } }), false);
    assert.equal(
      matches({ exact: { priority: '3', urgent: 'true' } }),
      true,
      'extensions compare as their string form',
    );
    assert.equal(matches({ exact: { missing: 'x' } }), false);
  });

  it('prefix and suffix', () => {
    assert.equal(matches({ prefix: { type: 'com.example.' } }), true);
    assert.equal(matches({ prefix: { type: 'org.' } }), false);
    assert.equal(matches({ suffix: { source: '/orders' } }), true);
    assert.equal(matches({ suffix: { subject: '/43' } }), false);
  });

  it('all, any and not nest', () => {
    assert.equal(matches({ all: [{ prefix: { type: 'com.' } }, { suffix: { subject: '42' } }] }), true);
    assert.equal(matches({ all: [{ prefix: { type: 'com.' } }, { suffix: { subject: '43' } }] }), false);
    assert.equal(matches({ any: [{ exact: { type: 'nope' } }, { suffix: { subject: '42' } }] }), true);
    assert.equal(matches({ any: [{ exact: { type: 'nope' } }, { exact: { type: 'no' } }] }), false);
    assert.equal(matches({ not: { exact: { type: 'nope' } } }), true);
    assert.equal(matches({ not: { any: [{ exact: { subject: 'orders/42' } }] } }), false);
    assert.equal(
      matches([{ prefix: { type: 'com.' } }, { exact: { subject: 'orders/42' } }]),
      true,
      'a list means all',
    );
  });

  it('rejects malformed filters with the path of the problem', () => {
    const cases: [unknown, string][] = [
      [{ regex: { type: 'x' } }, 'filter.regex'],
      [{ exact: { type: 'x' }, prefix: { type: 'y' } }, 'filter'],
      [{ exact: {} }, 'filter.exact'],
      [{ exact: { Type: 'x' } }, 'filter.exact.Type'],
      [{ all: [] }, 'filter.all'],
      [{ any: [{ exact: { type: 'x' } }, { nope: 1 }] }, 'filter.any.1.nope'],
      ['type = x', 'filter'],
    ];
    for (const [filter, path] of cases) {
      assert.throws(
        () => compileFilter(filter, ['filter']),
        (err: unknown) => err instanceof FilterCompileError && err.path.join('.') === path,
        `${JSON.stringify(filter)} → ${path}`,
      );
    }
  });

  it('not(f) is the negation of f and all/any follow boolean logic (property)', () => {
    const attr = fc.constantFrom('type', 'subject', 'source');
    const leaf = fc.record({
      dialect: fc.constantFrom('exact', 'prefix', 'suffix'),
      attr,
      value: fc.string({ maxLength: 4 }),
    });
    fc.assert(
      fc.property(
        leaf,
        leaf,
        fc.record({ type: fc.string(), subject: fc.string(), source: fc.string({ minLength: 1 }) }),
        (a, b, attrs) => {
          const e: CloudEvent = { specversion: '1.0', id: 'x', ...attrs };
          const fa = { [a.dialect]: { [a.attr]: a.value } };
          const fb = { [b.dialect]: { [b.attr]: b.value } };
          const ma = matches(fa, e);
          const mb = matches(fb, e);
          assert.equal(matches({ not: fa }, e), !ma);
          assert.equal(matches({ all: [fa, fb] }, e), ma && mb);
          assert.equal(matches({ any: [fa, fb] }, e), ma || mb);
        },
      ),
    );
  });
});
