import type { CloudEvent } from '../../events/types.js';
import type { CesqlType, Node, Value } from './ast.js';
import type { CesqlEvaluationError } from './errors.js';
import { defaultFunctions, type FunctionRegistry } from './functions.js';
import { castTo, type Errors, int32, toBoolean, toInteger, toStringValue, typeOf, zeroOf } from './values.js';

/** A compiled expression: evaluate many times; errors are pushed, never thrown. */
export type Evaluator = (event: CloudEvent, errors: CesqlEvaluationError[]) => Value;

interface Compiled {
  fn: Evaluator;
  /** The static result type, when known ('Any' for attributes, whose type depends on the event). */
  type: CesqlType;
}

/**
 * Turns an AST into nested closures. Each operator evaluates its operands, and when an operand
 * produced an error the operator yields its zero value without going on (§3.3): `missing / 0`
 * is a missingAttribute error, not a math error. Casts and functions resolve at compile time.
 */
export function compileAst(root: Node, functions: FunctionRegistry = defaultFunctions): Evaluator {
  return compileNode(root, functions).fn;
}

function compileNode(node: Node, functions: FunctionRegistry): Compiled {
  switch (node.kind) {
    case 'literal': {
      const value = node.value;
      return { fn: () => value, type: node.type };
    }
    case 'identifier': {
      const name = node.name;
      return {
        type: 'Any',
        fn: (event, errors) => {
          const value = event[name];
          if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
            return value;
          errors.push({ kind: 'missingAttribute', message: `attribute "${name}" is not present` });
          return false;
        },
      };
    }
    case 'exists': {
      const name = node.name;
      return {
        type: 'Boolean',
        fn: (event) => {
          const value = event[name];
          return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
        },
      };
    }
    case 'unary': {
      const operand = compileNode(node.operand, functions).fn;
      if (node.operator === 'NOT') {
        return {
          type: 'Boolean',
          fn: (event, errors) => {
            const n = errors.length;
            const v = operand(event, errors);
            if (errors.length !== n) return false;
            return !toBoolean(v, errors);
          },
        };
      }
      return {
        type: 'Integer',
        fn: (event, errors) => {
          const n = errors.length;
          const v = operand(event, errors);
          if (errors.length !== n) return 0;
          return int32(-toInteger(v, errors), errors);
        },
      };
    }
    case 'like': {
      const operand = compileNode(node.operand, functions).fn;
      const regex = likeToRegExp(node.pattern);
      const negated = node.negated;
      return {
        type: 'Boolean',
        fn: (event, errors) => {
          const n = errors.length;
          const v = operand(event, errors);
          if (errors.length !== n) return false;
          return regex.test(typeof v === 'string' ? v : toStringValue(v)) !== negated;
        },
      };
    }
    case 'in': {
      const operand = compileNode(node.operand, functions).fn;
      const set = node.set.map((s) => compileNode(s, functions).fn);
      const negated = node.negated;
      return {
        type: 'Boolean',
        fn: (event, errors) => {
          const n = errors.length;
          const v = operand(event, errors);
          if (errors.length !== n) return false;
          // Set elements are cast to the type of the left operand (the IN rule of §3.7).
          const type = typeOf(v);
          for (const element of set) {
            const e = element(event, errors);
            if (errors.length !== n) return false;
            if (castTo(type, e, errors) === v) return !negated;
          }
          return negated;
        },
      };
    }
    case 'call':
      return compileCall(node, functions);
    case 'binary':
      return compileBinary(node, functions);
  }
}

function compileCall(node: Extract<Node, { kind: 'call' }>, functions: FunctionRegistry): Compiled {
  const fn = functions.resolve(node.name, node.args.length);
  const args = node.args.map((a) => compileNode(a, functions).fn);
  if (!fn) {
    const message = `no function ${node.name} with ${node.args.length} argument(s)`;
    return {
      type: 'Boolean',
      fn: (_event, errors) => {
        errors.push({ kind: 'missingFunction', message });
        return false;
      },
    };
  }
  const types = args.map((_, i) => (i < fn.params.length ? fn.params[i]! : fn.variadic!));
  const zero = zeroOf(fn.returns);
  const impl = fn.impl;
  return {
    type: fn.returns,
    fn: (event, errors) => {
      const n = errors.length;
      const values: Value[] = new Array(args.length);
      for (let i = 0; i < args.length; i++) {
        const v = args[i]!(event, errors);
        if (errors.length !== n) return zero;
        values[i] = types[i] === 'Any' ? v : castTo(types[i]!, v, errors);
      }
      return impl(values, errors);
    },
  };
}

function compileBinary(node: Extract<Node, { kind: 'binary' }>, functions: FunctionRegistry): Compiled {
  const left = compileNode(node.left, functions);
  const right = compileNode(node.right, functions);
  const l = left.fn;
  const r = right.fn;
  switch (node.operator) {
    case 'AND':
      return { type: 'Boolean', fn: shortCircuit(l, r, false) };
    case 'OR':
      return { type: 'Boolean', fn: shortCircuit(l, r, true) };
    case 'XOR':
      return {
        type: 'Boolean',
        fn: both(l, r, false, (a, b, errors) => toBoolean(a, errors) !== toBoolean(b, errors)),
      };
    case '=':
    case '!=':
    case '<>': {
      const negate = node.operator !== '=';
      // Ambiguous operator: when the types differ, the left operand is cast to the right's type.
      if (right.type === 'String' || right.type === 'Integer' || right.type === 'Boolean') {
        const rightType = right.type;
        return {
          type: 'Boolean',
          fn: (event, errors) => {
            const n = errors.length;
            const a = l(event, errors);
            if (errors.length !== n) return false;
            const b = r(event, errors);
            const same = (typeof a === typeof b ? a : castTo(rightType, a, errors)) === b;
            return same !== negate;
          },
        };
      }
      return {
        type: 'Boolean',
        fn: both(
          l,
          r,
          false,
          (a, b, errors) => ((typeof a === typeof b ? a : castTo(typeOf(b), a, errors)) === b) !== negate,
        ),
      };
    }
    case '<':
    case '<=':
    case '>':
    case '>=': {
      const compare = COMPARE[node.operator];
      return {
        type: 'Boolean',
        fn: both(l, r, false, (a, b, errors) =>
          compare(
            typeof a === 'number' ? a : toInteger(a, errors),
            typeof b === 'number' ? b : toInteger(b, errors),
          ),
        ),
      };
    }
    default: {
      const op = ARITHMETIC[node.operator]!;
      return {
        type: 'Integer',
        fn: both(l, r, 0, (a, b, errors) =>
          op(
            typeof a === 'number' ? a : toInteger(a, errors),
            typeof b === 'number' ? b : toInteger(b, errors),
            errors,
          ),
        ),
      };
    }
  }
}

/**
 * AND (`decisive` false) and OR (`decisive` true): a left operand equal to `decisive` settles
 * the result without evaluating the right one. An operand error yields false (§3.3).
 */
function shortCircuit(l: Evaluator, r: Evaluator, decisive: boolean): Evaluator {
  return (event, errors) => {
    const n = errors.length;
    const a = l(event, errors);
    if (errors.length !== n) return false;
    if (toBoolean(a, errors) === decisive) return decisive;
    const b = r(event, errors);
    if (errors.length !== n) return false;
    return toBoolean(b, errors);
  };
}

/**
 * Evaluates both operands, then `apply`; when either operand produced an error the operator
 * yields `zero` instead (§3.3).
 */
function both(
  l: Evaluator,
  r: Evaluator,
  zero: Value,
  apply: (a: Value, b: Value, errors: Errors) => Value,
): Evaluator {
  return (event, errors) => {
    const n = errors.length;
    const a = l(event, errors);
    if (errors.length !== n) return zero;
    const b = r(event, errors);
    if (errors.length !== n) return zero;
    return apply(a, b, errors);
  };
}

const COMPARE: Record<'<' | '<=' | '>' | '>=', (a: number, b: number) => boolean> = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
};

const ARITHMETIC: Record<string, (a: number, b: number, errors: Errors) => number> = {
  '+': (a, b, errors) => int32(a + b, errors),
  '-': (a, b, errors) => int32(a - b, errors),
  '*': (a, b, errors) => int32(a * b, errors),
  '/': (a, b, errors) => {
    if (b === 0) {
      errors.push({ kind: 'math', message: 'division by zero' });
      return 0;
    }
    return int32(Math.trunc(a / b), errors);
  },
  '%': (a, b, errors) => {
    if (b === 0) {
      errors.push({ kind: 'math', message: 'modulo by zero' });
      return 0;
    }
    // JavaScript's remainder already takes the dividend's sign, as CESQL requires.
    return a % b;
  },
};

/**
 * LIKE pattern → anchored RegExp: `%` any run, `_` one character, `\%` and `\_` the characters
 * themselves, `\\` a backslash; any other character (including a lone backslash) is literal.
 */
export function likeToRegExp(pattern: string): RegExp {
  let out = '';
  const c = Array.from(pattern);
  for (let i = 0; i < c.length; i++) {
    const ch = c[i]!;
    if (ch === '\\' && (c[i + 1] === '%' || c[i + 1] === '_' || c[i + 1] === '\\')) {
      out += escapeRegExp(c[++i]!);
    } else if (ch === '%') out += '.*';
    else if (ch === '_') out += '.';
    else out += escapeRegExp(ch);
  }
  return new RegExp(`^${out}$`, 'su');
}

function escapeRegExp(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}
