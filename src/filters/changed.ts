import { z } from 'zod';
import type { CloudEvent } from '../events/types.js';
import { valuesAt } from './data.js';
import { clausePath, explainable } from './explain.js';
import { FilterCompileError, type FilterDialect } from './types.js';

const schema = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/**
 * `changed` matches a change event (Debezium's envelope: `data.before` / `data.after`) when any of
 * the named fields differs between before and after — a price change, a status change. Inserts
 * and deletes (one side null) do not match: nothing changed, a row appeared or went.
 */
export const changedDialect: FilterDialect = {
  name: 'changed',
  description:
    'A row change (data.before → data.after, Debezium’s envelope) where any of the named fields (dot paths) differs.',
  schema,
  compile(value, path) {
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new FilterCompileError(path, 'expected a field name or a list of field names');
    const names = Array.isArray(parsed.data) ? parsed.data : [parsed.data];
    const fields = names.map((f) => f.split('.'));
    const at = clausePath(path);
    const matches = (event: CloudEvent) => {
      const data = event.data as { before?: unknown; after?: unknown } | undefined;
      if (!data || typeof data !== 'object' || !data.before || !data.after) return false;
      for (const segments of fields) {
        const before = JSON.stringify(valuesAt(data.before, segments));
        const after = JSON.stringify(valuesAt(data.after, segments));
        if (before !== after) return true;
      }
      return false;
    };
    return explainable(matches, (event) => {
      if (matches(event))
        return { path: at, dialect: 'changed', matched: true, message: `${at}: ${names.join(', ')} changed` };
      const data = event.data as { before?: unknown; after?: unknown } | undefined;
      const message =
        !data || typeof data !== 'object' || !data.before || !data.after
          ? `${at}: not a row change (the event's data has no before and after)`
          : `${at}: ${names.join(', ')} did not change`;
      return { path: at, dialect: 'changed', matched: false, message };
    });
  },
};
