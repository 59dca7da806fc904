/**
 * What explaining a filter against one event answers. Types only, with no imports: the admin
 * API's answer types (src/server/api-types.ts) and the dashboard use them as they are.
 */

export type CesqlValue = string | number | boolean;

/** One sub-expression of a CESQL (`sql`) filter and the value it had for the event. */
export interface CesqlStep {
  /** The sub-expression as written back from the parsed tree. */
  expression: string;
  /** Its value; null when it was not evaluated (an operand before it failed). */
  value: CesqlValue | null;
  /** One line, e.g. `subject = 'sales' is false (subject is "pricing")`. */
  message: string;
  /** The values of its operands: for comparisons, LIKE, IN, arithmetic and function calls. */
  operands?: { expression: string; value: CesqlValue | null }[];
  /** Evaluation errors raised within it (a missing attribute, a bad cast…). */
  errors?: string[];
  /** Why it was not true: for AND its first false conjunct, for OR every disjunct, for NOT its operand. */
  because?: CesqlStep[];
}

/** One clause of a trigger's filter and whether the event satisfied it. */
export interface FilterClause {
  /** Where the clause sits under `filter`, e.g. `all[1].exact.subject`. */
  path: string;
  /** The dialect (`exact`, `prefix`, `all`, `sql`…), or `none` when there is no filter. */
  dialect: string;
  matched: boolean;
  /** One line, e.g. `exact.subject: wanted "sales", got "pricing"`. */
  message: string;
  /**
   * Why a combination did not match: for `all` its first clause that failed, for `any` every
   * clause, for `not` the clause that matched.
   */
  because?: FilterClause[];
  /** For a `sql` clause that did not match: the sub-expression that made it false. */
  sql?: CesqlStep;
  /** Evaluation errors (they make a filter not match). */
  errors?: string[];
}
