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
import { FilterCompileError, type FilterDialect } from './types.js';

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
    return explainable(
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
  },
};

/** The step that decided a false result, in one line: down single causes, all of an OR's. */
function summary(step: CesqlStep): string {
  let decisive = step;
  while (decisive.because?.length === 1) decisive = decisive.because[0]!;
  if (!decisive.because || decisive.because.length === 0) return decisive.message;
  return `${decisive.expression} is false: ${decisive.because.map(summary).join('; ')}`;
}
