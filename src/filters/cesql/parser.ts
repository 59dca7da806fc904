import type { BinaryOperator, Node } from './ast.js';
import { CesqlParseError } from './errors.js';
import { type Token, tokenize } from './lexer.js';

/** Nesting deeper than this is refused with a parse error instead of exhausting the stack. */
export const MAX_NESTING = 200;
/** Tree height limit (long operator chains), for the same reason at compile and evaluation time. */
export const MAX_HEIGHT = 2000;

const COMPARISON = new Set(['=', '!=', '<>', '<', '<=', '>', '>=']);
const ADDITIVE = new Set(['+', '-']);
const MULTIPLICATIVE = new Set(['*', '/', '%']);
const INT_MAX = 2147483647;

/**
 * Parses a CESQL v1 expression into an AST with positions. Precedence follows the v1 grammar:
 * unary NOT and -, then LIKE / IN, then * / %, then + -, then comparisons, then AND / OR / XOR
 * (one level, right-associative). Throws CesqlParseError with line and column.
 */
export function parse(source: string): Node {
  const tokens = tokenize(source);
  let i = 0;
  let nesting = 0;
  const heights = new WeakMap<Node, number>();
  const peek = (): Token => tokens[i]!;
  const next = (): Token => tokens[i++]!;
  const fail = (message: string, token: Token = peek()): never => {
    throw new CesqlParseError(message, token.position);
  };
  const describe = (t: Token) => (t.type === 'eof' ? 'end of the expression' : `"${t.value}"`);
  const height = (n: Node) => heights.get(n) ?? 1;
  const made = (node: Node, ...children: Node[]): Node => {
    let h = 1;
    for (const c of children) h = Math.max(h, height(c) + 1);
    if (h > MAX_HEIGHT) fail(`expression is too deep (more than ${MAX_HEIGHT} levels)`);
    heights.set(node, h);
    return node;
  };
  const enter = () => {
    if (++nesting > MAX_NESTING) fail(`expression is nested too deeply (more than ${MAX_NESTING} levels)`);
  };
  const isKeyword = (value: string) => peek().type === 'keyword' && peek().value === value;

  function expression(): Node {
    enter();
    const left = comparison();
    const t = peek();
    if (t.type === 'keyword' && (t.value === 'AND' || t.value === 'OR' || t.value === 'XOR')) {
      next();
      const right = expression();
      nesting--;
      return made(
        { kind: 'binary', operator: t.value as BinaryOperator, left, right, position: t.position },
        left,
        right,
      );
    }
    nesting--;
    return left;
  }

  /** One left-associative level: operands from `operand`, joined by any of `operators`. */
  function leftAssociative(operand: () => Node, operators: ReadonlySet<string>): Node {
    let left = operand();
    while (peek().type === 'operator' && operators.has(peek().value)) {
      const t = next();
      const right = operand();
      left = made(
        { kind: 'binary', operator: t.value as BinaryOperator, left, right, position: t.position },
        left,
        right,
      );
    }
    return left;
  }

  const multiplicative = () => leftAssociative(postfix, MULTIPLICATIVE);
  const additive = () => leftAssociative(multiplicative, ADDITIVE);
  const comparison = () => leftAssociative(additive, COMPARISON);

  function postfix(): Node {
    let operand = unary();
    for (;;) {
      const start = peek();
      let negated = false;
      if (
        isKeyword('NOT') &&
        tokens[i + 1]?.type === 'keyword' &&
        (tokens[i + 1]!.value === 'LIKE' || tokens[i + 1]!.value === 'IN')
      ) {
        next();
        negated = true;
      }
      if (isKeyword('LIKE')) {
        next();
        const pattern = peek();
        if (pattern.type !== 'string')
          fail(`LIKE needs a string literal pattern, found ${describe(pattern)}`);
        next();
        operand = made(
          { kind: 'like', operand, pattern: pattern.value, negated, position: start.position },
          operand,
        );
      } else if (isKeyword('IN')) {
        next();
        if (peek().type !== 'lparen') fail(`IN needs a parenthesised set, found ${describe(peek())}`);
        next();
        enter();
        const set: Node[] = [expression()];
        while (peek().type === 'comma') {
          next();
          set.push(expression());
        }
        if (peek().type !== 'rparen') fail(`expected "," or ")" in the IN set, found ${describe(peek())}`);
        next();
        nesting--;
        operand = made({ kind: 'in', operand, set, negated, position: start.position }, operand, ...set);
      } else return operand;
    }
  }

  function unary(): Node {
    const t = peek();
    if (t.type === 'keyword' && t.value === 'NOT') {
      next();
      enter();
      const operand = unary();
      nesting--;
      return made({ kind: 'unary', operator: 'NOT', operand, position: t.position }, operand);
    }
    if (t.type === 'operator' && t.value === '-') {
      next();
      const after = peek();
      if (after.type === 'integer') {
        // -2147483648 is a literal even though 2147483648 alone is out of range.
        next();
        const value = -Number(after.value);
        if (!Number.isSafeInteger(value) || value < -INT_MAX - 1)
          fail('integer literal out of the 32-bit range', after);
        return made({ kind: 'literal', type: 'Integer', value, position: t.position });
      }
      enter();
      const operand = unary();
      nesting--;
      return made({ kind: 'unary', operator: '-', operand, position: t.position }, operand);
    }
    return primary();
  }

  function primary(): Node {
    const t = next();
    switch (t.type) {
      case 'integer': {
        const value = Number(t.value);
        if (!Number.isSafeInteger(value) || value > INT_MAX)
          fail('integer literal out of the 32-bit range', t);
        return made({ kind: 'literal', type: 'Integer', value, position: t.position });
      }
      case 'string':
        return made({ kind: 'literal', type: 'String', value: t.value, position: t.position });
      case 'keyword':
        if (t.value === 'TRUE' || t.value === 'FALSE') {
          return made({ kind: 'literal', type: 'Boolean', value: t.value === 'TRUE', position: t.position });
        }
        if (t.value === 'EXISTS') {
          const id = next();
          if (id.type !== 'identifier' || id.value.includes('_'))
            fail(`EXISTS needs an attribute name, found ${describe(id)}`, id);
          return made({ kind: 'exists', name: id.value.toLowerCase(), position: t.position });
        }
        return fail(`unexpected keyword ${t.value}`, t);
      case 'identifier': {
        if (peek().type === 'lparen') {
          next();
          enter();
          const args: Node[] = [];
          if (peek().type !== 'rparen') {
            args.push(expression());
            while (peek().type === 'comma') {
              next();
              args.push(expression());
            }
          }
          if (peek().type !== 'rparen')
            fail(`expected "," or ")" after the arguments of ${t.value}, found ${describe(peek())}`);
          next();
          nesting--;
          return made({ kind: 'call', name: t.value.toUpperCase(), args, position: t.position }, ...args);
        }
        if (t.value.includes('_')) {
          fail(`"${t.value}" is not a valid attribute name (letters a-z and digits only)`, t);
        }
        return made({ kind: 'identifier', name: t.value.toLowerCase(), position: t.position });
      }
      case 'lparen': {
        enter();
        const inner = expression();
        if (peek().type !== 'rparen') fail(`expected ")", found ${describe(peek())}`);
        next();
        nesting--;
        return inner;
      }
      default:
        return fail(`unexpected ${describe(t)}`, t);
    }
  }

  const root = expression();
  if (peek().type !== 'eof') fail(`unexpected ${describe(peek())} after the expression`);
  return root;
}
