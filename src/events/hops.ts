import type { CloudEvent } from './types.js';

/** The extension that counts how many times an event has been re-emitted (emit channel, followUp, jobs). */
export const HOPS_EXTENSION = 'heraldhops';

/** The hop count of an event emitted because of `parent` (a missing or bad count counts as 0). */
export function nextHop(parent: CloudEvent): number {
  const previous = Number(parent[HOPS_EXTENSION] ?? 0);
  return (Number.isInteger(previous) && previous >= 0 ? previous : 0) + 1;
}

/**
 * A follow-up event before validation: `id` and `source` defaults, the time, the parent's data
 * unless `fields` set their own (and `inheritData` is on), the given fields, and the hop count.
 */
export function followUpDraft(
  parent: CloudEvent,
  fields: Record<string, unknown>,
  defaults: { id: string; source: string; inheritData: boolean },
): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: defaults.id,
    source: defaults.source,
    ...(defaults.inheritData
      ? {
          time: new Date().toISOString(),
          ...(parent.data !== undefined
            ? { data: parent.data, datacontenttype: parent.datacontenttype ?? 'application/json' }
            : {}),
        }
      : {}),
    ...fields,
    [HOPS_EXTENSION]: nextHop(parent),
  };
}
