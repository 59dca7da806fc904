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

type Plan = { record: RoutingRecord; deliveries: NewDelivery[] };
type Muted = (subscriber: { id: string; name: string | null }, reason: string) => void;

/** What the subscriber directory answered for one action of one event, looked up before planning. */
type LookedUp =
  | { recipients: readonly PlannedRecipient[]; muted: [{ id: string; name: string | null }, string][] }
  | { error: unknown };

/** A filter's verdict on one event: whether it matched, and what evaluating it reported. */
type Verdict = { matched: boolean; errors: readonly FilterEvaluationError[] };

/**
 * What planning an event learnt before assembling the plan: the directory's answers, and the
 * verdicts of the filters evaluated to know whom to ask, which assembling takes as they are.
 */
interface Lookups {
  recipients: Map<CompiledAction, LookedUp>;
  verdicts: Map<CompiledTrigger, Verdict>;
}

/** Matches events against triggers and plans one delivery per action × recipient. */
export class Router {
  private readonly index: TriggerIndex;
  /** Triggers with an action addressed to a key's subscribers, which the directory answers. */
  private readonly askDirectory: ReadonlySet<CompiledTrigger>;

  constructor(
    private readonly store: Store,
    triggers: CompiledTrigger[],
    readonly _logger: Logger,
    private readonly hooks: RouterHooks = {},
    private readonly subscribers?: SubscriberDirectory,
  ) {
    this.index = new TriggerIndex(triggers);
    this.askDirectory = new Set(triggers.filter((t) => t.actions.some((a) => a.to.kind === 'subscribers')));
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
      const planned = this.planNow(stored, now);
      const { record, deliveries } = planned instanceof Promise ? await planned : planned;
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
      const planned = this.planNow(
        { seq: 0, event: events[i]!, receivedAt: now, routedAt: null, routing: null },
        now,
      );
      plans[i] = planned instanceof Promise ? await planned : planned;
    }
    return plans;
  }

  /**
   * The event's plan: at once, unless a trigger it matches addresses a key's subscribers; then
   * once the directory has answered. Most events need no lookup, and planning them allocates no
   * promise (routing a batch of 100 is 100 plans).
   */
  private planNow(stored: StoredEvent, now: number): Plan | Promise<Plan> {
    // Triggers the event cannot match are left out unevaluated, which decides exactly what
    // evaluating them would (no match, no error): see TriggerIndex.
    const candidates = this.index.candidates(stored.event);
    if (this.askDirectory.size > 0)
      for (const trigger of candidates)
        if (this.askDirectory.has(trigger))
          return this.lookUp(candidates, stored.event).then((found) =>
            this.assemble(stored, now, candidates, found),
          );
    return this.assemble(stored, now, candidates, null);
  }

  /**
   * Asks the directory for the subscribers of every subscriber action of the matching triggers,
   * one after another in plan order, keeping each such filter's verdict for `assemble`.
   */
  private async lookUp(candidates: readonly CompiledTrigger[], event: CloudEvent): Promise<Lookups> {
    const found: Lookups = { recipients: new Map(), verdicts: new Map() };
    for (const trigger of candidates) {
      if (!this.askDirectory.has(trigger)) continue;
      const errors: FilterEvaluationError[] = [];
      const matched = trigger.matcher(event, errors);
      found.verdicts.set(trigger, { matched, errors });
      if (!matched || errors.length > 0) continue;
      for (const action of trigger.actions) {
        if (action.to.kind !== 'subscribers') continue;
        const muted: [{ id: string; name: string | null }, string][] = [];
        try {
          const recipients = await this.plannedRecipients(action, event, (who, reason) =>
            muted.push([who, reason]),
          );
          found.recipients.set(action, { recipients, muted });
        } catch (error) {
          found.recipients.set(action, { error });
        }
      }
    }
    return found;
  }

  private assemble(
    stored: StoredEvent,
    now: number,
    candidates: readonly CompiledTrigger[],
    found: Lookups | null,
  ): Plan {
    const event = stored.event;
    const record: RoutingRecord = { matched: [], errors: [], deliveries: 0 };
    const deliveries: NewDelivery[] = [];
    // Reused across triggers: the plan of an event that asks no directory allocates no array per filter.
    const errors: FilterEvaluationError[] = [];
    for (const trigger of candidates) {
      let matched: boolean;
      let reported: readonly FilterEvaluationError[];
      const verdict = found?.verdicts.get(trigger);
      if (verdict) ({ matched, errors: reported } = verdict);
      else {
        errors.length = 0;
        matched = trigger.matcher(event, errors);
        reported = errors;
      }
      for (const error of reported) {
        record.errors.push({ trigger: trigger.name, ...error });
        this.hooks.onFilterError?.(trigger.name, error);
      }
      if (!matched || reported.length > 0) continue;
      record.matched.push(trigger.name);
      for (const action of trigger.actions) {
        let recipients: readonly PlannedRecipient[];
        try {
          recipients = recipientsNow(action, event, found, (who, reason) =>
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
          const decided = action.notify
            ? this.timed(action.notify, trigger.name, action.index, event, planned, now, record)
            : { notBefore: now };
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

  /** When a delivery of an action with notification rules goes, and its keys; warnings go to the record. */
  private timed(
    rules: NonNullable<CompiledAction['notify']>,
    trigger: string,
    action: number,
    event: CloudEvent,
    planned: PlannedRecipient,
    now: number,
    record: RoutingRecord,
  ): Omit<NotificationTiming, 'warnings'> {
    let timing: NotificationTiming;
    try {
      timing = notificationTiming(rules, trigger, action, event, planned, now);
    } catch (err) {
      // A key that cannot be rendered must not turn into a flood or a silent drop: the
      // delivery goes out unkeyed, and the routing record says why.
      record.errors.push({ trigger, dialect: 'notify', kind: 'key', message: errorMessage(err) });
      return { notBefore: now };
    }
    const { warnings, ...decided } = timing;
    for (const message of warnings ?? []) noteError(record, trigger, message);
    return decided;
  }

  /** Whom an action notifies for an event, as routing plans it (explain and replay plan the same way). */
  async recipients(action: CompiledAction, event: CloudEvent): Promise<(string | null)[]> {
    return (await this.plannedRecipients(action, event)).map((r) => r.address);
  }

  /** The recipients with the subscriber each one is, when known (for key templates). */
  async plannedRecipients(
    action: CompiledAction,
    event: CloudEvent,
    onMuted?: Muted,
  ): Promise<readonly PlannedRecipient[]> {
    const to = action.to;
    if (to.kind !== 'subscribers') return listedRecipients(to, event);
    if (!this.subscribers)
      throw new Error('`subscribersOf` needs subscriptions, which this Herald does not run');
    const key = to.key.render({ event });
    return this.subscribers.recipientsOf(key, to.where, action.channel, event, onMuted);
  }
}

/** An action without `to`: one delivery, to whatever its channel's config names. */
const NO_ADDRESS: readonly PlannedRecipient[] = Object.freeze([Object.freeze({ address: null })]);

/** The recipients an action names itself: none (one delivery without one), or its list. */
function listedRecipients(
  to: Exclude<CompiledAction['to'], { kind: 'subscribers' }>,
  event: CloudEvent,
): readonly PlannedRecipient[] {
  if (to.kind === 'none') return NO_ADDRESS;
  const out = new Set<string>();
  for (const t of to.templates) {
    // A template may render a comma-separated list ("a@x, b@y").
    for (const part of t.render({ event }).split(',')) {
      const trimmed = part.trim();
      if (trimmed) out.add(trimmed);
    }
  }
  return [...out].map((address) => ({ address }));
}

/** An action's recipients while assembling a plan: listed ones now, subscribers as looked up. */
function recipientsNow(
  action: CompiledAction,
  event: CloudEvent,
  found: Lookups | null,
  onMuted: Muted,
): readonly PlannedRecipient[] {
  if (action.to.kind !== 'subscribers') return listedRecipients(action.to, event);
  const answer = found?.recipients.get(action);
  if (!answer) throw new Error(`the subscribers of action ${action.index} were not looked up`);
  if ('error' in answer) throw answer.error;
  for (const [who, reason] of answer.muted) onMuted(who, reason);
  return answer.recipients;
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
