import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { cesqlEventArb, expressionArb } from '../../../test/support/cesql.js';
import type { CloudEvent } from '../../events/types.js';
import type { CesqlStep } from '../explain-types.js';
import { type CesqlEvaluationError, CesqlParseError, compile, compileExplainer } from './index.js';

const event = (extra: Record<string, unknown> = {}): CloudEvent =>
  ({ specversion: '1.0', id: '1', source: '/shop', type: 'order.created', ...extra }) as CloudEvent;

function explain(source: string, e: CloudEvent) {
  return compileExplainer(compile(source).ast)(e);
}

/** Every step, depth first. */
function steps(step: CesqlStep | undefined, out: CesqlStep[] = []): CesqlStep[] {
  if (!step) return out;
  out.push(step);
  for (const s of step.because ?? []) steps(s, out);
  return out;
}

describe('CESQL explaining evaluator', () => {
  it('for AND names the first conjunct that was false, with its operands', () => {
    const why = explain(
      "type = 'order.created' AND subject = 'sales' AND INT(seq) > 10",
      event({ subject: 'pricing', seq: '50' }),
    );
    assert.equal(why.matched, false);
    assert.equal(why.why!.because!.length, 1);
    const first = why.why!.because![0]!;
    assert.equal(first.expression, "subject = 'sales'");
    assert.equal(first.value, false);
    assert.deepEqual(first.operands, [{ expression: 'subject', value: 'pricing' }]);
    assert.equal(first.message, `subject = 'sales' is false (subject is "pricing")`);
  });

  it('for OR lists every disjunct that was false', () => {
    const why = explain("subject = 'a' OR subject = 'b' OR type LIKE 'x.%'", event({ subject: 'c' }));
    assert.deepEqual(
      why.why!.because!.map((s) => s.expression),
      ["subject = 'a'", "subject = 'b'", "type LIKE 'x.%'"],
    );
    assert.deepEqual(why.why!.because![2]!.operands, [{ expression: 'type', value: 'order.created' }]);
  });

  it('descends into an OR inside an AND, and shows the operand values of arithmetic', () => {
    const why = explain(
      "type = 'order.created' AND (myint + 1 > 10 OR subject = 'x')",
      event({ myint: 3, subject: 'y' }),
    );
    const or = why.why!.because![0]!;
    assert.equal(or.because!.length, 2);
    assert.deepEqual(or.because![0]!.operands, [{ expression: 'myint + 1', value: 4 }]);
  });

  it('names an evaluation error and the attribute that was missing', () => {
    const why = explain("subject = 'sales'", event());
    assert.equal(why.matched, false);
    assert.match(why.why!.message, /attribute "subject" is not present/);
    assert.deepEqual(why.why!.operands, [{ expression: 'subject', value: null }]);
  });

  it('has nothing to explain when the expression is true', () => {
    const why = explain("type = 'order.created'", event());
    assert.equal(why.matched, true);
    assert.equal(why.why, undefined);
  });

  it('for NOT shows the operand that was true', () => {
    const why = explain("NOT (type = 'order.created')", event());
    assert.equal(why.why!.because![0]!.value, true);
  });

  it('always gives the evaluator’s value and errors, and explains within the size of the expression', () => {
    fc.assert(
      fc.property(expressionArb(), cesqlEventArb(), (source, e) => {
        let compiled: ReturnType<typeof compile>;
        try {
          compiled = compile(source);
        } catch (err) {
          assert.ok(err instanceof CesqlParseError);
          return;
        }
        const errors: CesqlEvaluationError[] = [];
        const value = compiled.evaluate(e as CloudEvent, errors);
        const explained = compileExplainer(compiled.ast)(e as CloudEvent);
        assert.deepEqual(explained.value, value, source);
        assert.deepEqual(explained.errors, errors, source);
        assert.equal(explained.matched, value === true && errors.length === 0, source);
        assert.equal(explained.why === undefined, explained.matched, source);
        // One step per node at most: the walk never revisits a sub-expression.
        const count = (source.match(/[A-Za-z0-9_'"]+/g) ?? []).length + 1;
        assert.ok(steps(explained.why).length <= 2 * count, source);
      }),
      { numRuns: 1500 },
    );
  });

  it('shares the evaluator’s work budget: a costly LIKE stops with the same budget error', () => {
    const source = "subject LIKE '%a%a%a%a%a%a%b'";
    const e = event({ subject: 'a'.repeat(50_000) });
    const compiled = compile(source, undefined, { workBudget: 1000 });
    const errors: CesqlEvaluationError[] = [];
    compiled.evaluate(e, errors);
    const explained = compileExplainer(compiled.ast, { workBudget: 1000 })(e);
    assert.deepEqual(
      explained.errors.map((x) => x.kind),
      errors.map((x) => x.kind),
    );
    assert.ok(explained.errors.some((x) => x.kind === 'budget'));
  });
});
