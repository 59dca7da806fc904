import { HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import { type CesqlEvaluationError, CesqlParseError, compile } from '../filters/cesql/index.js';

/** What the dashboard filters events by: exact attributes and, optionally, a CESQL expression. */
export interface EventFilterSpec {
  type?: string;
  source?: string;
  subject?: string;
  sql?: string;
}

export type EventPredicate = (event: CloudEvent) => boolean;

/**
 * Compiles a filter once. A CESQL expression that does not parse is the caller's mistake (400 with
 * the position); one that errors on an event (a missing attribute, a bad cast) does not match it,
 * as for triggers.
 */
export function compileEventFilter(spec: EventFilterSpec): EventPredicate {
  let sql: ((event: CloudEvent) => boolean) | null = null;
  const expression = spec.sql?.trim();
  if (expression) {
    let evaluate: ReturnType<typeof compile>['evaluate'];
    try {
      evaluate = compile(expression).evaluate;
    } catch (err) {
      if (err instanceof CesqlParseError) {
        throw new HeraldError('REQUEST_INVALID', `sql: ${err.message}`, { details: { attribute: 'sql' } });
      }
      throw err;
    }
    sql = (event) => {
      const errors: CesqlEvaluationError[] = [];
      return evaluate(event, errors) === true && errors.length === 0;
    };
  }
  const { type, source, subject } = spec;
  return (event) =>
    (type === undefined || event.type === type) &&
    (source === undefined || event.source === source) &&
    (subject === undefined || event.subject === subject) &&
    (sql === null || sql(event));
}
