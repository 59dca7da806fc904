/**
 * The answers of the admin API (`/api/...`) as they travel in JSON: the routes in admin.ts and
 * live.ts are typed with them, and the dashboard (web/src/api.ts) imports them at build time, so
 * a change to an answer is a type error on both sides instead of a silent drift.
 *
 * Types only, and only from modules that are themselves types only (no Node, no runtime code):
 * the dashboard compiles this file for the browser.
 */

import type {
  ActionExplanation,
  DeliveryFate,
  DeliveryFateKind,
  EventExplanation,
  SubscriberVerdict,
  TriggerExplanation,
} from '../engine/explain-types.js';
import type {
  Attempt,
  Delivery,
  DeliveryStatus,
  InboxMessage,
  RoutingRecord,
  SourceDeadLetter,
  StoredEvent,
} from '../engine/store.js';
import type { CloudEvent } from '../events/types.js';
import type { CesqlStep, CesqlValue, FilterClause } from '../filters/explain-types.js';
import type { ProjectionRow, ViewList, ViewRowPage } from '../projections/api-types.js';
import type {
  Feed,
  FeedItem,
  KeySubscribers,
  PreferenceDefinition,
  Subscriber,
  SubscriberPage,
  SubscriberView,
  SubscriptionAdded,
} from '../subscriptions/api-types.js';

export type {
  ActionExplanation,
  Attempt,
  CesqlStep,
  CesqlValue,
  CloudEvent,
  Delivery,
  DeliveryFate,
  DeliveryFateKind,
  DeliveryStatus,
  EventExplanation,
  Feed,
  FeedItem,
  FilterClause,
  InboxMessage,
  KeySubscribers,
  PreferenceDefinition,
  ProjectionRow,
  RoutingRecord,
  SourceDeadLetter,
  StoredEvent,
  Subscriber,
  SubscriberPage,
  SubscriberVerdict,
  SubscriberView,
  SubscriptionAdded,
  TriggerExplanation,
  ViewList,
  ViewRowPage,
};

/** The JSON body of every error Herald answers: a message a person can act on, and a stable code. */
export interface ErrorBody {
  error: string;
  code: string;
  attribute?: string;
  /** Where in the JSON a limit was passed, e.g. `data.items[0][0]…`. */
  path?: string;
  /** The limit that was passed. */
  limit?: number;
  details?: unknown;
}

/** `POST /events` with one event (structured or binary mode), and an `http` source route's answer. */
export interface EventAccepted {
  id: string;
  /** The log already held an event with this source and id: it was not stored again. */
  duplicate: boolean;
}

/** `POST /events` with a batch (`application/cloudevents-batch+json`). */
export interface BatchAccepted {
  accepted: number;
  duplicates: number;
}

/** A page of a list, newest first; `next` is the `before` cursor of the following page, null at the end. */
interface Page {
  next: number | null;
}

/** `GET /api/events`. */
export interface EventPage extends Page {
  events: StoredEvent[];
  /** With `sql`: events read for this page (a filtered scan stops at a budget; follow `next`). */
  scanned?: number;
}

/** A delivery with every attempt made: `GET /api/deliveries/:id`, and in an event's detail. */
export interface DeliveryDetail extends Delivery {
  attemptLog: Attempt[];
}

/** `GET /api/events/:id` and `GET /api/events/by-seq/:seq`. */
export interface EventDetail extends StoredEvent {
  deliveries: DeliveryDetail[];
}

/** `GET /api/deliveries`. */
export interface DeliveryPage extends Page {
  deliveries: Delivery[];
}

/** `GET /api/dlq`: dead deliveries. */
export interface DeadLetterPage extends Page {
  deadLetters: Delivery[];
  total: number;
}

/** `GET /api/dlq?source=`: messages a stream source set aside. */
export interface SourceDeadLetterPage extends Page {
  source: string;
  sourceDeadLetters: SourceDeadLetter[];
  total: number;
}

/**
 * `POST /api/dlq/:id/replay` (body `{ asRecorded?: boolean }`): the ids made pending again and
 * how: `re-rendered` (recipient planned again from the current config; `from`/`to` when that
 * changed it) or `as-recorded` (retried to the recipient it was planned for). A 409 says why a
 * delivery cannot be re-rendered.
 */
export interface DeadLetterReplay {
  replayed: number[];
  mode: 're-rendered' | 'as-recorded';
  message: string;
  from?: { channel: string; recipient: string | null };
  to?: { channel: string; recipient: string | null }[];
}

/** `POST /api/dlq/replay` (by filter, and `asRecorded`): dead letters that could not be re-rendered are `skipped`. */
export interface DeadLetterFilterReplay {
  replayed: number;
  ids: number[];
  mode: 're-rendered' | 'as-recorded';
  skipped: { id: number; reason: string }[];
}

/** `POST /api/dlq/source/:id/replay`: the events the source made again, as ingest answered for each. */
export interface SourceDeadLetterReplay {
  replayed: number;
  events: { id: string; source: string; duplicate: boolean }[];
}

/** `GET /api/inbox`. */
export interface InboxMessagePage extends Page {
  messages: InboxMessage[];
}

/** `GET /api/config`: the config file with its secrets redacted. */
export interface ConfigView {
  file: string | null;
  store: string;
  config: unknown;
}

/** The engine's lifecycle: `GET /api/status` and `/api/health` say where it is. */
export type EngineStateName = 'created' | 'running' | 'stopping' | 'stopped';

/** `GET /api/status`. */
export interface Status {
  state: EngineStateName;
  store: string;
  events: number;
  deliveries: Record<DeliveryStatus, number>;
  deadLetters: number;
  /** Messages stream sources set aside (`/api/dlq?source=`). */
  sourceDeadLetters: number;
  /** Sends to channels running now; attempts whose outcome waits to be written are not counted. */
  inFlight: number;
  channels: { name: string; kind: string; fallback: string | null }[];
  sources: { name: string; kind: string }[];
  triggers: { name: string; description: string | null; actions: string[] }[];
}

export interface AttemptCounts {
  delivered: number;
  retry: number;
  failed: number;
}

/** `GET /api/health`. */
export interface Health {
  state: EngineStateName;
  store: { kind: string; ok: boolean; detail: string | null };
  bus: { kind: string; ok: boolean; state: string; detail: string };
  uptimeMs: number;
  ingestBacklog: number;
  inFlight: number;
  watchers: number;
  /** Null while the store does not answer. */
  deliveries: Record<DeliveryStatus, number> | null;
  deadLetters: number | null;
  lagMs: number | null;
  eventsLastMinute: number;
  sources: { name: string; kind: string; status: string; detail: string | null }[];
  channels: {
    name: string;
    kind: string;
    fallback: string | null;
    status: 'idle' | 'ok' | 'failing';
    lastMinute: AttemptCounts;
    total: AttemptCounts;
    lastAttempt: { outcome: string; error: string | null; at: number } | null;
  }[];
  eventSources: { source: string; lastMinute: number; total: number; lastEventAt: number | null }[];
}

/** `GET /api/stream`, event `ready`: sent once when the stream opens. */
export interface LiveReady {
  watchers: number;
}

/** `GET /api/stream`, event `event`: a routed event and which triggers matched. */
export interface LiveEvent {
  seq: number;
  receivedAt: number;
  routedAt: number | null;
  event: CloudEvent;
  routing: RoutingRecord;
}

/** `GET /api/stream`, event `delivery`: a delivery's attempt finished (delivered / retrying / dead). */
export interface LiveDelivery {
  id: number;
  eventSeq: number;
  trigger: string;
  channel: string;
  status: DeliveryStatus;
  attempts: number;
  outcome: 'delivered' | 'retry' | 'failed';
  error: string | null;
}
