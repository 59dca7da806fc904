import type { CesqlType, Value } from './ast.js';
import { charLength, type Errors, INT_MAX, INT_MIN, toBoolean, toInteger, toStringValue } from './values.js';

/**
 * A CESQL function. Arguments arrive already cast to `params` (and `variadic` for the rest);
 * an implementation reports problems by pushing `functionEvaluation` (or `math`) errors and still
 * returns a value.
 */
export interface CesqlFunction {
  name: string;
  params: CesqlType[];
  /** Type of any number of further arguments (at most one variadic overload per name). */
  variadic?: CesqlType;
  returns: Exclude<CesqlType, 'Any'>;
  impl(args: Value[], errors: Errors): Value;
}

/**
 * Functions by name (case-insensitive) and arity, with the overloading rules of CESQL §3.5:
 * no two overloads with the same arity, at most one variadic overload per name, and a fixed-arity
 * overload wins over a variadic one for the same argument count.
 */
export class FunctionRegistry {
  private readonly byName = new Map<string, CesqlFunction[]>();

  constructor(functions: CesqlFunction[] = []) {
    for (const f of functions) this.register(f);
  }

  register(fn: CesqlFunction): this {
    const name = fn.name.toUpperCase();
    if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`invalid function name "${fn.name}"`);
    const overloads = this.byName.get(name) ?? [];
    for (const o of overloads) {
      if (!o.variadic && !fn.variadic && o.params.length === fn.params.length) {
        throw new Error(`${name} already has an overload with ${fn.params.length} argument(s)`);
      }
      if (o.variadic && fn.variadic) throw new Error(`${name} already has a variadic overload`);
    }
    overloads.push({ ...fn, name });
    this.byName.set(name, overloads);
    return this;
  }

  resolve(name: string, arity: number): CesqlFunction | undefined {
    const overloads = this.byName.get(name.toUpperCase());
    if (!overloads) return undefined;
    return (
      overloads.find((o) => !o.variadic && o.params.length === arity) ??
      overloads.find((o) => o.variadic !== undefined && arity >= o.params.length)
    );
  }

  /** A copy to which more functions can be added without touching this registry. */
  extend(functions: CesqlFunction[]): FunctionRegistry {
    const copy = new FunctionRegistry();
    for (const list of this.byName.values()) for (const f of list) copy.register(f);
    for (const f of functions) copy.register(f);
    return copy;
  }
}

const fnError = (errors: Errors, message: string) => errors.push({ kind: 'functionEvaluation', message });
const chars = (s: string) => Array.from(s);

export const builtInFunctions: CesqlFunction[] = [
  {
    name: 'ABS',
    params: ['Integer'],
    returns: 'Integer',
    impl: ([x], errors) => {
      const n = x as number;
      if (n === INT_MIN) {
        errors.push({ kind: 'math', message: 'ABS of the smallest integer overflows' });
        return INT_MAX;
      }
      return Math.abs(n);
    },
  },
  { name: 'LENGTH', params: ['String'], returns: 'Integer', impl: ([s]) => charLength(s as string) },
  {
    name: 'CONCAT',
    params: [],
    variadic: 'String',
    returns: 'String',
    impl: (args) => (args as string[]).join(''),
  },
  {
    name: 'CONCAT_WS',
    params: ['String'],
    variadic: 'String',
    returns: 'String',
    impl: ([sep, ...rest]) => (rest as string[]).join(sep as string),
  },
  { name: 'LOWER', params: ['String'], returns: 'String', impl: ([s]) => (s as string).toLowerCase() },
  { name: 'UPPER', params: ['String'], returns: 'String', impl: ([s]) => (s as string).toUpperCase() },
  { name: 'TRIM', params: ['String'], returns: 'String', impl: ([s]) => (s as string).trim() },
  {
    name: 'LEFT',
    params: ['String', 'Integer'],
    returns: 'String',
    impl: ([s, n], errors) => {
      if ((n as number) < 0) {
        fnError(errors, 'LEFT needs a length of 0 or more');
        return s as string;
      }
      return chars(s as string)
        .slice(0, n as number)
        .join('');
    },
  },
  {
    name: 'RIGHT',
    params: ['String', 'Integer'],
    returns: 'String',
    impl: ([s, n], errors) => {
      if ((n as number) < 0) {
        fnError(errors, 'RIGHT needs a length of 0 or more');
        return s as string;
      }
      const c = chars(s as string);
      return c.slice(Math.max(0, c.length - (n as number))).join('');
    },
  },
  {
    name: 'SUBSTRING',
    params: ['String', 'Integer'],
    returns: 'String',
    impl: ([s, pos], errors) => substring(s as string, pos as number, undefined, errors),
  },
  {
    name: 'SUBSTRING',
    params: ['String', 'Integer', 'Integer'],
    returns: 'String',
    impl: ([s, pos, len], errors) => substring(s as string, pos as number, len as number, errors),
  },
  { name: 'INT', params: ['Any'], returns: 'Integer', impl: ([x], errors) => toInteger(x!, errors) },
  { name: 'BOOL', params: ['Any'], returns: 'Boolean', impl: ([x], errors) => toBoolean(x!, errors, true) },
  { name: 'STRING', params: ['Any'], returns: 'String', impl: ([x]) => toStringValue(x!) },
  {
    name: 'IS_INT',
    params: ['Any'],
    returns: 'Boolean',
    impl: ([x]) => {
      if (typeof x === 'number') return true;
      if (typeof x !== 'string') return false;
      const probe: Errors = [];
      toInteger(x, probe);
      return probe.length === 0;
    },
  },
  {
    name: 'IS_BOOL',
    params: ['Any'],
    returns: 'Boolean',
    impl: ([x]) => typeof x === 'boolean' || (typeof x === 'string' && /^(true|false)$/i.test(x)),
  },
];

/** 1-based position; negative counts from the end; 0 gives "" (§ built-in SUBSTRING). */
function substring(s: string, pos: number, len: number | undefined, errors: Errors): string {
  const c = chars(s);
  if (pos === 0) return '';
  if (pos > c.length || pos < -c.length) {
    fnError(errors, `SUBSTRING position ${pos} is outside the string`);
    return '';
  }
  const start = pos > 0 ? pos - 1 : c.length + pos;
  if (len === undefined) return c.slice(start).join('');
  if (len < 0) {
    fnError(errors, 'SUBSTRING needs a length of 0 or more');
    return '';
  }
  return c.slice(start, start + len).join('');
}

export const defaultFunctions = new FunctionRegistry(builtInFunctions);
