import { hash } from 'node:crypto';

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
  // One call over the joined parts: the same bytes as hashing them one by one with the NUL
  // separators (keys already stored stay valid), without a Hash object per delivery.
  const digest = hash(
    'sha256',
    `${trigger}\u0000${action}\u0000${recipient ?? ''}\u0000${eventSource}\u0000${eventId}`,
    'base64url',
  );
  return `msg_${digest.slice(0, 32)}`;
}
