import { errorMessage, HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';

/**
 * Whether ingest refused the events for something about them (a 4xx HeraldError: invalid, too
 * large, not storable), so trying again cannot help. Anything else — the store is unavailable,
 * Herald is shutting down, an error of unknown kind — is an outage: the message is held back,
 * not acknowledged, and tried again.
 */
export function rejectsEvent(err: unknown): err is HeraldError {
  return err instanceof HeraldError && err.status >= 400 && err.status < 500;
}

/**
 * Ingests the events of `items` in order. When ingest refuses a batch for a reason of its events,
 * the batch is halved until the items at fault are found: those come back with the reason, and
 * every other item's events are stored. An outage is thrown as is; the caller holds the whole
 * batch back (what was stored meanwhile is deduplicated when it comes again).
 */
export async function ingestIsolating<T>(
  items: readonly T[],
  eventsOf: (item: T) => CloudEvent[],
  ingest: (events: CloudEvent[]) => Promise<unknown>,
): Promise<{ item: T; reason: string }[]> {
  const rejected: { item: T; reason: string }[] = [];
  const run = async (slice: readonly T[]): Promise<void> => {
    const events = slice.flatMap(eventsOf);
    if (events.length === 0) return;
    try {
      await ingest(events);
    } catch (err) {
      if (!rejectsEvent(err)) throw err;
      if (slice.length === 1) {
        rejected.push({ item: slice[0]!, reason: errorMessage(err) });
        return;
      }
      const middle = slice.length >> 1;
      await run(slice.slice(0, middle));
      await run(slice.slice(middle));
    }
  };
  await run(items);
  return rejected;
}
