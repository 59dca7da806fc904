import { HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import { CesqlParseError, compilePredicate } from '../filters/cesql/index.js';

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
    try {
      sql = compilePredicate(expression);
    } catch (err) {
      if (err instanceof CesqlParseError) {
        throw new HeraldError('REQUEST_INVALID', `sql: ${err.message}`, { details: { attribute: 'sql' } });
      }
      throw err;
    }
  }
  const { type, source, subject } = spec;
  return (event) =>
    (type === undefined || event.type === type) &&
    (source === undefined || event.source === source) &&
    (subject === undefined || event.subject === subject) &&
    (sql === null || sql(event));
}
