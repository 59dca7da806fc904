import fc from 'fast-check';

// Random CESQL expressions and events, for the property tests of the evaluator and its explainer.

/** Grammar-aware random expressions (well-formed and not). */
export function expressionArb(): fc.Arbitrary<string> {
  const { expr } = fc.letrec((tie) => ({
    atom: fc.oneof(
      fc.integer({ min: 0, max: 2147483647 }).map(String),
      fc.constantFrom(
        'TRUE',
        'false',
        "'abc'",
        '"x\\"y"',
        "''",
        'id',
        'source',
        'subject',
        'missing',
        'seq',
        'myint',
      ),
    ),
    expr: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      tie('atom') as fc.Arbitrary<string>,
      fc
        .tuple(
          tie('expr') as fc.Arbitrary<string>,
          fc.constantFrom('+', '-', '*', '/', '%', '=', '!=', '<>', '<', '<=', '>', '>=', 'AND', 'OR', 'XOR'),
          tie('expr') as fc.Arbitrary<string>,
        )
        .map(([a, op, b]) => `${a} ${op} ${b}`),
      (tie('expr') as fc.Arbitrary<string>).map((a) => `(${a})`),
      (tie('expr') as fc.Arbitrary<string>).map((a) => `NOT ${a}`),
      (tie('expr') as fc.Arbitrary<string>).map((a) => `-${a}`),
      fc
        .tuple(tie('expr') as fc.Arbitrary<string>, fc.constantFrom("'a%'", "'_b\\%'", "'%'"))
        .map(([a, p]) => `${a} LIKE ${p}`),
      fc
        .tuple(
          tie('expr') as fc.Arbitrary<string>,
          fc.array(tie('atom') as fc.Arbitrary<string>, { minLength: 1, maxLength: 3 }),
        )
        .map(([a, s]) => `${a} NOT IN (${s.join(', ')})`),
      fc.constantFrom('EXISTS subject', 'EXISTS nothing'),
      fc
        .tuple(
          fc.constantFrom(
            'ABS',
            'LENGTH',
            'CONCAT',
            'CONCAT_WS',
            'LOWER',
            'LEFT',
            'SUBSTRING',
            'INT',
            'BOOL',
            'STRING',
            'IS_INT',
            'NOPE',
          ),
          fc.array(tie('expr') as fc.Arbitrary<string>, { maxLength: 3 }),
        )
        .map(([f, args]) => `${f}(${args.join(', ')})`),
    ),
  }));
  return expr as fc.Arbitrary<string>;
}

/** Events with the attributes the random expressions name (some absent). */
export function cesqlEventArb() {
  return fc.record({
    specversion: fc.constant('1.0' as const),
    id: fc.string({ minLength: 1 }),
    source: fc.string({ minLength: 1 }),
    type: fc.string({ minLength: 1 }),
    subject: fc.option(fc.string(), { nil: undefined }),
    seq: fc.option(fc.oneof(fc.string(), fc.integer().map(String)), { nil: undefined }),
    myint: fc.option(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { nil: undefined }),
  });
}
