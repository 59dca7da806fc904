import { z } from 'zod';
import type { CloudEvent } from '../events/types.js';
import { clausePath, explainable, type FilterClause, shown } from './explain.js';
import {
  type CompileNested,
  FilterCompileError,
  type FilterDialect,
  type FilterEvaluationError,
  type Matcher,
} from './types.js';

/** Attribute → expected value; every listed attribute must satisfy the test (Subscriptions API §3.2.4). */
const attributeMap = z
  .record(z.string().regex(/^[a-z0-9]+$/, 'attribute names are lower-case a-z and 0-9'), z.string())
  .refine((m) => Object.keys(m).length > 0, 'needs at least one attribute');

function attributeValue(event: CloudEvent, name: string): string | undefined {
  const value = event[name];
  if (value === undefined || value === null || typeof value === 'object') return undefined;
  return String(value);
}

function attributeDialect(
  name: string,
  description: string,
  test: (actual: string, expected: string) => boolean,
  /** How the expectation reads in an explanation: `"sales"`, `a value starting with "com."`. */
  wanted: (expected: string) => string,
  /** The test is string equality, so the values are requirements the router can index. */
  equality = false,
): FilterDialect {
  return {
    name,
    description,
    schema: attributeMap,
    compile(value, path) {
      const parsed = attributeMap.safeParse(value);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const at = [...path, ...(issue.path as (string | number)[])];
        const message =
          issue.code === 'invalid_key'
            ? `attribute name "${String(at[at.length - 1])}" must use only lower-case letters a-z and digits 0-9`
            : issue.message.replace(/^Invalid input: /, '').replace(', received', ', got');
        throw new FilterCompileError(at, message);
      }
      const entries = Object.entries(parsed.data);
      const at = clausePath(path);
      const explain = (event: CloudEvent): FilterClause => {
        for (const [attr, expected] of entries) {
          const actual = attributeValue(event, attr);
          if (actual !== undefined && test(actual, expected)) continue;
          const got = actual === undefined ? `the event has no ${attr}` : `got ${shown(actual)}`;
          return {
            path: `${at}.${attr}`,
            dialect: name,
            matched: false,
            message: `${at}.${attr}: wanted ${wanted(expected)}, ${got}`,
          };
        }
        const all = entries.map(([attr, expected]) => `${attr} ${wanted(expected)}`).join(', ');
        return { path: at, dialect: name, matched: true, message: `${at}: ${all}` };
      };
      let matcher: Matcher;
      if (entries.length === 1) {
        const [attr, expected] = entries[0]!;
        matcher = explainable((event) => {
          const actual = attributeValue(event, attr);
          return actual !== undefined && test(actual, expected);
        }, explain);
      } else {
        matcher = explainable(
          (event) =>
            entries.every(([attr, expected]) => {
              const actual = attributeValue(event, attr);
              return actual !== undefined && test(actual, expected);
            }),
          explain,
        );
      }
      // This dialect never reports an error, so every exact value is a requirement.
      if (equality) matcher.requires = entries.map(([attribute, value]) => ({ attribute, values: [value] }));
      return matcher;
    },
  };
}

export const exactDialect = attributeDialect(
  'exact',
  'Attributes equal the given strings.',
  (a, e) => a === e,
  (e) => shown(e),
  true,
);
export const prefixDialect = attributeDialect(
  'prefix',
  'Attributes start with the given strings.',
  (a, e) => a.startsWith(e),
  (e) => `a value starting with ${shown(e)}`,
);
export const suffixDialect = attributeDialect(
  'suffix',
  'Attributes end with the given strings.',
  (a, e) => a.endsWith(e),
  (e) => `a value ending with ${shown(e)}`,
);

/**
 * A nested clause's explanation, from its own explain or, for a dialect without one, its verdict.
 * As with the matchers, `matched` is what the clause answered and `errors` what it raised: an
 * error anywhere makes the whole filter fail, whatever the clauses around it answered.
 */
function explainNested(matcher: Matcher, event: CloudEvent, at: string): FilterClause {
  if (matcher.explain) return matcher.explain(event);
  const errors: FilterEvaluationError[] = [];
  const matched = matcher(event, errors);
  return {
    path: at,
    dialect: 'filter',
    matched,
    message: `${at}: ${matched ? 'matched' : 'did not match'}`,
    ...(errors.length > 0 ? { errors: errors.map((e) => e.message) } : {}),
  };
}

function withErrors(clause: FilterClause, errors: string[]): FilterClause {
  return errors.length > 0 ? { ...clause, errors } : clause;
}

const filterList = z.array(z.unknown()).min(1, 'needs at least one filter');

function compileList(value: unknown, path: (string | number)[], nested: CompileNested): Matcher[] {
  const parsed = filterList.safeParse(value);
  if (!parsed.success) throw new FilterCompileError(path, 'expected a non-empty list of filters');
  return parsed.data.map((f, i) => nested(f, [...path, i]));
}

export const allDialect: FilterDialect = {
  name: 'all',
  description: 'Every nested filter matches.',
  schema: filterList,
  compile(value, path, nested) {
    const matchers = compileList(value, path, nested);
    const at = clausePath(path);
    const matcher = explainable(
      (event, errors) => {
        for (const m of matchers) if (!m(event, errors)) return false;
        return true;
      },
      (event) => {
        const errors: string[] = [];
        for (let i = 0; i < matchers.length; i++) {
          const clause = explainNested(matchers[i]!, event, `${at}[${i}]`);
          if (clause.errors) errors.push(...clause.errors);
          if (!clause.matched)
            return withErrors(
              { path: at, dialect: 'all', matched: false, message: clause.message, because: [clause] },
              errors,
            );
        }
        return withErrors(
          { path: at, dialect: 'all', matched: true, message: `${at}: all ${matchers.length} matched` },
          errors,
        );
      },
    );
    // The first filter runs first: when its requirements rule the event out, nothing else runs.
    // A later one's would hold only if every filter before it never reported an error.
    const first = matchers[0]!.requires;
    if (first) matcher.requires = first;
    return matcher;
  },
};

export const anyDialect: FilterDialect = {
  name: 'any',
  description: 'At least one nested filter matches.',
  schema: filterList,
  compile(value, path, nested) {
    const matchers = compileList(value, path, nested);
    const at = clausePath(path);
    return explainable(
      (event, errors) => {
        for (const m of matchers) if (m(event, errors)) return true;
        return false;
      },
      (event) => {
        const errors: string[] = [];
        const clauses: FilterClause[] = [];
        // Like the matcher: the clauses up to the first that matches.
        for (let i = 0; i < matchers.length; i++) {
          const clause = explainNested(matchers[i]!, event, `${at}[${i}]`);
          if (clause.errors) errors.push(...clause.errors);
          if (clause.matched)
            return withErrors({ path: at, dialect: 'any', matched: true, message: clause.message }, errors);
          clauses.push(clause);
        }
        return withErrors(
          {
            path: at,
            dialect: 'any',
            matched: false,
            message: `${at}: none of ${clauses.length} matched (${clauses.map((c) => c.message).join('; ')})`,
            because: clauses,
          },
          errors,
        );
      },
    );
  },
};

export const notDialect: FilterDialect = {
  name: 'not',
  description: 'The nested filter does not match.',
  schema: z.record(z.string(), z.unknown()),
  compile(value, path, nested) {
    const inner = nested(value, path);
    const at = clausePath(path);
    return explainable(
      (event, errors) => {
        const before = errors.length;
        const matched = inner(event, errors);
        // An evaluation error inside is not a "does not match": the whole filter fails.
        if (errors.length > before) return false;
        return !matched;
      },
      (event) => {
        const clause = explainNested(inner, event, at);
        if (clause.errors)
          return withErrors(
            { path: at, dialect: 'not', matched: false, message: clause.message, because: [clause] },
            clause.errors,
          );
        if (!clause.matched)
          return { path: at, dialect: 'not', matched: true, message: `not (${clause.message})` };
        return {
          path: at,
          dialect: 'not',
          matched: false,
          message: `not: the clause inside matched (${clause.message})`,
          because: [clause],
        };
      },
    );
  },
};
