import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { cesqlEventArb, expressionArb } from '../../../test/support/cesql.js';
import type { CloudEvent } from '../../events/types.js';
import { builtInDialects, compileFilter } from '../index.js';
import { sqlDialect } from '../sql.js';
import type { FilterEvaluationError } from '../types.js';
import {
  builtInFunctions,
  CesqlParseError,
  compile,
  evaluate,
  FunctionRegistry,
  type Node,
  parse,
  print,
} from './index.js';

const event: CloudEvent = {
  specversion: '1.0',
  id: 'x',
  source: '/s',
  type: 'order.created',
  subject: 'orders/42',
  seq: '12',
};

/** Drops positions so trees can be compared structurally. */
function shape(node: Node): unknown {
  return JSON.parse(JSON.stringify(node, (k, v) => (k === 'position' ? undefined : v)));
}

describe('CESQL parser', () => {
  it('reports line and column of a parse error', () => {
    assert.throws(
      () => parse("type = 'x' AND\n  subject LIKE 42"),
      (e: unknown) =>
        e instanceof CesqlParseError &&
        e.position.line === 2 &&
        e.position.column === 16 &&
        /LIKE needs a string/.test(e.message),
    );
    assert.throws(
      () => parse('ABC('),
      (e: unknown) => e instanceof CesqlParseError && /end of the expression/.test(e.message),
    );
    assert.throws(() => parse("'unterminated"), /unterminated string/);
    assert.throws(() => parse('1 ?'), /unexpected character/);
    assert.throws(() => parse('2147483648'), /32-bit/);
    assert.throws(() => parse('data_base64 = 1'), /not a valid attribute name/);
  });

  it('follows the v1 precedence: unary, LIKE/IN, * / %, + -, comparison, then AND/OR/XOR right to left', () => {
    assert.equal(print(parse('1 + 2 * 3')), '(1 + (2 * 3))');
    assert.equal(print(parse('-a + b')), '(-(a) + b)');
    assert.equal(print(parse('NOT a = b')), '(NOT (a) = b)');
    assert.equal(print(parse("a LIKE 'x' = TRUE")), "((a LIKE 'x') = TRUE)");
    assert.equal(print(parse('a AND b OR c')), '(a AND (b OR c))');
    assert.equal(print(parse('1 - 2 - 3')), '((1 - 2) - 3)');
    assert.equal(print(parse('x NOT IN (1, 2)')), '(x NOT IN (1, 2))');
    assert.equal(evaluate('10 - 2 - 3', event).result, 5);
  });

  it('keywords and functions are case-insensitive, identifiers are attribute names', () => {
    assert.deepEqual(evaluate("Type = 'order.created' aNd exists SUBJECT", event), {
      result: true,
      errors: [],
      messages: [],
    });
    assert.equal(evaluate("lower('ABC')", event).result, 'abc');
  });

  it('deep nesting gives a parse error, never a stack overflow', () => {
    const deep = `${'('.repeat(10_000)}1${')'.repeat(10_000)}`;
    assert.throws(() => parse(deep), /nested too deeply/);
    assert.deepEqual(evaluate(deep, event).errors, ['parse']);
    assert.deepEqual(evaluate('NOT '.repeat(10_000) + 'TRUE', event).errors, ['parse']);
    const long = Array.from({ length: 5000 }, () => '1').join(' + ');
    assert.deepEqual(evaluate(long, event).errors, ['parse']);
    assert.equal(evaluate(Array.from({ length: 100 }, () => '1').join(' + '), event).result, 100);
  });
});

describe('CESQL evaluation', () => {
  it('32-bit integers: truncating division, remainder with the dividend sign, overflow is a math error', () => {
    assert.equal(evaluate('-7 / 2', event).result, -3);
    assert.equal(evaluate('-7 % 2', event).result, -1);
    assert.equal(evaluate('7 % -2', event).result, 1);
    assert.deepEqual(evaluate('2147483647 + 1', event).errors, ['math']);
    assert.deepEqual(evaluate('-2147483648 / -1', event).errors, ['math']);
  });

  it('strings are measured in Unicode characters', () => {
    assert.equal(evaluate("LENGTH('🌎é')", event).result, 2);
    assert.equal(evaluate("LEFT('🌎é!', 2)", event).result, '🌎é');
    assert.equal(evaluate("SUBSTRING('a🌎b', 2, 1)", event).result, '🌎');
    assert.equal(evaluate("'🌎' LIKE '_'", event).result, true);
  });

  it('attributes are context attributes and extensions only; data is not visible', () => {
    const withData = { ...event, data: { price: 3 } };
    assert.deepEqual(evaluate('EXISTS data', withData).result, false);
    assert.deepEqual(evaluate('data = 1', withData).errors, ['missingAttribute']);
    assert.equal(evaluate('INT(seq) > 10', event).result, true);
  });

  it('user-defined functions follow the overloading rules', () => {
    const fns = new FunctionRegistry(builtInFunctions).register({
      name: 'starts_with',
      params: ['String', 'String'],
      returns: 'Boolean',
      impl: ([s, p]) => (s as string).startsWith(p as string),
    });
    assert.equal(compile("STARTS_WITH(subject, 'orders/')", fns).evaluate(event, []), true);
    assert.throws(
      () =>
        fns.register({
          name: 'STARTS_WITH',
          params: ['String', 'String'],
          returns: 'Boolean',
          impl: () => true,
        }),
      /already has/,
    );
    fns.register({ name: 'pick', params: ['Integer'], returns: 'Integer', impl: () => 1 });
    fns.register({
      name: 'pick',
      params: ['Integer'],
      variadic: 'Integer',
      returns: 'Integer',
      impl: () => 2,
    });
    assert.throws(
      () => fns.register({ name: 'pick', params: [], variadic: 'String', returns: 'Integer', impl: () => 3 }),
      /variadic/,
    );
    assert.equal(compile('PICK(5)', fns).evaluate(event, []), 1, 'fixed arity wins');
    assert.equal(compile('PICK(5, 6, 7)', fns).evaluate(event, []), 2);
    const errors: { kind: string }[] = [];
    assert.equal(compile('PICK()', fns).evaluate(event, errors as never), false);
    assert.deepEqual(
      errors.map((e) => e.kind),
      ['missingFunction'],
    );
  });
});

describe('the sql filter dialect', () => {
  const dialects = [...builtInDialects, sqlDialect];
  it('matches only on true without errors, and reports errors', () => {
    const m = compileFilter(
      { sql: "type = 'order.created' AND INT(seq) > 10 AND subject LIKE 'orders/%'" },
      ['f'],
      dialects,
    );
    const errors: FilterEvaluationError[] = [];
    assert.equal(m(event, errors), true);
    assert.equal(m({ ...event, seq: '5' }, errors), false);
    assert.equal(errors.length, 0);
    assert.equal(m({ ...event, seq: 'abc' }, errors), false);
    assert.deepEqual(
      errors.map((e) => [e.dialect, e.kind]),
      [['sql', 'cast']],
    );
    const missing: FilterEvaluationError[] = [];
    assert.equal(compileFilter({ sql: 'myext = 1' }, ['f'], dialects)(event, missing), false);
    assert.equal(missing[0]?.kind, 'missingAttribute');
    assert.equal(
      compileFilter({ sql: '1 + 1' }, ['f'], dialects)(event, []),
      false,
      'a non-boolean result does not match',
    );
  });

  it('a bad expression fails with the config path and the line and column inside it', () => {
    assert.throws(
      () => compileFilter({ sql: "type = 'x' AND (" }, ['triggers', 't', 'filter'], dialects),
      (e: unknown) =>
        e instanceof Error &&
        (e as unknown as { path: string[] }).path.join('.') === 'triggers.t.filter.sql' &&
        /line 1, column 17/.test(e.message),
    );
  });

  it('nests inside all/any/not', () => {
    const m = compileFilter(
      {
        any: [
          { sql: "subject = 'nope'" },
          { all: [{ prefix: { type: 'order.' } }, { sql: 'INT(seq) = 12' }] },
        ],
      },
      ['f'],
      dialects,
    );
    assert.equal(m(event, []), true);
  });
});

describe('CESQL properties', () => {
  const events = cesqlEventArb();

  it('random expressions never make the parser or evaluator throw anything but a CesqlParseError', () => {
    fc.assert(
      fc.property(expressionArb(), events, (source, e) => {
        let compiled: ReturnType<typeof compile>;
        try {
          compiled = compile(source);
        } catch (err) {
          assert.ok(err instanceof CesqlParseError, `${source}: ${err}`);
          return;
        }
        const errors: never[] = [];
        const value = compiled.evaluate(e as CloudEvent, errors);
        assert.ok(['number', 'string', 'boolean'].includes(typeof value));
        if (typeof value === 'number')
          assert.ok(Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31);
      }),
      { numRuns: 2000 },
    );
  });

  it('arbitrary text never makes the parser throw anything but a CesqlParseError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (source) => {
        try {
          parse(source);
        } catch (err) {
          assert.ok(err instanceof CesqlParseError, `${JSON.stringify(source)}: ${err}`);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('printing a parsed expression and parsing it again gives the same tree', () => {
    fc.assert(
      fc.property(expressionArb(), (source) => {
        let ast: Node;
        try {
          ast = parse(source);
        } catch {
          return;
        }
        assert.deepEqual(shape(parse(print(ast))), shape(ast), `${source} → ${print(ast)}`);
      }),
      { numRuns: 2000 },
    );
  });
});
