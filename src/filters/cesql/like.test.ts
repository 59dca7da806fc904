import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { CloudEvent } from '../../events/types.js';
import { sqlDialect } from '../sql.js';
import type { FilterEvaluationError } from '../types.js';
import { type CesqlEvaluationError, compile, compileLike, evaluate, likeMatches } from './index.js';

/**
 * The reference: LIKE as an anchored RegExp, the way CESQL describes it. Exponential on unlucky
 * input, so it only ever sees short strings here.
 */
function referenceLike(pattern: string, value: string): boolean {
  let out = '';
  const c = Array.from(pattern);
  const literal = (ch: string) => ch.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  for (let i = 0; i < c.length; i++) {
    const ch = c[i]!;
    if (ch === '\\' && (c[i + 1] === '%' || c[i + 1] === '_' || c[i + 1] === '\\')) out += literal(c[++i]!);
    else if (ch === '%') out += '.*';
    else if (ch === '_') out += '.';
    else out += literal(ch);
  }
  return new RegExp(`^${out}$`, 'su').test(value);
}

const event = (attrs: Record<string, string>): CloudEvent => ({
  specversion: '1.0',
  id: 'like',
  source: '/like',
  type: 't',
  ...attrs,
});

describe('LIKE matching', () => {
  // Few letters, so generated values and patterns actually meet; astral characters and escapes too.
  const alphabet = fc.constantFrom('a', 'b', '.', '🌎', 'é', '\\', '%', '_');
  const text = fc.array(alphabet, { maxLength: 12 }).map((c) => c.join(''));
  const patternPart = fc.oneof(alphabet, fc.constantFrom('%', '_', '\\%', '\\_', '\\\\', '\\a', '%%'));
  const pattern = fc.array(patternPart, { maxLength: 8 }).map((c) => c.join(''));

  it('agrees with the RegExp reference on every pattern and value', () => {
    fc.assert(
      fc.property(pattern, text, (p, v) => {
        assert.equal(likeMatches(compileLike(p), v), referenceLike(p, v), `'${v}' LIKE '${p}'`);
      }),
      { numRuns: 5000 },
    );
  });

  it('agrees with the reference on values built from the pattern itself', () => {
    // Random values rarely match long patterns; values made by filling a pattern's wildcards do.
    const filled = pattern.chain((p) =>
      fc
        .array(text, { minLength: 8, maxLength: 8 })
        .map((fills) => [p, p.replace(/\\(.)/gu, '$1').replace(/[%_]/g, () => fills.pop() ?? '')] as const),
    );
    fc.assert(
      fc.property(filled, ([p, v]) => {
        assert.equal(likeMatches(compileLike(p), v), referenceLike(p, v), `'${v}' LIKE '${p}'`);
      }),
      { numRuns: 3000 },
    );
  });

  it('reads the CESQL escapes: \\% \\_ \\\\ are literal, a lone backslash is itself', () => {
    assert.equal(likeMatches(compileLike('100\\%'), '100%'), true);
    assert.equal(likeMatches(compileLike('100\\%'), '1000'), false);
    assert.equal(likeMatches(compileLike('a\\_b'), 'a_b'), true);
    assert.equal(likeMatches(compileLike('a\\_b'), 'axb'), false);
    assert.equal(likeMatches(compileLike('a\\\\b'), 'a\\b'), true);
    assert.equal(likeMatches(compileLike('a\\b'), 'a\\b'), true);
    assert.equal(likeMatches(compileLike('_'), '🌎'), true);
    assert.equal(likeMatches(compileLike('__'), '🌎'), false);
  });

  it("matches 80,000 dots against '%.%.created' in milliseconds (it took 8.9 s)", () => {
    const started = performance.now();
    const { result, errors } = evaluate("type LIKE '%.%.created'", event({ type: '.'.repeat(80_000) }));
    const elapsed = performance.now() - started;
    assert.deepEqual([result, errors], [false, []]);
    assert.ok(elapsed < 200, `took ${elapsed.toFixed(1)} ms`);
  });

  it('evaluates a five-wildcard LIKE over a 200,000-character value in milliseconds', () => {
    const long = `${'a'.repeat(199_990)}bcdefghijk`;
    for (const [p, expected] of [
      ['%a%b%c%d%e%z', false],
      ['%a%b%c%d%e%', true],
      ['%a_%a_%a_%a_%b', false],
    ] as const) {
      const started = performance.now();
      const { result, errors } = evaluate(`subject LIKE '${p}'`, event({ subject: long }));
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 200, `${p} took ${elapsed.toFixed(1)} ms`);
      assert.deepEqual(errors, [], p);
      assert.equal(result, expected, p);
    }
  });

  it('stops at its work budget with a budget error instead of running on', () => {
    // O(value × pattern): a long literal run after a % against a value that nearly matches it.
    const value = 'a'.repeat(50_000);
    const p = `%${'a'.repeat(200)}b`;
    const started = performance.now();
    const { result, errors } = evaluate(`subject LIKE '${p}'`, event({ subject: value }));
    assert.ok(performance.now() - started < 200);
    assert.equal(result, false);
    assert.deepEqual(errors, ['budget']);

    const small = compile(`subject LIKE '%x'`, undefined, { workBudget: 10 }).evaluate;
    const errs: CesqlEvaluationError[] = [];
    assert.equal(small(event({ subject: 'abcdefghijklmnopq' }), errs), false);
    assert.deepEqual(
      errs.map((e) => e.kind),
      ['budget'],
    );
    // The budget is per evaluation: the next event starts afresh.
    errs.length = 0;
    assert.equal(small(event({ subject: 'abx' }), errs), true);
    assert.deepEqual(errs, []);
  });

  it('charges string functions for what they are given', () => {
    const concat = `CONCAT(${Array(40).fill('subject').join(', ')})`;
    const { errors } = evaluate(`LENGTH(${concat}) > 0`, event({ subject: 'x'.repeat(60_000) }));
    assert.deepEqual(errors, ['budget']);
  });

  it('as a trigger filter, running out of budget is a filter error, not a match', () => {
    const matcher = sqlDialect.compile(`subject LIKE '%${'a'.repeat(200)}b'`, ['sql'], () => () => true);
    const errors: FilterEvaluationError[] = [];
    assert.equal(matcher(event({ subject: 'a'.repeat(50_000) }), errors), false);
    assert.deepEqual(
      errors.map((e) => [e.dialect, e.kind]),
      [['sql', 'budget']],
    );
  });
});
