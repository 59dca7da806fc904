import { z } from 'zod';
import type { CloudEvent } from '../events/types.js';
import { type CompileNested, FilterCompileError, type FilterDialect, type Matcher } from './types.js';

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
      if (entries.length === 1) {
        const [attr, expected] = entries[0]!;
        return (event) => {
          const actual = attributeValue(event, attr);
          return actual !== undefined && test(actual, expected);
        };
      }
      return (event) =>
        entries.every(([attr, expected]) => {
          const actual = attributeValue(event, attr);
          return actual !== undefined && test(actual, expected);
        });
    },
  };
}

export const exactDialect = attributeDialect(
  'exact',
  'Attributes equal the given strings.',
  (a, e) => a === e,
);
export const prefixDialect = attributeDialect('prefix', 'Attributes start with the given strings.', (a, e) =>
  a.startsWith(e),
);
export const suffixDialect = attributeDialect('suffix', 'Attributes end with the given strings.', (a, e) =>
  a.endsWith(e),
);

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
    return (event, errors) => {
      for (const m of matchers) if (!m(event, errors)) return false;
      return true;
    };
  },
};

export const anyDialect: FilterDialect = {
  name: 'any',
  description: 'At least one nested filter matches.',
  schema: filterList,
  compile(value, path, nested) {
    const matchers = compileList(value, path, nested);
    return (event, errors) => {
      for (const m of matchers) if (m(event, errors)) return true;
      return false;
    };
  },
};

export const notDialect: FilterDialect = {
  name: 'not',
  description: 'The nested filter does not match.',
  schema: z.record(z.string(), z.unknown()),
  compile(value, path, nested) {
    const inner = nested(value, path);
    return (event, errors) => {
      const before = errors.length;
      const matched = inner(event, errors);
      // An evaluation error inside is not a "does not match": the whole filter fails.
      if (errors.length > before) return false;
      return !matched;
    };
  },
};
