import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import type { FilterEvaluationError } from '../filters/types.js';
import type { SubscriberVerdict } from './explain-types.js';
import { idempotencyKey } from './idempotency.js';
import type { CompiledAction, CompiledTrigger, PreferencePredicate } from './model.js';
import { type NotificationTiming, notificationTiming } from './notification-timing.js';
import type { PlannedRecipient, RecipientSubscriber } from './recipient-scope.js';
import type { NewDelivery, PlannedRouting, RoutingRecord, Store, StoredEvent } from './store.js';
import { TriggerIndex } from './trigger-index.js';

/**
 * Finds who subscribed to a key (`product:42`), for `to: { subscribersOf }` actions. Provided by
 * the subscriptions area; absent when the config uses no subscriptions.
 */
export interface SubscriberDirectory {
  /**
   * The key's subscribers matching `where` that have an address for `channel` (a Slack user id, an
   * email…): each address, with the subscriber (preferences with defaults applied) for key templates.
   */
  recipientsOf(
    key: string,
    where: PreferencePredicate | undefined,
    channel: string,
    event: CloudEvent,
    /** Told of each subscriber `where` leaves out, and why (the preference that muted them). */
    onMuted?: (subscriber: { id: string; name: string | null }, reason: string) => void,
  ): Promise<{ address: string; subscriber: RecipientSubscriber }[]>;
  /**
   * Every subscriber of the key, each with the address `recipientsOf` would give and, for those it
   * leaves out, why (a preference, no address for the channel). For explain; the included ones'
   * addresses are exactly `recipientsOf`'s answer.
   */
  explainRecipients?(
    key: string,
    where: PreferencePredicate | undefined,
    channel: string,
    event: CloudEvent,
  ): Promise<SubscriberVerdict[]>;
}

export interface RouterHooks {
  onRouted?(event: StoredEvent, record: RoutingRecord): void;
  onFilterError?(trigger: string, error: FilterEvaluationError): void;
}

export interface RoutedBatch {
  deliveries: number;
  channels: Set<string>;
}

/** Matches events against triggers and plans one delivery per action × recipient. */
export class Router {
  private readonly index: TriggerIndex;

  constructor(
    private readonly store: Store,
    triggers: CompiledTrigger[],
    readonly _logger: Logger,
    private readonly hooks: RouterHooks = {},
    private readonly subscribers?: SubscriberDirectory,
  ) {
    this.index = new TriggerIndex(triggers);
  }

  /** Routes up to `limit` unrouted events from the log, in order. Returns what it planned. */
  async routePending(limit: number, now = Date.now()): Promise<{ events: number; planned: RoutedBatch }> {
    const events = await this.store.events.unrouted(limit);
    return { events: events.length, planned: await this.routeEvents(events, now) };
  }

  /**
   * Plans these events and commits deliveries and routed marks in one transaction. Routing an
   * event again plans the same idempotency keys, so nothing is planned twice.
   */
  async routeEvents(events: StoredEvent[], now = Date.now()): Promise<RoutedBatch> {
    if (events.length === 0) return { deliveries: 0, channels: new Set() };
    const channels = new Set<string>();
    const batch: { seq: number; record: RoutingRecord; deliveries: NewDelivery[] }[] = [];
    for (const stored of events) {
      const { record, deliveries } = await this.plan(stored, now);
      for (const d of deliveries) channels.add(d.channel);
      batch.push({ seq: stored.seq, record, deliveries });
    }
    // Routed-at is when the plan is committed, so receivedAt → routedAt measures the whole planning.
    const inserted = await this.store.routing.commit(batch, Date.now());
    for (let i = 0; i < events.length; i++) this.hooks.onRouted?.(events[i]!, batch[i]!.record);
    return { deliveries: inserted, channels };
  }

  /**
   * Plans events not stored yet, for a store that appends and routes in one transaction
   * (`appendRouted`): the plan does not depend on the seq, which the store fills in.
   */
  async planBeforeAppend(events: CloudEvent[], now = Date.now()): Promise<PlannedRouting[]> {
    const plans: PlannedRouting[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      plans[i] = await this.plan(
        { seq: 0, event: events[i]!, receivedAt: now, routedAt: null, routing: null },
        now,
      );
    }
    return plans;
  }

  async plan(
    stored: StoredEvent,
    now: number,
  ): Promise<{ record: RoutingRecord; deliveries: NewDelivery[] }> {
    const event = stored.event;
    const record: RoutingRecord = { matched: [], errors: [], deliveries: 0 };
    const deliveries: NewDelivery[] = [];
    const errors: FilterEvaluationError[] = [];
    // Triggers the event cannot match are left out unevaluated, which decides exactly what
    // evaluating them would (no match, no error): see TriggerIndex.
    for (const trigger of this.index.candidates(event)) {
      errors.length = 0;
      const matched = trigger.matcher(event, errors);
      for (const error of errors) {
        record.errors.push({ trigger: trigger.name, ...error });
        this.hooks.onFilterError?.(trigger.name, error);
      }
      if (!matched || errors.length > 0) continue;
      record.matched.push(trigger.name);
      for (const action of trigger.actions) {
        let recipients: PlannedRecipient[];
        try {
          recipients = await this.plannedRecipients(action, event, (who, reason) =>
            noteMuted(record, trigger.name, action.index, who, reason),
          );
        } catch (err) {
          record.errors.push({
            trigger: trigger.name,
            dialect: 'to',
            kind: 'recipient',
            message: errorMessage(err),
          });
          continue;
        }
        for (const planned of recipients) {
          const recipient = planned.address;
          let timing: NotificationTiming;
          try {
            timing = action.notify
              ? notificationTiming(action.notify, trigger.name, action.index, event, planned, now)
              : { notBefore: now };
          } catch (err) {
            // A key that cannot be rendered must not turn into a flood or a silent drop: the
            // delivery goes out unkeyed, and the routing record says why.
            record.errors.push({
              trigger: trigger.name,
              dialect: 'notify',
              kind: 'key',
              message: errorMessage(err),
            });
            timing = { notBefore: now };
          }
          const { warnings, ...decided } = timing;
          for (const message of warnings ?? []) noteError(record, trigger.name, message);
          deliveries.push({
            eventSeq: stored.seq,
            trigger: trigger.name,
            action: action.index,
            channel: action.channel,
            recipient,
            idempotencyKey: idempotencyKey(trigger.name, action.index, recipient, event.source, event.id),
            maxAttempts: trigger.policy.maxAttempts,
            ...decided,
          });
        }
      }
    }
    record.deliveries = deliveries.length;
    return { record, deliveries };
  }

  /** Whom an action notifies for an event, as routing plans it (explain and replay plan the same way). */
  async recipients(action: CompiledAction, event: CloudEvent): Promise<(string | null)[]> {
    return (await this.plannedRecipients(action, event)).map((r) => r.address);
  }

  /** The recipients with the subscriber each one is, when known (for key templates). */
  async plannedRecipients(
    action: CompiledAction,
    event: CloudEvent,
    onMuted?: (subscriber: { id: string; name: string | null }, reason: string) => void,
  ): Promise<PlannedRecipient[]> {
    const to = action.to;
    if (to.kind === 'none') return [{ address: null }];
    const scope = { event };
    if (to.kind === 'list') {
      const out = new Set<string>();
      for (const t of to.templates) {
        // A template may render a comma-separated list ("a@x, b@y").
        for (const part of t.render(scope).split(',')) {
          const trimmed = part.trim();
          if (trimmed) out.add(trimmed);
        }
      }
      return [...out].map((address) => ({ address }));
    }
    if (!this.subscribers)
      throw new Error('`subscribersOf` needs subscriptions, which this Herald does not run');
    const key = to.key.render(scope);
    return this.subscribers.recipientsOf(key, to.where, action.channel, event, onMuted);
  }
}

/** Most notification warnings one event's routing record keeps; the rest are counted. */
const MAX_NOTIFY_WARNINGS = 50;

/**
 * A warning of a key that still let the delivery through (a quiet-hours zone that is not one):
 * recorded once per trigger and text, since every subscriber of an action may hit the same one.
 */
function noteError(record: RoutingRecord, trigger: string, message: string): void {
  const warnings = record.errors.filter((e) => e.dialect === 'notify' && e.kind === 'quietHours');
  if (warnings.some((e) => e.trigger === trigger && e.message === message)) return;
  if (warnings.length >= MAX_NOTIFY_WARNINGS) return;
  record.errors.push({ trigger, dialect: 'notify', kind: 'quietHours', message });
}

/** Most muted subscribers one event's routing record names; the rest are counted. */
const MAX_MUTED = 50;

function noteMuted(
  record: RoutingRecord,
  trigger: string,
  action: number,
  who: { id: string; name: string | null },
  reason: string,
): void {
  record.muted ??= [];
  if (record.muted.length >= MAX_MUTED) {
    record.mutedMore = (record.mutedMore ?? 0) + 1;
    return;
  }
  record.muted.push({ trigger, action, subscriber: who.name ? `${who.name} (${who.id})` : who.id, reason });
}
