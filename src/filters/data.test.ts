import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { CloudEvent } from '../events/types.js';
import { dataDialect, valuesAt } from './data.js';
import { compileFilter } from './index.js';
import { FilterCompileError, type FilterEvaluationError } from './types.js';

const event = (data: unknown): CloudEvent => ({ specversion: '1.0', id: '1', source: 's', type: 't', data });
const compile = (value: unknown) => compileFilter({ data: value }, ['filter'], [dataDialect]);
const matches = (value: unknown, data: unknown) => compile(value)(event(data), [] as FilterEvaluationError[]);

describe('data filter dialect', () => {
  const ci = {
    type: 'completed',
    result: {
      results: [
        { name: 'lint', status: 'success' },
        { name: 'e2e', status: 'failure' },
      ],
    },
  };

  it('matches a value at a path, or any element of an array with #', () => {
    assert.equal(matches({ path: 'type', value: 'completed' }, ci), true);
    assert.equal(matches({ path: 'type', value: 'running' }, ci), false);
    assert.equal(matches({ path: 'result.results.#.status', value: ['failure', 'error'] }, ci), true);
    assert.equal(matches({ path: 'result.results.0.status', value: 'failure' }, ci), false);
    assert.equal(matches({ path: 'result.results.1.status', value: 'failure' }, ci), true);
  });

  it('fans out over an array of half a million elements without overflowing the stack', () => {
    const results = Array.from({ length: 500_000 }, (_, i) => ({ status: i === 499_999 ? 'failure' : 'ok' }));
    assert.equal(matches({ path: 'results.#.status', value: 'failure' }, { results }), true);
    assert.equal(matches({ path: 'results.#.status', value: 'error' }, { results }), false);
  });

  it('an absent path, non-JSON data or an object at the path does not match', () => {
    assert.equal(matches({ path: 'nope.deeper', value: 'x' }, ci), false);
    assert.equal(matches({ path: 'type', value: 'x' }, 'plain text'), false);
    assert.equal(matches({ path: 'result', value: 'x' }, ci), false);
  });

  it('compares types strictly: "1" is not 1', () => {
    assert.equal(matches({ path: 'n', value: 1 }, { n: '1' }), false);
    assert.equal(matches({ path: 'n', value: 1 }, { n: 1 }), true);
  });

  it('a bad block is a compile error naming the key', () => {
    assert.throws(
      () => compile({ path: 'a' }),
      (e: unknown) =>
        e instanceof FilterCompileError &&
        e.path.join('.') === 'filter.data.value' &&
        /needs a `value`/.test(e.message),
    );
    assert.throws(() => compile({ path: 'a', value: 1, extra: 2 }), /unknown key extra/);
  });

  it('property: a scalar placed at any path is found there, and nothing else is', () => {
    const key = fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/);
    const scalar = fc.oneof(fc.string(), fc.integer(), fc.boolean());
    fc.assert(
      fc.property(fc.array(key, { minLength: 1, maxLength: 5 }), scalar, scalar, (segments, value, other) => {
        const data: Record<string, unknown> = {};
        let cursor = data;
        segments.forEach((s, i) => {
          if (i === segments.length - 1) cursor[s] = value;
          else {
            const inner: Record<string, unknown> = {};
            cursor[s] = inner;
            cursor = inner;
          }
        });
        assert.deepEqual(valuesAt(data, segments), [value]);
        assert.equal(matches({ path: segments.join('.'), value }, data), true);
        if (other !== value) assert.equal(matches({ path: segments.join('.'), value: other }, data), false);
      }),
    );
  });

  it('property: # over an array finds every element', () => {
    fc.assert(
      fc.property(fc.array(fc.integer()), (items) => {
        assert.deepEqual(valuesAt({ list: items.map((n) => ({ n })) }, ['list', '#', 'n']), items);
      }),
    );
  });
});
