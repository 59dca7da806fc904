import type { CesqlType, Value } from './ast.js';
import type { CesqlEvaluationError } from './errors.js';

export const INT_MIN = -2147483648;
export const INT_MAX = 2147483647;
const INTEGER = /^[+-]?[0-9]+$/;

export type Errors = CesqlEvaluationError[];

export function typeOf(value: Value): Exclude<CesqlType, 'Any'> {
  return typeof value === 'number' ? 'Integer' : typeof value === 'string' ? 'String' : 'Boolean';
}

export function zeroOf(type: CesqlType): Value {
  return type === 'Integer' ? 0 : type === 'String' ? '' : false;
}

export function castError(errors: Errors, value: Value, to: string): void {
  errors.push({ kind: 'cast', message: `cannot cast ${JSON.stringify(value)} to ${to}` });
}

/** String → Integer parses a decimal 32-bit integer; Boolean → 1 or 0. */
export function toInteger(value: Value, errors: Errors): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (INTEGER.test(value)) {
    const n = Number(value);
    if (n >= INT_MIN && n <= INT_MAX) return n;
  }
  castError(errors, value, 'Integer');
  return 0;
}

/**
 * String → Boolean accepts "true"/"false" in any case. Integer → Boolean is not an implicit cast
 * (`NOT 10` is a cast error); the explicit BOOL() function allows it.
 */
export function toBoolean(value: Value, errors: Errors, explicit = false): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const lower = value.toLowerCase();
    if (lower === 'true') return true;
    if (lower === 'false') return false;
  } else if (explicit) return value !== 0;
  castError(errors, value, 'Boolean');
  return false;
}

export function toStringValue(value: Value): string {
  return typeof value === 'string' ? value : String(value);
}

export function castTo(type: CesqlType, value: Value, errors: Errors): Value {
  switch (type) {
    case 'Integer':
      return toInteger(value, errors);
    case 'Boolean':
      return toBoolean(value, errors);
    case 'String':
      return toStringValue(value);
    default:
      return value;
  }
}

/** Clamps an arithmetic result to 32 bits, recording a math error on overflow. */
export function int32(n: number, errors: Errors): number {
  if (n > INT_MAX) {
    errors.push({ kind: 'math', message: 'integer overflow' });
    return INT_MAX;
  }
  if (n < INT_MIN) {
    errors.push({ kind: 'math', message: 'integer overflow' });
    return INT_MIN;
  }
  return n;
}

/** Number of Unicode characters (code points), as CESQL measures strings. */
export function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}
