/** The error kinds of the CESQL TCK. */
export type CesqlErrorKind =
  | 'parse'
  | 'math'
  | 'cast'
  | 'missingAttribute'
  | 'missingFunction'
  | 'functionEvaluation'
  | 'generic'
  /** Not in the TCK: the evaluation needed more work than one event may cost. */
  | 'budget';

/** An evaluation error: recorded, never thrown; the expression still yields a value (§3.2, §3.3). */
export interface CesqlEvaluationError {
  kind: CesqlErrorKind;
  message: string;
}

/** A source position: 1-based line and column, and the 0-based offset. */
export interface Position {
  line: number;
  column: number;
  offset: number;
}

/** The expression does not parse. Thrown by `parse` and `compile`. */
export class CesqlParseError extends Error {
  readonly kind = 'parse' as const;
  readonly position: Position;
  constructor(message: string, position: Position) {
    super(`${message} at line ${position.line}, column ${position.column}`);
    this.name = 'CesqlParseError';
    this.position = position;
  }
}
