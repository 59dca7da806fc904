import type { FilterClause } from '../filters/explain-types.js';
import type { DeliveryStatus } from './store.js';

// The answer of `GET /api/events/:id/explain` and `herald explain`. Types only: the admin API's
// answer types (src/server/api-types.ts) and the dashboard use them as they are.

/**
 * What became of a delivery: `pending` (not tried yet; a delayed one says when it is due, a held
 * one also why: `held until 07:00 Europe/Berlin`),
 * `retrying`, `delivered`, `dead`, or `suppressed` by a notification key, with the reason
 * (`deduped by key …`, `throttled: 5/1h for key …`, `replaced by event …`) in `summary`.
 */
export type DeliveryFateKind = 'pending' | 'retrying' | 'delivered' | 'dead' | 'suppressed';

export interface DeliveryFate {
  id: number;
  trigger: string;
  action: number;
  channel: string;
  recipient: string | null;
  status: DeliveryStatus;
  fate: DeliveryFateKind;
  /** One line, e.g. `dead after 3 attempts: slack error channel_not_found`. */
  summary: string;
  attempts: number;
  maxAttempts: number;
  lastError: string | null;
  /** Why its first attempt waits, e.g. `held until 07:00 Europe/Berlin` (quiet hours). */
  note: string | null;
  /** While pending: when the next attempt is due (epoch ms). */
  nextAttemptAt: number | null;
  remoteId: string | null;
  updatedAt: number;
}

/** A subscriber the action reaches, or one it leaves out and why. */
export interface SubscriberVerdict {
  id: string;
  name: string | null;
  /** The address the channel would use (Slack user id, email…); null when the subscriber has none. */
  address: string | null;
  included: boolean;
  /** Why the subscriber was left out, e.g. `muted by preference: notify_failures is false (where: notify_failures)`. */
  reason?: string;
  /** The `where` condition that excluded them, as written. */
  preference?: string;
}

/** Who an action plans to notify for the event, under the current config. */
export interface ActionExplanation {
  index: number;
  channel: string;
  /** How `to` is written: no recipient, a list of addresses, or the subscribers of a key. */
  to:
    | { kind: 'none' }
    | { kind: 'list' }
    | { kind: 'subscribersOf'; key: string | null; where: string | null };
  /** Each recipient planned now, with the delivery recorded for it (null: none recorded). */
  recipients: { recipient: string | null; subscriber: string | null; delivery: DeliveryFate | null }[];
  /** For `subscribersOf`: every subscriber of the key, included or not (the first 200). */
  subscribers?: SubscriberVerdict[];
  /** Subscribers of the key beyond those listed. */
  moreSubscribers?: number;
  /** The recipients could not be planned (a template failed, no subscriptions…). */
  error: string | null;
}

export interface TriggerExplanation {
  trigger: string;
  description: string | null;
  /** Whether its filter matches the event under the current config (cleanly: no evaluation error). */
  matched: boolean;
  /** Whether it matched when the event was routed (from the event's routing record); null if unrouted. */
  matchedWhenRouted: boolean | null;
  /** The filter clause by clause: for a non-match, the clause that failed and the values compared. */
  filter: FilterClause;
  /** For a matching trigger: each action and whom it plans to notify. */
  actions: ActionExplanation[];
}

/** `GET /api/events/:id/explain`: why an event did or did not notify, trigger by trigger. */
export interface EventExplanation {
  event: {
    seq: number;
    id: string;
    source: string;
    type: string;
    subject: string | null;
    receivedAt: number;
    routedAt: number | null;
  };
  /** Explain re-evaluates the config running now, not the one that routed the event. */
  evaluatedAgainst: 'current-config';
  /** Says so in words, and what it means for this event. */
  note: string;
  /**
   * Where the current config would route the event differently from how it was routed (triggers
   * that matched then and not now, deliveries it would plan that were not recorded…). Empty when
   * both agree, as far as the stored routing tells.
   */
  configChanges: string[];
  /** The recipient the answer is narrowed to (`?recipient=`), and what became of them. */
  recipient: { name: string; verdict: string[] } | null;
  /** Names of the triggers that match now. */
  matched: string[];
  triggers: TriggerExplanation[];
  /** Deliveries recorded for the event that the current config does not plan (a trigger or recipient changed). */
  otherDeliveries: DeliveryFate[];
}
