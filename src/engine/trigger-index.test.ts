import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { CloudEvent } from '../events/types.js';
import { builtInDialects, compileFilter, type FilterEvaluationError, matchAll } from '../filters/index.js';
import { sqlDialect } from '../filters/sql.js';
import type { Matcher } from '../filters/types.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import type { CompiledTrigger } from './model.js';
import { TriggerIndex } from './trigger-index.js';

const dialects = [...builtInDialects, sqlDialect];

function trigger(name: string, filter: unknown): CompiledTrigger {
  const matcher =
    filter === undefined ? matchAll : compileFilter(filter, ['triggers', name, 'filter'], dialects);
  return { name, matcher, actions: [], policy: { maxAttempts: 1, backoff: DEFAULT_BACKOFF } };
}

/** What routing takes from evaluating `triggers` in turn: the names matched and the errors raised. */
function verdicts(triggers: readonly CompiledTrigger[], event: CloudEvent) {
  const matched: string[] = [];
  const errors: (FilterEvaluationError & { trigger: string })[] = [];
  for (const t of triggers) {
    const raised: FilterEvaluationError[] = [];
    const ok = t.matcher(event, raised);
    for (const e of raised) errors.push({ trigger: t.name, ...e });
    if (ok && raised.length === 0) matched.push(t.name);
  }
  return { matched, errors };
}

const event = (extra: Record<string, unknown>): CloudEvent => ({
  specversion: '1.0',
  id: 'e-1',
  source: '/s',
  type: 'notification.created',
  ...extra,
});

// Small vocabularies, so that random filters and events often agree and often differ. A sender
// may name an extension after what every object inherits (`constructor`): an event without it
// still holds something there, which is not a string.
const attribute = fc.constantFrom('type', 'subject', 'source', 'ext', 'absent', 'constructor');
const value = fc.constantFrom('a', 'b', 'c', '5');

const sqlOperand = fc.oneof(
  fc.tuple(attribute, value).map(([a, v]) => `${a} = '${v}'`),
  fc.tuple(attribute, value).map(([a, v]) => `'${v}' = ${a}`),
  fc
    .tuple(attribute, fc.uniqueArray(value, { minLength: 1, maxLength: 3 }))
    .map(([a, vs]) => `${a} IN (${vs.map((v) => `'${v}'`).join(', ')})`),
  fc.tuple(attribute, value).map(([a, v]) => `${a} NOT IN ('${v}')`),
  fc.tuple(attribute, value).map(([a, v]) => `${a} <> '${v}'`),
  attribute.map((a) => `${a} = 5`),
  attribute.map((a) => `INT(${a}) > 1`),
  attribute.map((a) => `${a} LIKE 'a%'`),
  attribute.map((a) => `EXISTS ${a}`),
  fc.tuple(attribute, value).map(([a, v]) => `NOT (${a} = '${v}')`),
);
const sqlFilter = fc
  .tuple(
    fc.array(fc.tuple(sqlOperand, fc.constantFrom(' AND ', ' AND ', ' OR ', ' XOR ')), {
      minLength: 0,
      maxLength: 3,
    }),
    sqlOperand,
    fc.boolean(),
  )
  .map(([init, last, grouped]) => {
    const text = init.map(([o, join]) => o + join).join('') + last;
    return { sql: grouped && init.length > 0 ? `(${text})` : text };
  });
const basicFilter = fc.oneof(
  fc
    .dictionary(attribute, value, {
      minKeys: 1,
      maxKeys: 2,
    })
    .map((m) => ({ exact: m })),
  fc.tuple(attribute, value).map(([a, v]) => ({ prefix: { [a]: v } })),
);
const filter: fc.Arbitrary<unknown> = fc.letrec<{ filter: unknown }>((tie) => ({
  filter: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    sqlFilter,
    basicFilter,
    fc.constant(undefined),
    fc
      .array(tie('filter'), { minLength: 1, maxLength: 3 })
      .map((fs) => ({ all: fs.map((f) => f ?? { exact: { type: 'a' } }) })),
    fc
      .array(tie('filter'), { minLength: 1, maxLength: 3 })
      .map((fs) => ({ any: fs.map((f) => f ?? { exact: { type: 'a' } }) })),
  ),
})).filter;

const randomEvent = fc
  .record({
    type: value,
    source: value,
    subject: fc.option(value, { nil: undefined }),
    ext: fc.oneof(value, fc.integer({ min: 0, max: 9 }), fc.boolean(), fc.constant(undefined)),
    inherited: fc.option(value, { nil: undefined }),
  })
  .map(({ subject, ext, inherited, ...rest }) =>
    event({
      ...rest,
      ...(subject === undefined ? {} : { subject }),
      ...(ext === undefined ? {} : { ext }),
      ...(inherited === undefined ? {} : { constructor: inherited }),
    }),
  );

describe('trigger index', () => {
  it('routes every event exactly as evaluating every trigger would: the same matches and errors, in order', () => {
    fc.assert(
      fc.property(
        fc.array(filter, { minLength: 1, maxLength: 12 }),
        fc.array(randomEvent, { minLength: 1, maxLength: 8 }),
        (filters, events) => {
          const triggers = filters.map((f, i) => trigger(`t${i}`, f));
          const index = new TriggerIndex(triggers);
          for (const e of events) assert.deepEqual(verdicts(index.candidates(e), e), verdicts(triggers, e));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('evaluates one of 100 triggers told apart by subject, and all of them for an event without one', () => {
    let evaluated = 0;
    const counted = (t: CompiledTrigger): CompiledTrigger => {
      const inner = t.matcher;
      const matcher: Matcher = Object.assign(
        (e: CloudEvent, errors: FilterEvaluationError[]) => {
          evaluated++;
          return inner(e, errors);
        },
        { requires: inner.requires },
      );
      return { ...t, matcher };
    };
    const triggers = Array.from({ length: 100 }, (_, i) =>
      counted(trigger(`topic-${i}`, { sql: `type = 'notification.created' AND subject = 'topic-${i}'` })),
    );
    const index = new TriggerIndex(triggers);

    assert.deepEqual(
      verdicts(index.candidates(event({ subject: 'topic-42' })), event({ subject: 'topic-42' })),
      {
        matched: ['topic-42'],
        errors: [],
      },
    );
    assert.equal(evaluated, 1);

    evaluated = 0;
    const elsewhere = event({ subject: 'elsewhere' });
    assert.deepEqual(verdicts(index.candidates(elsewhere), elsewhere), { matched: [], errors: [] });
    assert.equal(evaluated, 0);

    // Without a subject each filter raises its missing-attribute error, as it always did.
    evaluated = 0;
    const { matched, errors } = verdicts(index.candidates(event({})), event({}));
    assert.deepEqual(matched, []);
    assert.equal(errors.length, 100);
    assert.ok(errors.every((e) => e.kind === 'missingAttribute'));
    assert.equal(evaluated, 100);
  });

  it('keeps the configured order when indexed and unindexed triggers both match', () => {
    const triggers = [
      trigger('first', { exact: { type: 'notification.created' } }),
      trigger('everything', undefined),
      trigger('by-subject', { sql: "subject IN ('a', 'b') AND type LIKE 'notification.%'" }),
      trigger('by-source', [{ exact: { source: '/s' } }, { sql: "subject = 'a'" }]),
      trigger('prefix', { prefix: { type: 'notification.' } }),
    ];
    const index = new TriggerIndex(triggers);
    const e = event({ subject: 'a' });
    assert.deepEqual(
      index.candidates(e).map((t) => t.name),
      ['first', 'everything', 'by-subject', 'by-source', 'prefix'],
    );
    assert.deepEqual(
      index.candidates(event({ type: 'other', source: '/elsewhere', subject: 'c' })).map((t) => t.name),
      ['everything', 'prefix'],
    );
  });
});
