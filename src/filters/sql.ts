import { z } from 'zod';
import { type CesqlEvaluationError, CesqlParseError, compile, defaultFunctions } from './cesql/index.js';
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
    try {
      evaluate = compile(value, defaultFunctions).evaluate;
    } catch (err) {
      if (err instanceof CesqlParseError)
        throw new FilterCompileError(path, `CESQL: ${err.message}`, { cause: err });
      throw err;
    }
    const scratch: CesqlEvaluationError[] = [];
    return (event, errors) => {
      scratch.length = 0;
      const result = evaluate(event, scratch);
      if (scratch.length === 0) return result === true;
      for (const e of scratch) errors.push({ dialect: 'sql', kind: e.kind, message: e.message });
      return false;
    };
  },
};
