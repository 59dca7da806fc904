import { z } from 'zod';
import type { CloudEvent } from '../events/types.js';
import {
  type CesqlEvaluationError,
  type CesqlExplanation,
  CesqlParseError,
  compile,
  compileExplainer,
  defaultFunctions,
  type Node,
} from './cesql/index.js';
import { type CesqlStep, clausePath, explainable } from './explain.js';
import { type AttributeRequirement, FilterCompileError, type FilterDialect } from './types.js';

/**
 * The Subscriptions-API `sql` dialect: a CESQL v1 expression, compiled once at config load.
 * It matches only when the expression yields `true` with no error; evaluation errors are
 * reported to the router (metrics, the event's routing record), never thrown.
 */
export const sqlDialect: FilterDialect = {
  name: 'sql',
  description:
    'A CESQL v1 expression over the event’s context attributes and extensions; matches when it is true without errors.',
  schema: z.string().min(1),
  compile(value, path) {
    if (typeof value !== 'string' || value.trim() === '') {
      throw new FilterCompileError(path, 'expected a CESQL expression (a non-empty string)');
    }
    let evaluate: ReturnType<typeof compile>['evaluate'];
    let ast: Node;
    try {
      ({ evaluate, ast } = compile(value, defaultFunctions));
    } catch (err) {
      if (err instanceof CesqlParseError)
        throw new FilterCompileError(path, `CESQL: ${err.message}`, { cause: err });
      throw err;
    }
    const scratch: CesqlEvaluationError[] = [];
    const at = clausePath(path);
    // Built on first use: most filters are never explained.
    let explainer: ((event: CloudEvent) => CesqlExplanation) | null = null;
    const matcher = explainable(
      (event, errors) => {
        scratch.length = 0;
        const result = evaluate(event, scratch);
        if (scratch.length === 0) return result === true;
        for (const e of scratch) errors.push({ dialect: 'sql', kind: e.kind, message: e.message });
        return false;
      },
      (event) => {
        explainer ??= compileExplainer(ast, { functions: defaultFunctions });
        const explained = explainer(event);
        if (explained.matched) return { path: at, dialect: 'sql', matched: true, message: `${at}: true` };
        return {
          path: at,
          dialect: 'sql',
          matched: false,
          message: `${at}: ${summary(explained.why!)}`,
          sql: explained.why,
          ...(explained.errors.length > 0 ? { errors: explained.errors.map((e) => e.message) } : {}),
        };
      },
    );
    const requires = leadingRequirements(ast);
    if (requires.length > 0) matcher.requires = requires;
    return matcher;
  },
};

/**
 * The requirements an expression states first: the equalities (`type = 'x'`, `'x' = type`,
 * `subject IN ('a', 'b')`) its AND chain starts with, up to the first other operand. AND
 * evaluates left to right and stops at the first false operand, and such a comparison of an
 * attribute holding a string raises no error, so when one of them is false the expression is
 * false without errors, which is what Matcher.requires promises. Operands after the first other
 * one may be skipped by it or raise errors before them, so they are left out.
 */
function leadingRequirements(ast: Node): AttributeRequirement[] {
  const requires: AttributeRequirement[] = [];
  for (const operand of conjuncts(ast)) {
    const requirement = requirementOf(operand);
    if (!requirement) break;
    requires.push(requirement);
  }
  return requires;
}

/** The operands of an AND chain in the order they are evaluated (`a AND (b AND c)`: a, b, c). */
function conjuncts(node: Node): Node[] {
  if (node.kind !== 'binary' || node.operator !== 'AND') return [node];
  return [...conjuncts(node.left), ...conjuncts(node.right)];
}

function requirementOf(node: Node): AttributeRequirement | null {
  if (node.kind === 'binary' && node.operator === '=') {
    const { left, right } = node;
    if (left.kind === 'identifier' && right.kind === 'literal' && right.type === 'String')
      return { attribute: left.name, values: [right.value as string] };
    if (right.kind === 'identifier' && left.kind === 'literal' && left.type === 'String')
      return { attribute: right.name, values: [left.value as string] };
    return null;
  }
  // Each element is cast to the operand's type: a String literal cast to String is itself.
  if (
    node.kind === 'in' &&
    !node.negated &&
    node.operand.kind === 'identifier' &&
    node.set.every((element) => element.kind === 'literal' && element.type === 'String')
  )
    return {
      attribute: node.operand.name,
      values: node.set.map((element) => (element as Extract<Node, { kind: 'literal' }>).value as string),
    };
  return null;
}

/** The step that decided a false result, in one line: down single causes, all of an OR's. */
function summary(step: CesqlStep): string {
  let decisive = step;
  while (decisive.because?.length === 1) decisive = decisive.because[0]!;
  if (!decisive.because || decisive.because.length === 0) return decisive.message;
  return `${decisive.expression} is false: ${decisive.because.map(summary).join('; ')}`;
}
