import { errorMessage } from '../errors.js';
import { followUpDraft, nextHop } from '../events/hops.js';
import { validateEvent } from '../events/index.js';
import type { CloudEvent } from '../events/types.js';
import { renderTree, type TemplateTree } from '../templates/index.js';
import type { Delivery } from './store.js';
import { type ChannelResult, failed, retry } from './types.js';

/** Same limit as the emit channel's default: a chain of follow-ups longer than this is a loop. */
const MAX_FOLLOW_UP_HOPS = 16;

/**
 * Emits an action's `followUp` event before the delivery is recorded as delivered, and says what
 * the attempt's result is then. Its id comes from the delivery, so a crash in between (the action
 * is redone) cannot emit it twice. `emit` appends to the log and resolves when the events are durable.
 */
export async function emitFollowUp(
  template: TemplateTree,
  delivery: Delivery,
  event: CloudEvent,
  result: ChannelResult & { outcome: 'delivered' },
  emit: ((events: CloudEvent[]) => Promise<void>) | undefined,
): Promise<ChannelResult> {
  if (nextHop(event) > MAX_FOLLOW_UP_HOPS) {
    return failed(
      `followUp: hop limit of ${MAX_FOLLOW_UP_HOPS} reached after event ${event.id} (${event.type})`,
    );
  }
  let next: CloudEvent;
  try {
    const rendered = renderTree(template, {
      event,
      recipient: delivery.recipient,
      result: result.rendered,
    });
    next = validateEvent(
      followUpDraft(event, rendered as Record<string, unknown>, {
        id: `${delivery.idempotencyKey}-next`,
        source: `herald://follow-up/${delivery.trigger}`,
        inheritData: true,
      }),
    );
  } catch (err) {
    return failed(`followUp: the follow-up event is invalid: ${errorMessage(err)}`, result.rendered);
  }
  if (!emit) return failed('followUp: events are not available here', result.rendered);
  try {
    await emit([next]);
  } catch (err) {
    return retry(
      `followUp: could not append the follow-up event: ${errorMessage(err)}`,
      undefined,
      result.rendered,
    );
  }
  return result;
}
