import { allDialect, anyDialect, exactDialect, notDialect, prefixDialect, suffixDialect } from './basic.js';
import { explainable } from './explain.js';
import { FilterCompileError, type FilterDialect, type Matcher } from './types.js';

export { type CesqlStep, type CesqlValue, explainFilter, type FilterClause } from './explain.js';
export type { FilterDialect, FilterEvaluationError, Matcher } from './types.js';
export { FilterCompileError } from './types.js';

/** Every filter dialect Herald knows, by the key that selects it under `filter:`. */
export const builtInDialects: FilterDialect[] = [
  exactDialect,
  prefixDialect,
  suffixDialect,
  allDialect,
  anyDialect,
  notDialect,
];

/** No filter: every event matches. */
export const matchAll: Matcher = explainable(
  () => true,
  () => ({ path: 'filter', dialect: 'none', matched: true, message: 'no filter: every event matches' }),
);

/**
 * Compiles a Subscriptions-API filter: an object with exactly one dialect key (`{exact: {…}}`),
 * or a list of such objects (all must match). Throws FilterCompileError with the config path.
 */
export function compileFilter(
  filter: unknown,
  path: (string | number)[],
  dialects: readonly FilterDialect[] = builtInDialects,
): Matcher {
  const byName = new Map(dialects.map((d) => [d.name, d]));
  const compile = (value: unknown, at: (string | number)[]): Matcher => {
    if (Array.isArray(value)) {
      const all = byName.get('all');
      if (!all) throw new FilterCompileError(at, 'a list of filters needs the `all` dialect');
      return all.compile(value, at, compile);
    }
    if (value === null || typeof value !== 'object') {
      throw new FilterCompileError(at, `expected a filter object such as { exact: { type: … } }`);
    }
    const keys = Object.keys(value);
    if (keys.length !== 1) {
      throw new FilterCompileError(
        at,
        `a filter has exactly one dialect key (one of ${[...byName.keys()].join(', ')}), got ${keys.length === 0 ? 'none' : keys.join(', ')}`,
      );
    }
    const name = keys[0]!;
    const dialect = byName.get(name);
    if (!dialect) {
      throw new FilterCompileError(
        [...at, name],
        `unknown filter dialect "${name}" (known: ${[...byName.keys()].join(', ')})`,
      );
    }
    return dialect.compile((value as Record<string, unknown>)[name], [...at, name], compile);
  };
  return compile(filter, path);
}
