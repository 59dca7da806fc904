import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { CloudEvent } from '../events/types.js';
import { changedDialect } from './changed.js';
import { dataDialect } from './data.js';
import { builtInDialects, compileFilter, explainFilter, type FilterClause, matchAll } from './index.js';
import { sqlDialect } from './sql.js';
import type { FilterEvaluationError } from './types.js';

const dialects = [...builtInDialects, sqlDialect, dataDialect, changedDialect];
const event = (extra: Record<string, unknown> = {}): CloudEvent =>
  ({ specversion: '1.0', id: '1', source: '/bot', type: 'notification.created', ...extra }) as CloudEvent;
const explain = (filter: unknown, e: CloudEvent): FilterClause =>
  explainFilter(compileFilter(filter, ['triggers', 't', 'filter'], dialects), e);

describe('filter explanations', () => {
  it('exact: the attribute, what was wanted and what the event had', () => {
    const clause = explain(
      { exact: { type: 'notification.created', subject: 'sales' } },
      event({ subject: 'pricing' }),
    );
    assert.equal(clause.matched, false);
    assert.equal(clause.path, 'exact.subject');
    assert.equal(clause.message, 'exact.subject: wanted "sales", got "pricing"');
  });

  it('prefix and suffix say what the value had to start or end with; a missing attribute is named', () => {
    assert.equal(
      explain({ prefix: { type: 'com.' } }, event()).message,
      'prefix.type: wanted a value starting with "com.", got "notification.created"',
    );
    assert.equal(
      explain({ suffix: { subject: '.json' } }, event()).message,
      'suffix.subject: wanted a value ending with ".json", the event has no subject',
    );
  });

  it('all: its first failing clause; any: every clause; not: the clause that matched', () => {
    const all = explain(
      {
        all: [
          { exact: { type: 'notification.created' } },
          { exact: { subject: 'a' } },
          { exact: { id: 'x' } },
        ],
      },
      event({ subject: 'b' }),
    );
    assert.equal(all.because!.length, 1);
    assert.equal(all.because![0]!.path, 'all[1].exact.subject');
    const any = explain(
      { any: [{ exact: { subject: 'a' } }, { prefix: { type: 'x' } }] },
      event({ subject: 'b' }),
    );
    assert.deepEqual(
      any.because!.map((c) => c.path),
      ['any[0].exact.subject', 'any[1].prefix.type'],
    );
    const not = explain({ not: { exact: { subject: 'b' } } }, event({ subject: 'b' }));
    assert.equal(not.matched, false);
    assert.match(not.message, /^not: the clause inside matched/);
  });

  it('sql: the false sub-expression and its operands', () => {
    const clause = explain(
      { sql: "type = 'notification.created' AND subject = 'sales'" },
      event({ subject: 'pricing' }),
    );
    assert.equal(clause.matched, false);
    assert.equal(clause.message, `sql: subject = 'sales' is false (subject is "pricing")`);
    assert.deepEqual(clause.sql!.because![0]!.operands, [{ expression: 'subject', value: 'pricing' }]);
  });

  it('data and changed say what was found', () => {
    const data = explain(
      { data: { path: 'run.status', value: ['failure', 'error'] } },
      event({ data: { run: { status: 'success' } } }),
    );
    assert.equal(data.message, 'data.run.status: wanted one of ["failure","error"], found "success"');
    const changed = explain(
      { changed: 'price' },
      event({ data: { before: { price: 1 }, after: { price: 1 } } }),
    );
    assert.equal(changed.message, 'changed: price did not change');
  });

  it('no filter matches every event', () => {
    assert.equal(explainFilter(matchAll, event()).message, 'no filter: every event matches');
  });

  it('the verdict is always the matcher’s own', () => {
    const attr = fc.constantFrom('type', 'subject', 'source', 'id');
    const value = fc.constantFrom('a', 'ab', 'b', 'notification.created', '/bot');
    const leaf = fc.oneof(
      fc
        .tuple(fc.constantFrom('exact', 'prefix', 'suffix'), attr, value)
        .map(([d, a, v]) => ({ [d]: { [a]: v } })),
      fc.tuple(attr, value).map(([a, v]) => ({ sql: `${a} = '${v}' OR missing = 1` })),
    );
    const { filter } = fc.letrec((tie) => ({
      filter: fc.oneof(
        { depthSize: 'small' },
        leaf,
        fc.array(tie('filter'), { minLength: 1, maxLength: 3 }).map((l) => ({ all: l })),
        fc.array(tie('filter'), { minLength: 1, maxLength: 3 }).map((l) => ({ any: l })),
        tie('filter').map((f) => ({ not: f })),
      ),
    }));
    const events = fc
      .record({ subject: fc.option(value, { nil: undefined }), id: value })
      .map((x) => event(x));
    fc.assert(
      fc.property(filter, events, (f, e) => {
        const matcher = compileFilter(f, ['filter'], dialects);
        const errors: FilterEvaluationError[] = [];
        const verdict = matcher(e, errors) && errors.length === 0;
        const clause = matcher.explain!(e);
        assert.equal(clause.matched && !clause.errors, verdict, JSON.stringify(f));
        assert.equal(explainFilter(matcher, e).matched, verdict);
      }),
      { numRuns: 1000 },
    );
  });
});
