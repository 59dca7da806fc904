import { z } from 'zod';
import type { CloudEvent } from '../events/types.js';
import { clausePath, explainable, shown } from './explain.js';
import { FilterCompileError, type FilterDialect } from './types.js';

type Scalar = string | number | boolean | null;

const schema = z.strictObject({
  path: z
    .string()
    .regex(/^[^.]+(\.[^.]+)*$/, 'a path is dot-separated, e.g. result.results.#.status')
    .describe('Where in `data` to look; `#` stands for every element of an array.'),
  value: z
    .union([
      z.string(),
      z.number(),
      z.boolean(),
      z.null(),
      z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).min(1),
    ])
    .describe('The value, or a list of values, any of which matches.'),
});

/** Every value found at `segments` under `root`; `#` fans out over arrays. */
export function valuesAt(root: unknown, segments: readonly string[]): unknown[] {
  let current: unknown[] = [root];
  for (const segment of segments) {
    const next: unknown[] = [];
    for (const value of current) {
      if (segment === '#') {
        // A loop, not push(...value): spreading a 500,000-element array overflows the stack.
        if (Array.isArray(value)) for (const element of value) next.push(element);
      } else if (Array.isArray(value) && /^\d+$/.test(segment)) {
        if (Number(segment) < value.length) next.push(value[Number(segment)]);
      } else if (value !== null && typeof value === 'object' && Object.hasOwn(value, segment)) {
        next.push((value as Record<string, unknown>)[segment]);
      }
    }
    current = next;
  }
  return current;
}

/**
 * `data` filters look inside the event's JSON data, which CESQL cannot: `{ path:
 * "result.results.#.status", value: [failure, error] }` matches when any job failed. An absent
 * path, or data that is not JSON, simply does not match.
 */
export const dataDialect: FilterDialect = {
  name: 'data',
  description:
    'Matches when the value at `path` in the event’s JSON data (`#` = every array element) equals `value` or one of a list.',
  schema,
  compile(value, path) {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new FilterCompileError(
        [...path, ...(issue.path as (string | number)[])],
        issue.code === 'unrecognized_keys'
          ? `unknown key ${issue.keys.join(', ')}`
          : issue.path[0] === 'value'
            ? 'needs a `value`: a string, number, boolean or null, or a list of them'
            : issue.message,
      );
    }
    const segments = parsed.data.path.split('.');
    const wanted = new Set<Scalar>(
      Array.isArray(parsed.data.value) ? parsed.data.value : [parsed.data.value],
    );
    const at = `${clausePath(path)}.${parsed.data.path}`;
    const expected = Array.isArray(parsed.data.value)
      ? `one of ${shown(parsed.data.value)}`
      : shown(parsed.data.value);
    const matches = (event: CloudEvent) => {
      for (const found of valuesAt(event.data, segments)) {
        if ((found === null || typeof found !== 'object') && wanted.has(found as Scalar)) return true;
      }
      return false;
    };
    return explainable(matches, (event) => {
      if (matches(event)) return { path: at, dialect: 'data', matched: true, message: `${at}: ${expected}` };
      const found = valuesAt(event.data, segments);
      const got =
        found.length === 0
          ? 'nothing is there'
          : `found ${found.length === 1 ? shown(found[0]) : shown(found.slice(0, 5))}${found.length > 5 ? ` and ${found.length - 5} more` : ''}`;
      return { path: at, dialect: 'data', matched: false, message: `${at}: wanted ${expected}, ${got}` };
    });
  },
};
