import type { CloudEvent } from '../events/types.js';
import type { FilterClause } from './explain-types.js';
import type { FilterEvaluationError, Matcher } from './types.js';

export type { CesqlStep, CesqlValue, FilterClause } from './explain-types.js';

/** Longest value shown in an explanation: events can carry large attributes. */
const SHOWN_CHARS = 120;

/** A value as an explanation quotes it, cut to a bound. */
export function shown(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
}

/**
 * `['triggers', 't', 'filter', 'all', 1, 'exact']` → `all[1].exact`: where a clause sits under
 * the `filter` key it was compiled from (the whole path when there is none).
 */
export function clausePath(path: readonly (string | number)[]): string {
  const start = path.indexOf('filter');
  const parts = start === -1 ? path : path.slice(start + 1);
  let out = '';
  for (const part of parts) out += typeof part === 'number' ? `[${part}]` : out ? `.${part}` : part;
  return out || 'filter';
}

/** Gives a matcher its explanation, computed only when asked for (the admin API's explain). */
export function explainable(matcher: Matcher, explain: (event: CloudEvent) => FilterClause): Matcher {
  return Object.assign(matcher, { explain });
}

/**
 * Why `matcher` matched the event or not. The verdict is always the matcher's own (a clean match:
 * true with no evaluation error, as the router counts it); the clauses come from its explanation
 * when it has one.
 */
export function explainFilter(matcher: Matcher, event: CloudEvent): FilterClause {
  const errors: FilterEvaluationError[] = [];
  const matched = matcher(event, errors) && errors.length === 0;
  const clause: FilterClause = matcher.explain
    ? matcher.explain(event)
    : {
        path: 'filter',
        dialect: 'filter',
        matched,
        message: matched ? 'the filter matched' : 'the filter did not match',
      };
  if (clause.matched !== matched) clause.matched = matched;
  if (errors.length > 0 && !clause.errors) clause.errors = errors.map((e) => `${e.dialect}: ${e.message}`);
  return clause;
}
