import { createHash } from 'node:crypto';

/**
 * The idempotency key of a delivery: the same (trigger, action, recipient, event source + id)
 * always gives the same key, across retries, restarts and processes. Sinks use it to drop repeats
 * (it is the Standard Webhooks `webhook-id`).
 */
export function idempotencyKey(
  trigger: string,
  action: number,
  recipient: string | null,
  eventSource: string,
  eventId: string,
): string {
  const hash = createHash('sha256')
    .update(trigger)
    .update('\u0000')
    .update(String(action))
    .update('\u0000')
    .update(recipient ?? '')
    .update('\u0000')
    .update(eventSource)
    .update('\u0000')
    .update(eventId)
    .digest('base64url');
  return `msg_${hash.slice(0, 32)}`;
}
