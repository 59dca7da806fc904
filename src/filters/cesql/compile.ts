import type { CloudEvent } from '../../events/types.js';
import type { CesqlType, Node, Value } from './ast.js';
import type { CesqlEvaluationError } from './errors.js';
import { defaultFunctions, type FunctionRegistry } from './functions.js';
import { compileLike, likeMatches, type WorkMeter } from './like.js';
import { castTo, type Errors, int32, toBoolean, toInteger, toStringValue, typeOf, zeroOf } from './values.js';

/** A compiled expression: evaluate many times; errors are pushed, never thrown. */
export type Evaluator = (event: CloudEvent, errors: CesqlEvaluationError[]) => Value;

interface Compiled {
  fn: Evaluator;
  /** The static result type, when known ('Any' for attributes, whose type depends on the event). */
  type: CesqlType;
}

/**
 * Work one evaluation may do, in characters examined by LIKE and handled by string functions:
 * a few milliseconds. Enough for a LIKE with a handful of `%` over a 200,000-character value.
 */
export const DEFAULT_WORK_BUDGET = 1_000_000;

export interface CompileOptions {
  functions?: FunctionRegistry;
  /** Work one evaluation may do before it stops with a `budget` error (see DEFAULT_WORK_BUDGET). */
  workBudget?: number;
  /**
   * Told each node's value as the evaluation produces it, with the errors array and its length
   * before the node ran (the explaining evaluator records why an expression was false this way,
   * so it shares every rule of this one). Costs a call per node: leave it out for filtering.
   */
  observe?: NodeObserver;
}

export type NodeObserver = (
  node: Node,
  value: Value,
  errors: CesqlEvaluationError[],
  errorsBefore: number,
) => void;

/**
 * Turns an AST into nested closures. Each operator evaluates its operands, and when an operand
 * produced an error the operator yields its zero value without going on (§3.3): `missing / 0`
 * is a missingAttribute error, not a math error. Casts and functions resolve at compile time.
 *
 * Every evaluation gets the same work budget; running out is a `budget` error for that event, so
 * one hostile value costs milliseconds, never a stall. Evaluation is synchronous, so the closures
 * of one compiled expression can share one meter.
 */
export function compileAst(root: Node, options: CompileOptions = {}): Evaluator {
  const budget = options.workBudget ?? DEFAULT_WORK_BUDGET;
  const meter: WorkMeter = { remaining: budget };
  const fn = compileNode(root, {
    functions: options.functions ?? defaultFunctions,
    meter,
    budget,
    observe: options.observe,
  }).fn;
  return (event, errors) => {
    meter.remaining = budget;
    return fn(event, errors);
  };
}

interface Scope {
  functions: FunctionRegistry;
  meter: WorkMeter;
  budget: number;
  observe?: NodeObserver;
}

function budgetError(scope: Scope, errors: CesqlEvaluationError[]): void {
  errors.push({
    kind: 'budget',
    message: `evaluation stopped: it needed more than ${scope.budget} steps of work for this event`,
  });
}

function compileNode(node: Node, scope: Scope): Compiled {
  const compiled = compileBare(node, scope);
  const observe = scope.observe;
  if (!observe) return compiled;
  const fn = compiled.fn;
  return {
    type: compiled.type,
    fn: (event, errors) => {
      const before = errors.length;
      const value = fn(event, errors);
      observe(node, value, errors, before);
      return value;
    },
  };
}

function compileBare(node: Node, scope: Scope): Compiled {
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
      const operand = compileNode(node.operand, scope).fn;
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
      const operand = compileNode(node.operand, scope).fn;
      const pattern = compileLike(node.pattern);
      const negated = node.negated;
      const meter = scope.meter;
      return {
        type: 'Boolean',
        fn: (event, errors) => {
          const n = errors.length;
          const v = operand(event, errors);
          if (errors.length !== n) return false;
          const matched = likeMatches(pattern, typeof v === 'string' ? v : toStringValue(v), meter);
          if (meter.remaining < 0) {
            budgetError(scope, errors);
            return false;
          }
          return matched !== negated;
        },
      };
    }
    case 'in': {
      const operand = compileNode(node.operand, scope).fn;
      const set = node.set.map((s) => compileNode(s, scope).fn);
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
      return compileCall(node, scope);
    case 'binary':
      return compileBinary(node, scope);
  }
}

function compileCall(node: Extract<Node, { kind: 'call' }>, scope: Scope): Compiled {
  const fn = scope.functions.resolve(node.name, node.args.length);
  const args = node.args.map((a) => compileNode(a, scope).fn);
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
  const meter = scope.meter;
  return {
    type: fn.returns,
    fn: (event, errors) => {
      const n = errors.length;
      const values: Value[] = new Array(args.length);
      for (let i = 0; i < args.length; i++) {
        const v = args[i]!(event, errors);
        if (errors.length !== n) return zero;
        values[i] = types[i] === 'Any' ? v : castTo(types[i]!, v, errors);
        // String functions walk their arguments: nested CONCATs must not multiply work for free.
        if (typeof values[i] === 'string') meter.remaining -= (values[i] as string).length;
      }
      if (meter.remaining < 0) {
        budgetError(scope, errors);
        return zero;
      }
      return impl(values, errors);
    },
  };
}

function compileBinary(node: Extract<Node, { kind: 'binary' }>, scope: Scope): Compiled {
  const left = compileNode(node.left, scope);
  const right = compileNode(node.right, scope);
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
