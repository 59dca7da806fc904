import type { z } from 'zod';
import type { CloudEvent } from '../events/types.js';
import type { FilterClause } from './explain-types.js';

/** Something that went wrong while evaluating a filter against one event (never thrown). */
export interface FilterEvaluationError {
  dialect: string;
  /** The error kind, e.g. a CESQL kind such as `missingAttribute`, `cast`. */
  kind: string;
  message: string;
}

/**
 * A compiled filter. It answers true only on a clean match; evaluation problems are pushed to
 * `errors` (and make the filter not match) instead of being thrown.
 */
export type Matcher = ((event: CloudEvent, errors: FilterEvaluationError[]) => boolean) & {
  /** Why the event matched or not, clause by clause (the admin API's explain); see explainable(). */
  explain?: (event: CloudEvent) => FilterClause;
  /**
   * Attribute values a match needs, so that the router can leave out triggers that cannot match
   * an event without evaluating them (src/engine/trigger-index.ts). Each entry is necessary: the
   * filter matches only when the attribute equals one of its values. And together they are
   * decisive: when the event holds a string for every listed attribute and one of those strings
   * is not among its entry's values, the matcher answers false and reports no error.
   */
  requires?: readonly AttributeRequirement[];
};

/** An attribute a filter needs to equal one of `values` (see Matcher.requires). */
export interface AttributeRequirement {
  attribute: string;
  values: readonly string[];
}

/** Compiles a nested filter expression (used by `all`, `any`, `not`). */
export type CompileNested = (filter: unknown, path: (string | number)[]) => Matcher;

/**
 * One Subscriptions-API filter dialect (`exact`, `prefix`, `sql`, …). The dialect set is an
 * explicit registry list (see `src/filters/index.ts`).
 */
export interface FilterDialect {
  /** The key under `filter:` that selects this dialect. */
  name: string;
  description: string;
  /** Schema of the dialect's value (the part after `sql:`, `exact:` …), used for config validation. */
  schema: z.ZodType;
  /**
   * Compiles the dialect's value. Throws a FilterCompileError naming the problem; `path` is the
   * config path of the value, for the message.
   */
  compile(value: unknown, path: (string | number)[], nested: CompileNested): Matcher;
}

export class FilterCompileError extends Error {
  readonly path: (string | number)[];
  constructor(path: (string | number)[], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FilterCompileError';
    this.path = path;
  }
}
