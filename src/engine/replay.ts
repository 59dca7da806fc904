import { errorMessage, HeraldError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { idempotencyKey } from './idempotency.js';
import type { CompiledTrigger } from './model.js';
import type { Router } from './router.js';
import type { Delivery, ReplannedDelivery, Store } from './store.js';

/** How a dead delivery was replayed, for the replay's answer. */
export interface DeadLetterReplayResult {
  /** The ids made pending: the replayed delivery first, then any recipient added to it. */
  replayed: number[];
  /**
   * `re-rendered`: recipient planned again from the current config (the message is always
   * rendered from it when sent). `as-recorded`: retried to the recipient it was planned for.
   */
  mode: 're-rendered' | 'as-recorded';
  /** What was done, in words. */
  message: string;
  /** Recipients before and after, when re-rendering changed them. */
  from?: { channel: string; recipient: string | null };
  to?: { channel: string; recipient: string | null }[];
}

export interface ReplayContext {
  store: Store;
  triggers: readonly CompiledTrigger[];
  router: Router;
}

const AS_RECORDED_HINT =
  'replay it as recorded instead (`herald dlq replay <id> --as-recorded`, or `asRecorded: true` in the request body) to retry the recipient it was planned for';

const shownRecipient = (recipient: string | null) =>
  recipient === null ? '(no recipient)' : redactUrl(recipient);

/**
 * Replays one dead delivery. By default it is planned again from the current config, as routing
 * would plan the event now: its action's recipients are rendered again (so a fixed
 * `${SALES_SLACK_CHANNEL}` is used), and the delivery is readdressed when its recipient is no
 * longer planned. `asRecorded` retries it to the recipient it was planned for. Either way the
 * message is rendered when it is sent, from the action in the current config.
 *
 * Throws a 409 HeraldError when re-rendering is not possible (the trigger or action is gone, the
 * recipients cannot be planned or are all served already), saying what to do instead.
 */
export async function replayDeadDelivery(
  context: ReplayContext,
  delivery: Delivery,
  options: { asRecorded?: boolean },
  now: number,
): Promise<DeadLetterReplayResult> {
  const name = `delivery ${delivery.id}`;
  const trigger = context.triggers.find((t) => t.name === delivery.trigger);
  const action = trigger?.actions.find((a) => a.index === delivery.action);
  if (options.asRecorded) {
    const replayed = await context.store.dlq.replay({ ids: [delivery.id] }, now);
    const missing = action
      ? ''
      : `; note: trigger "${delivery.trigger}" has no action ${delivery.action} in the current config, so its message cannot be rendered and the attempt fails again until it is restored`;
    return {
      replayed,
      mode: 'as-recorded',
      message: `${name} replayed as recorded, to ${shownRecipient(delivery.recipient)} on ${delivery.channel}${missing}`,
    };
  }
  if (!trigger || !action) {
    throw conflict(
      `${name} cannot be rendered again: ${trigger ? `trigger "${delivery.trigger}" has no action ${delivery.action}` : `trigger "${delivery.trigger}" is not`} in the current config. Restore it and replay, or ${AS_RECORDED_HINT} (its message is rendered from that action when sent, so it fails again while the action is missing)`,
    );
  }
  const stored = await context.store.events.get(delivery.eventSeq);
  if (!stored)
    throw conflict(`${name} cannot be rendered again: its event #${delivery.eventSeq} is not in the log`);
  let recipients: (string | null)[];
  try {
    recipients = await context.router.recipients(action, stored.event);
  } catch (err) {
    throw conflict(
      `${name}: the current config cannot plan its recipients (${errorMessage(err)}); ${AS_RECORDED_HINT}`,
    );
  }
  const plan = (recipient: string | null): ReplannedDelivery => ({
    channel: action.channel,
    recipient,
    idempotencyKey: idempotencyKey(
      trigger.name,
      action.index,
      recipient,
      stored.event.source,
      stored.event.id,
    ),
    maxAttempts: trigger.policy.maxAttempts,
  });
  const planned = [...new Set(recipients)].map(plan);
  const from = {
    channel: delivery.channel,
    recipient: delivery.recipient === null ? null : redactUrl(delivery.recipient),
  };
  const same = planned.find(
    (p) => p.idempotencyKey === delivery.idempotencyKey && p.channel === delivery.channel,
  );
  if (same) {
    const replayed = await context.store.dlq.replay({ ids: [delivery.id] }, now);
    return {
      replayed,
      mode: 're-rendered',
      message: `${name} re-rendered from the current config: still to ${shownRecipient(delivery.recipient)} on ${delivery.channel}; its message is rendered again when sent`,
    };
  }
  // The recipient is no longer planned: readdress the delivery to the recipients the current
  // config plans that this event has no delivery for yet.
  const existing = new Set(
    (await context.store.deliveries.list({ limit: 1000, eventSeq: delivery.eventSeq })).map(
      (d) => d.idempotencyKey,
    ),
  );
  const fresh = planned.filter(
    (p) => p.idempotencyKey === delivery.idempotencyKey || !existing.has(p.idempotencyKey),
  );
  if (fresh.length === 0) {
    const whom = planned.map((p) => shownRecipient(p.recipient)).join(', ') || 'nobody';
    throw conflict(
      `${name} cannot be rendered again: the current config plans ${whom} for it, and each of them has a delivery of this event already; ${AS_RECORDED_HINT}`,
    );
  }
  const [first, ...rest] = fresh;
  const replayed = await context.store.dlq.replayReplanned(delivery.id, first!, rest, now);
  if (replayed.length === 0)
    throw conflict(
      `${name} was not replayed: it is no longer in the dead-letter queue, or was readdressed meanwhile`,
    );
  const to = fresh.map((p) => ({
    channel: p.channel,
    recipient: p.recipient === null ? null : redactUrl(p.recipient),
  }));
  return {
    replayed,
    mode: 're-rendered',
    message: `${name} re-rendered from the current config: ${shownRecipient(delivery.recipient)} on ${delivery.channel} → ${to.map((t) => `${shownRecipient(t.recipient)} on ${t.channel}`).join(', ')}`,
    from,
    to,
  };
}

function conflict(message: string): HeraldError {
  return new HeraldError('REPLAY_CONFLICT', message);
}
