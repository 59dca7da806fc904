import type { CloudEvent } from '../../events/types.js';
import type { Node, Value } from './ast.js';
import { type CompileOptions, compileAst, type Evaluator } from './compile.js';
import { type CesqlErrorKind, type CesqlEvaluationError, CesqlParseError } from './errors.js';
import { builtInFunctions, defaultFunctions, FunctionRegistry } from './functions.js';
import { parse } from './parser.js';

export type { CesqlStep } from '../explain-types.js';
export type { CesqlType, Node, Value } from './ast.js';
export { type CompileOptions, DEFAULT_WORK_BUDGET } from './compile.js';
export { type CesqlErrorKind, type CesqlEvaluationError, CesqlParseError, type Position } from './errors.js';
export { type CesqlExplanation, compileExplainer } from './explain.js';
export { builtInFunctions, type CesqlFunction, defaultFunctions, FunctionRegistry } from './functions.js';
export { compileLike, type LikePattern, likeMatches } from './like.js';
export { MAX_HEIGHT, MAX_NESTING, parse } from './parser.js';
export { print } from './printer.js';

export interface CompiledExpression {
  source: string;
  ast: Node;
  evaluate: Evaluator;
}

/** Parses and compiles once; throws CesqlParseError (with line and column) on a bad expression. */
export function compile(
  source: string,
  functions: FunctionRegistry = defaultFunctions,
  options: Omit<CompileOptions, 'functions'> = {},
): CompiledExpression {
  const ast = parse(source);
  return { source, ast, evaluate: compileAst(ast, { ...options, functions }) };
}

/**
 * A CESQL expression as a yes/no test, compiled once: true only when it yields `true` with no
 * evaluation error (a missing attribute, a bad cast), as trigger filters read it.
 */
export function compilePredicate(
  source: string,
  functions: FunctionRegistry = defaultFunctions,
): (event: CloudEvent) => boolean {
  const { evaluate } = compile(source, functions);
  const errors: CesqlEvaluationError[] = [];
  return (event) => {
    errors.length = 0;
    return evaluate(event, errors) === true && errors.length === 0;
  };
}

export interface EvaluationResult {
  /**
   * The value. An expression that does not parse yields `false` (the zero value of a filter's
   * Boolean), which is what the TCK expects alongside the `parse` error.
   */
  result: Value;
  errors: CesqlErrorKind[];
  messages: string[];
}

/** One-shot evaluation, in the TCK's vocabulary: a value (or null) and the error kinds. */
export function evaluate(
  source: string,
  event: CloudEvent,
  functions: FunctionRegistry = defaultFunctions,
): EvaluationResult {
  let compiled: CompiledExpression;
  try {
    compiled = compile(source, functions);
  } catch (err) {
    if (err instanceof CesqlParseError) return { result: false, errors: ['parse'], messages: [err.message] };
    return { result: false, errors: ['generic'], messages: [(err as Error).message] };
  }
  const errors: CesqlEvaluationError[] = [];
  let result: Value;
  try {
    result = compiled.evaluate(event, errors);
  } catch (err) {
    // Defensive: evaluation never throws by design; if it did, report rather than crash.
    return { result: false, errors: ['generic'], messages: [(err as Error).message] };
  }
  return { result, errors: errors.map((e) => e.kind), messages: errors.map((e) => e.message) };
}

export const CESQL = { compile, evaluate, parse, builtInFunctions, FunctionRegistry };
