import type { CloudEvent } from '../../events/types.js';
import type { CesqlStep } from '../explain-types.js';
import type { Node, Value } from './ast.js';
import { type CompileOptions, compileAst } from './compile.js';
import type { CesqlEvaluationError } from './errors.js';
import { print } from './printer.js';

/** What the explaining evaluator answers for one event. */
export interface CesqlExplanation {
  /** The expression's value, exactly as the evaluator gives it. */
  value: Value;
  errors: CesqlEvaluationError[];
  /** True with no error: what a `sql` filter counts as a match. */
  matched: boolean;
  /** When it did not match: the sub-expression that made it false, with its operands' values. */
  why?: CesqlStep;
}

interface Seen {
  value: Value;
  /** The errors raised while the node was evaluated (its operands' included). */
  errors: CesqlEvaluationError[];
}

/** Longest sub-expression quoted in an explanation. */
const EXPRESSION_CHARS = 200;

/**
 * Compiles an expression once into an explaining evaluator. It is the ordinary evaluator
 * (same casts, short circuits, error rules and work budget) with each node's value recorded as
 * it is produced, then one walk down the tree from the root along the operands that decided the
 * result: linear in the size of the expression.
 */
export function compileExplainer(
  ast: Node,
  options: Omit<CompileOptions, 'observe'> = {},
): (event: CloudEvent) => CesqlExplanation {
  let seen = new Map<Node, Seen>();
  const evaluate = compileAst(ast, {
    ...options,
    observe: (node, value, errors, before) => {
      seen.set(node, { value, errors: errors.length > before ? errors.slice(before) : [] });
    },
  });
  const printed = new Map<Node, string>();
  const text = (node: Node): string => {
    let out = printed.get(node);
    if (out === undefined) {
      out = unwrap(print(node));
      if (out.length > EXPRESSION_CHARS) out = `${out.slice(0, EXPRESSION_CHARS)}…`;
      printed.set(node, out);
    }
    return out;
  };
  return (event) => {
    seen = new Map();
    const errors: CesqlEvaluationError[] = [];
    const value = evaluate(event, errors);
    const matched = value === true && errors.length === 0;
    if (matched) return { value, errors, matched };
    return { value, errors, matched, why: explainNode(ast, seen, text) };
  };
}

/** A value that counts as true where CESQL casts to Boolean. */
function isTrue(seen: Seen | undefined): boolean {
  if (!seen || seen.errors.length > 0) return false;
  const v = seen.value;
  return v === true || (typeof v === 'string' && v.toLowerCase() === 'true');
}

/** The operands of a same-operator chain (`a AND b AND c`), left to right. */
function chain(node: Node, operator: 'AND' | 'OR', out: Node[] = []): Node[] {
  if (node.kind === 'binary' && node.operator === operator) {
    chain(node.left, operator, out);
    chain(node.right, operator, out);
  } else out.push(node);
  return out;
}

function explainNode(node: Node, seen: Map<Node, Seen>, text: (n: Node) => string): CesqlStep {
  const own = seen.get(node);
  const step: CesqlStep = { expression: text(node), value: own ? own.value : null, message: '' };
  if (own && own.errors.length > 0) step.errors = own.errors.map((e) => e.message);
  if (node.kind === 'binary' && (node.operator === 'AND' || node.operator === 'OR')) {
    const operands = chain(node, node.operator).filter((n) => seen.has(n));
    if (node.operator === 'AND') {
      // Evaluation stops at the first operand that is not true: that one decided it.
      const first = operands.find((n) => !isTrue(seen.get(n)));
      if (first) step.because = [explainNode(first, seen, text)];
    } else step.because = operands.map((n) => explainNode(n, seen, text));
    step.message = `${step.expression} is ${describeValue(step)}`;
    return step;
  }
  if (node.kind === 'unary' && node.operator === 'NOT') {
    step.because = [leaf(node.operand, seen, text)];
    step.message = `${step.expression} is ${describeValue(step)}`;
    return step;
  }
  return leaf(node, seen, text);
}

/** A sub-expression shown with its operands' values rather than explained further. */
function leaf(node: Node, seen: Map<Node, Seen>, text: (n: Node) => string): CesqlStep {
  const own = seen.get(node);
  const step: CesqlStep = { expression: text(node), value: own ? own.value : null, message: '' };
  if (own && own.errors.length > 0) step.errors = own.errors.map((e) => e.message);
  const operands = operandsOf(node).filter((n) => n.kind !== 'literal');
  if (operands.length > 0) {
    step.operands = operands.map((n) => {
      const s = seen.get(n);
      return { expression: text(n), value: s && s.errors.length === 0 ? s.value : null };
    });
  }
  const values = (step.operands ?? [])
    .map((o) => `${o.expression} is ${o.value === null ? 'not available' : JSON.stringify(o.value)}`)
    .join(', ');
  step.message = `${step.expression} is ${describeValue(step)}${values ? ` (${values})` : ''}`;
  return step;
}

function operandsOf(node: Node): Node[] {
  switch (node.kind) {
    case 'binary':
      return [node.left, node.right];
    case 'unary':
    case 'like':
      return [node.operand];
    case 'in':
      return [node.operand, ...node.set];
    case 'call':
      return node.args;
    default:
      return [];
  }
}

function describeValue(step: CesqlStep): string {
  if (step.errors) return `an error: ${step.errors.join('; ')}`;
  if (step.value === null) return 'not evaluated';
  return JSON.stringify(step.value);
}

/** `(a = 'x')` → `a = 'x'`: the printer parenthesises every operation, the outermost adds nothing. */
function unwrap(printed: string): string {
  if (!printed.startsWith('(') || !printed.endsWith(')')) return printed;
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < printed.length; i++) {
    const c = printed[i]!;
    if (quote) {
      if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') {
      depth--;
      if (depth === 0 && i < printed.length - 1) return printed;
    }
  }
  return printed.slice(1, -1);
}
