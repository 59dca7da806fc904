import { errorMessage } from '../errors.js';
import { explainFilter } from '../filters/explain.js';
import { redactUrl } from '../redact.js';
import type {
  ActionExplanation,
  DeliveryFate,
  EventExplanation,
  SubscriberVerdict,
  TriggerExplanation,
} from './explain-types.js';
import { idempotencyKey } from './idempotency.js';
import type { CompiledAction, CompiledTrigger } from './model.js';
import type { Router, SubscriberDirectory } from './router.js';
import type { Delivery, Store, StoredEvent } from './store.js';

/** Subscribers listed per action; the rest are counted. */
const SUBSCRIBERS_SHOWN = 200;
/** Deliveries of one event read for its explanation. */
const DELIVERIES_READ = 1000;

export interface ExplainContext {
  store: Store;
  triggers: readonly CompiledTrigger[];
  router: Router;
  subscribers?: SubscriberDirectory;
}

/**
 * Why an event did or did not notify: every trigger of the current config evaluated against it
 * (for a non-match, the clause that failed and the values compared), whom each matching action
 * plans to notify (and, for subscribers, whom it leaves out and why), and the fate of every
 * delivery recorded for it. Reads only; plans exactly as routing does, so what it says would
 * happen is what routing the event now would do.
 */
export async function explainEvent(
  context: ExplainContext,
  stored: StoredEvent,
  options: { recipient?: string } = {},
): Promise<EventExplanation> {
  const event = stored.event;
  const recorded = await context.store.deliveries.list({ limit: DELIVERIES_READ, eventSeq: stored.seq });
  const byKey = new Map(recorded.map((d) => [d.idempotencyKey, d]));
  const accounted = new Set<number>();
  const changes: string[] = [];
  const triggers: TriggerExplanation[] = [];
  for (const trigger of context.triggers) {
    const filter = explainFilter(trigger.matcher, event);
    const matchedWhenRouted = stored.routing ? stored.routing.matched.includes(trigger.name) : null;
    if (matchedWhenRouted !== null && matchedWhenRouted !== filter.matched) {
      changes.push(
        matchedWhenRouted
          ? `trigger ${trigger.name} matched when the event was routed and does not match now`
          : `trigger ${trigger.name} did not match when the event was routed and matches now`,
      );
    }
    const actions: ActionExplanation[] = [];
    if (filter.matched) {
      for (const action of trigger.actions) {
        const explained = await explainAction(context, trigger, action, stored);
        for (const r of explained.recipients) {
          if (r.delivery) accounted.add(r.delivery.id);
          else if (matchedWhenRouted)
            changes.push(
              `trigger ${trigger.name} action ${action.index} would notify ${r.recipient ?? '(no recipient)'} now; no delivery was recorded for it`,
            );
        }
        actions.push(explained);
      }
    }
    triggers.push({
      trigger: trigger.name,
      description: trigger.description ?? null,
      matched: filter.matched,
      matchedWhenRouted,
      filter,
      actions,
    });
  }
  for (const known of stored.routing?.matched ?? []) {
    if (!context.triggers.some((t) => t.name === known))
      changes.push(`trigger ${known} matched when the event was routed and is no longer in the config`);
  }
  const otherDeliveries = recorded.filter((d) => !accounted.has(d.id)).map(fateOf);
  for (const d of otherDeliveries)
    changes.push(
      `delivery ${d.id} (trigger ${d.trigger} action ${d.action} → ${d.recipient ?? '(no recipient)'}) is not planned by the current config`,
    );
  const explanation: EventExplanation = {
    event: {
      seq: stored.seq,
      id: event.id,
      source: event.source,
      type: event.type,
      subject: typeof event.subject === 'string' ? event.subject : null,
      receivedAt: stored.receivedAt,
      routedAt: stored.routedAt,
    },
    evaluatedAgainst: 'current-config',
    note: noteFor(stored, changes),
    configChanges: changes,
    recipient: null,
    matched: triggers.filter((t) => t.matched).map((t) => t.trigger),
    triggers,
    otherDeliveries,
  };
  return options.recipient === undefined ? explanation : narrowTo(explanation, options.recipient);

  async function explainAction(
    ctx: ExplainContext,
    trigger: CompiledTrigger,
    action: CompiledAction,
    s: StoredEvent,
  ): Promise<ActionExplanation> {
    const out: ActionExplanation = {
      index: action.index,
      channel: action.channel,
      to:
        action.to.kind === 'subscribers'
          ? { kind: 'subscribersOf', key: null, where: action.to.where?.source ?? null }
          : { kind: action.to.kind },
      recipients: [],
      error: null,
    };
    let planned: { recipient: string | null; subscriber: string | null }[];
    try {
      if (action.to.kind === 'subscribers' && ctx.subscribers?.explainRecipients) {
        const key = action.to.key.render({ event: s.event });
        if (out.to.kind === 'subscribersOf') out.to.key = key;
        const verdicts = await ctx.subscribers.explainRecipients(
          key,
          action.to.where,
          action.channel,
          s.event,
        );
        planned = verdicts.filter((v) => v.included).map((v) => ({ recipient: v.address, subscriber: v.id }));
        out.subscribers = verdicts.slice(0, SUBSCRIBERS_SHOWN).map(redactVerdict);
        if (verdicts.length > SUBSCRIBERS_SHOWN) out.moreSubscribers = verdicts.length - SUBSCRIBERS_SHOWN;
      } else {
        planned = (await ctx.router.recipients(action, s.event)).map((recipient) => ({
          recipient,
          subscriber: null,
        }));
      }
    } catch (err) {
      out.error = errorMessage(err);
      return out;
    }
    for (const p of planned) {
      const key = idempotencyKey(trigger.name, action.index, p.recipient, s.event.source, s.event.id);
      const delivery = byKey.get(key);
      out.recipients.push({
        recipient: p.recipient === null ? null : redactUrl(p.recipient),
        subscriber: p.subscriber,
        delivery: delivery ? fateOf(delivery) : null,
      });
    }
    return out;
  }
}

function redactVerdict(v: SubscriberVerdict): SubscriberVerdict {
  return v.address === null ? v : { ...v, address: redactUrl(v.address) };
}

/** What became of a delivery, in one line and as fields. */
export function fateOf(d: Delivery): DeliveryFate {
  const attempts = `${d.attempts} attempt${d.attempts === 1 ? '' : 's'}`;
  let fate: DeliveryFate['fate'];
  let summary: string;
  if (d.status === 'delivered') {
    fate = 'delivered';
    summary = `delivered${d.attempts > 1 ? ` after ${attempts}` : ''}${d.remoteId ? ` (remote id ${d.remoteId})` : ''}`;
  } else if (d.status === 'dead') {
    fate = 'dead';
    summary = `dead-lettered after ${attempts}: ${d.lastError ?? 'no reason recorded'}`;
  } else if (d.status === 'suppressed') {
    fate = 'suppressed';
    summary = `suppressed: ${d.lastError ?? 'no reason recorded'}`;
  } else if (d.attempts === 0) {
    fate = 'pending';
    summary = `pending: first attempt due ${new Date(d.nextAttemptAt).toISOString()}${d.note ? `, ${d.note}` : ''}`;
  } else {
    fate = 'retrying';
    summary = `retrying: ${attempts} of ${d.maxAttempts} failed (${d.lastError ?? 'no reason recorded'}); next attempt ${new Date(d.nextAttemptAt).toISOString()}`;
  }
  return {
    id: d.id,
    trigger: d.trigger,
    action: d.action,
    channel: d.channel,
    recipient: d.recipient === null ? null : redactUrl(d.recipient),
    status: d.status,
    fate,
    summary,
    attempts: d.attempts,
    maxAttempts: d.maxAttempts,
    lastError: d.lastError,
    note: d.note,
    nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt : null,
    remoteId: d.remoteId,
    updatedAt: d.updatedAt,
  };
}

function noteFor(stored: StoredEvent, changes: string[]): string {
  if (stored.routedAt === null) return 'Evaluated against the current config; the event is not routed yet.';
  const when = new Date(stored.routedAt).toISOString();
  return changes.length === 0
    ? `Evaluated against the current config. The event was routed at ${when}; the current config routes it the same way, as far as its routing record tells.`
    : `Evaluated against the current config, which routes this event differently from the config that routed it at ${when} (see configChanges).`;
}

/** The explanation narrowed to one recipient (an address, or a subscriber's id or name), with a verdict. */
function narrowTo(explanation: EventExplanation, name: string): EventExplanation {
  const verdict: string[] = [];
  const triggers = explanation.triggers.map((t) => {
    const actions = t.actions.map((a) => {
      const where = `trigger ${t.trigger} action ${a.index} (${a.channel})`;
      const subscribers = a.subscribers?.filter(
        (s) => s.id === name || s.name === name || s.address === name,
      );
      const ids = new Set(subscribers?.map((s) => s.id));
      const recipients = a.recipients.filter(
        (r) =>
          r.recipient === name || (r.subscriber !== null && (r.subscriber === name || ids.has(r.subscriber))),
      );
      for (const r of recipients)
        verdict.push(
          `${where} notifies ${name}: ${r.delivery ? r.delivery.summary : 'no delivery recorded'}`,
        );
      for (const s of subscribers ?? [])
        if (!s.included) verdict.push(`${where} leaves ${name} out: ${s.reason}`);
      if (a.error) verdict.push(`${where} could not plan its recipients: ${a.error}`);
      return { ...a, recipients, ...(subscribers ? { subscribers } : {}) };
    });
    return { ...t, actions };
  });
  const otherDeliveries = explanation.otherDeliveries.filter((d) => d.recipient === name);
  for (const d of otherDeliveries)
    verdict.push(`delivery ${d.id} (trigger ${d.trigger}, no longer planned) to ${name}: ${d.summary}`);
  if (verdict.length === 0) {
    verdict.push(
      explanation.matched.length === 0
        ? `no trigger matches this event, so it notifies nobody`
        : `none of the matching triggers (${explanation.matched.join(', ')}) plans to notify ${name}`,
    );
  }
  return { ...explanation, recipient: { name, verdict }, triggers, otherDeliveries };
}
