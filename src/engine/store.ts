import type { CloudEvent } from '../events/types.js';

/**
 * The Store: everything Herald keeps. One interface, grouped by noun with uniform verbs, and one
 * contract suite (`test/contracts/store.ts`) run against every implementation.
 * Every method that writes is one transaction; batch methods write their whole batch at once
 * (group commit) and are durable when their promise resolves.
 */
export interface Store {
  readonly kind: string;
  /** Applies pending schema migrations. Idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** Cheap liveness probe (used by /readyz and doctor). Throws when the store is unusable. */
  ping(): Promise<void>;
  events: EventLog;
  routing: RoutingStore;
  deliveries: DeliveryStore;
  dlq: DeadLetterStore;
  sourceDlq: SourceDeadLetterStore;
  inbox: InboxStore;
  kv: KeyValueStore;
  subscriptions: SubscriptionStore;
  projections: ProjectionStore;
  rateLimits: RateLimitStore;
}

/* -------------------------------------------------------------------- events */

export interface StoredEvent {
  /** Position in the log, strictly increasing in append order. */
  seq: number;
  event: CloudEvent;
  /** Epoch ms when Herald accepted it. */
  receivedAt: number;
  /** Epoch ms when the router handled it; null while unrouted. */
  routedAt: number | null;
  routing: RoutingRecord | null;
}

export interface RoutingRecord {
  /** Names of the triggers whose filter matched. */
  matched: string[];
  /** Filter evaluation errors (never thrown), per trigger. */
  errors: { trigger: string; dialect: string; kind: string; message: string }[];
  /** Deliveries planned for this event. */
  deliveries: number;
  /**
   * Subscribers a `subscribersOf` action left out because of their preferences (its `where`), with
   * the preference that muted them: the first 50; `mutedMore` counts the rest.
   */
  muted?: { trigger: string; action: number; subscriber: string; reason: string }[];
  mutedMore?: number;
}

export interface AppendResult {
  seq: number;
  /** Same (source, id) was already in the log; nothing was written for it. */
  duplicate: boolean;
}

export interface EventQuery {
  limit: number;
  /** Only events with seq < beforeSeq (paging backwards, newest first). */
  beforeSeq?: number;
  type?: string;
  source?: string;
  subject?: string;
}

/**
 * A write the store has committed but may not have made durable yet (the embedded store commits
 * on the event loop and syncs its log on a libuv thread). Whatever it wrote must not be
 * acknowledged, nor acted on outside the store, before `durable` resolves; `durable` rejects when
 * the commit cannot be made durable. Commits made later become durable no earlier.
 */
export interface Committed<T> {
  value: T;
  durable: Promise<void>;
}

/** What an append that stored its events already routed wrote. */
export interface RoutedAppend {
  results: AppendResult[];
  /** Deliveries inserted. */
  deliveries: number;
  /**
   * Optional (stores with `deliveries.leaseRouted`): the deliveries inserted pending and free of
   * notification keys, as stored. This process's dispatcher may lease them as they are, once
   * durable, instead of claiming them back from the store.
   */
  claimable?: Delivery[];
}

export interface EventLog {
  /**
   * Appends a batch in one transaction, deduplicating on (source, id) against the log and within
   * the batch. Results are in input order; a duplicate gets the seq of the event already stored.
   */
  append(events: CloudEvent[], receivedAt: number): Promise<AppendResult[]>;
  /**
   * Optional (single-writer stores): appends like `append` and, in the same transaction, stores
   * each new event already routed with its planned routing (the deliveries' `eventSeq` is filled
   * in). A duplicate gets no deliveries. One commit instead of two, and no read back to route.
   */
  appendRouted?(
    events: CloudEvent[],
    plans: PlannedRouting[],
    receivedAt: number,
    routedAt: number,
  ): Promise<RoutedAppend>;
  /**
   * Optional (stores whose commit comes before its durability): `append`, or with `routing`
   * `appendRouted`, answered at the commit, so the next batch may commit while this one waits to
   * be durable. Its deliveries are not claimable before then.
   */
  appendCommitted?(
    events: CloudEvent[],
    receivedAt: number,
    routing: { plans: PlannedRouting[]; routedAt: number } | null,
  ): Promise<Committed<RoutedAppend>>;
  get(seq: number): Promise<StoredEvent | null>;
  /** The events with these seqs, in one query, in seq order; seqs not in the log are left out. */
  getMany(seqs: number[]): Promise<StoredEvent[]>;
  /** The newest event with this id (and source, when given). */
  findById(id: string, source?: string): Promise<StoredEvent | null>;
  /** Newest first. */
  list(query: EventQuery): Promise<StoredEvent[]>;
  /** Oldest unrouted events first, up to `limit`. */
  unrouted(limit: number): Promise<StoredEvent[]>;
  /**
   * Up to `limit` events following the position `cursor` (0: the start of the log), in an order
   * no event can later be inserted into: every event not returned yet comes after `next`. The
   * projector follows the log with this and stores `next` as its cursor.
   *
   * A cursor is the seq of the last event read. SQLite has one writer, so seq order is commit
   * order. On PostgreSQL, appends from several processes commit in any order, so the position is
   * the event's (transaction id, seq) and only events of transactions older than every running
   * one are returned (see the PostgreSQL store); an event's transaction id never changes, so its
   * seq still names the position, and a cursor written before that existed stays valid.
   */
  readForProjection(cursor: number, limit: number): Promise<{ events: StoredEvent[]; next: number }>;
  count(): Promise<number>;
}

/* ------------------------------------------------------------------- routing */

export interface NewDelivery {
  eventSeq: number;
  trigger: string;
  /** Index of the action within its trigger. */
  action: number;
  channel: string;
  recipient: string | null;
  idempotencyKey: string;
  maxAttempts: number;
  /** Epoch ms of the first attempt. */
  notBefore: number;
  /** Why the first attempt waits (quiet hours): kept on the delivery as `note`. */
  note?: string;
  /** The action's dedupe, replace, throttle and digest keys, decided when the delivery is stored. */
  gates?: DeliveryGates;
}

/**
 * The notification keys of one planned delivery, rendered. The store decides them in the
 * transaction that stores the delivery (keys live in the store, shared by every process): a
 * delivery they suppress is stored with status `suppressed` and the reason in `lastError`.
 */
export interface DeliveryGates {
  /** The action the keys belong to: a key of one action never meets another action's. */
  scope: string;
  /** The triggering event's id, named in the reasons of deliveries it suppresses. */
  eventId: string;
  /** Epoch ms of the occurrence (when the event was routed); windows are measured in it. */
  at: number;
  /** Suppressed while an accepted delivery of the key is younger than the window. */
  dedupe?: { key: string; windowMs: number };
  /** A not yet due pending delivery of the key is suppressed in favour of this one. */
  replace?: { key: string };
  /** At most `limit` accepted deliveries of the key per `perMs`, counted from the first. */
  throttle?: { key: string; limit: number; perMs: number };
  /**
   * Joins the key's open digest delivery (still waiting, fewer than `max` events) instead of
   * becoming a message of its own; with none open, this delivery opens one (its `notBefore` is
   * the end of the window).
   */
  digest?: {
    key: string;
    windowMs: number;
    max: number;
    /** When the digest is due if this event fills it: now, or the end of quiet hours it falls in. */
    dueWhenFull?: number;
  };
}

/** The routing of one event planned before it is stored; its deliveries' `eventSeq` is ignored. */
export interface PlannedRouting {
  record: RoutingRecord;
  deliveries: NewDelivery[];
}

export interface RoutingStore {
  /**
   * In one transaction: inserts the deliveries (a delivery whose idempotency key exists is
   * skipped) and marks each event routed with its record. Returns the number inserted.
   */
  commit(
    batch: { seq: number; record: RoutingRecord; deliveries: NewDelivery[] }[],
    routedAt: number,
  ): Promise<number>;
}

/* ---------------------------------------------------------------- deliveries */

/**
 * pending: waiting or in flight; delivered: done; dead: in the dead-letter queue; suppressed: never
 * sent, because a notification key (dedupe, throttle, replace, digest) held it back — `lastError`
 * says why (a digested one is carried by its digest's delivery).
 */
export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead', 'suppressed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface Delivery {
  id: number;
  eventSeq: number;
  eventId: string;
  eventSource: string;
  eventType: string;
  trigger: string;
  action: number;
  channel: string;
  recipient: string | null;
  idempotencyKey: string;
  status: DeliveryStatus;
  attempts: number;
  maxAttempts: number;
  /** Epoch ms; meaningful while pending. */
  nextAttemptAt: number;
  lastError: string | null;
  /**
   * Why the first attempt was due when it was, decided when the delivery was planned: `held until
   * 07:00 Europe/Berlin` (quiet hours). Not an error: kept once sent; a DLQ replay, which sends
   * now, clears it.
   */
  note: string | null;
  remoteId: string | null;
  /** What the channel sent last (rendered message), for operators. */
  rendered: unknown;
  createdAt: number;
  updatedAt: number;
}

/** What a digest delivery collected (see `DeliveryGates.digest`). */
export interface DigestContents {
  key: string;
  eventSeqs: number[];
}

export interface Attempt {
  deliveryId: number;
  /** 1-based attempt number. */
  number: number;
  startedAt: number;
  durationMs: number;
  outcome: 'delivered' | 'retry' | 'failed';
  error: string | null;
  /** For retries: when the next attempt is due. */
  nextAttemptAt: number | null;
}

/** The outcome of one attempt, as the dispatcher records it. */
export interface AttemptOutcome {
  deliveryId: number;
  attempt: Attempt;
  /** The delivery's status after this attempt. */
  status: DeliveryStatus;
  /** Required when status is pending: when to try again. */
  nextAttemptAt?: number;
  /** Error text kept on the delivery (the DLQ reason when dead). */
  error?: string | null;
  remoteId?: string | null;
  rendered?: unknown;
}

export interface DeliveryQuery {
  limit: number;
  beforeId?: number;
  status?: DeliveryStatus;
  eventSeq?: number;
  channel?: string;
  trigger?: string;
}

export interface DeliveryStore {
  /**
   * Claims up to `limit` pending deliveries of `channel` that are due (`nextAttemptAt <= now`) and
   * not leased, oldest due first, and leases them until `now + leaseMs` so no other dispatcher
   * takes them meanwhile. A delivery whose insert is committed but not yet durable is not due:
   * sending it could notify about an event a power cut then takes back.
   */
  claim(query: { channel: string; limit: number; now: number; leaseMs: number }): Promise<Delivery[]>;
  /** Records attempt outcomes (a batch, one transaction) and releases their leases. */
  record(outcomes: AttemptOutcome[]): Promise<void>;
  /** Optional: `record`, answered at the commit (see Committed). */
  recordCommitted?(outcomes: AttemptOutcome[]): Promise<Committed<void>>;
  /**
   * Extends leases their holder still has: each lease is given as its holder last set it (`now +
   * leaseMs` of its claim, or the `until` of its last renewal) and moves to `until` only if the
   * delivery is still pending with exactly that lease. A claim sets a lease only once the old one
   * has expired, always to a later time, so a lease another dispatcher took since never matches.
   * Returns the ids renewed; the others were lost (claimed again elsewhere, or recorded).
   */
  renewLeases(leases: { id: number; leaseUntil: number }[], until: number): Promise<number[]>;
  /**
   * Optional (stores whose leases live in this process): leases deliveries that an append of this
   * process returned as `claimable`, once durable, without reading them back, as a claim would.
   * One leased already (a claim found it first) is left out. Returns the ids leased.
   */
  leaseRouted?(ids: number[], now: number, leaseMs: number): number[];
  /** Drops the leases of claimed deliveries that will not be attempted (a dispatcher stopping). */
  release(ids: number[]): Promise<void>;
  /**
   * The digest a delivery carries, by its idempotency key: the rendered digest key and the seqs of
   * its events in seq order (the opening event's included); null when it is no digest.
   */
  digest(idempotencyKey: string): Promise<DigestContents | null>;
  /** Drops every lease (single-process start-up: nothing can be in flight). Returns how many. */
  releaseAllLeases(): Promise<number>;
  get(id: number): Promise<Delivery | null>;
  list(query: DeliveryQuery): Promise<Delivery[]>;
  attempts(deliveryId: number): Promise<Attempt[]>;
  /** The earliest nextAttemptAt of unleased pending deliveries, per channel (null when none). */
  nextDue(channel: string): Promise<number | null>;
  counts(): Promise<Record<DeliveryStatus, number>>;
  /** Age in ms of the oldest pending delivery at `now`, or 0. */
  oldestPendingAge(now: number): Promise<number>;
}

/* --------------------------------------------------------------- rate limits */

/** A channel's token bucket: holds up to `burst` tokens, refilled at `perSecond`; a send takes one. */
export interface RateLimitRequest {
  channel: string;
  /** Epoch ms; the bucket never runs backwards (a caller whose clock is behind gets no refill). */
  now: number;
  perSecond: number;
  burst: number;
}

export interface RateLimitStore {
  /**
   * Takes up to `wanted` whole tokens from the channel's bucket in one atomic step (a bucket not
   * seen before starts full) and returns how many were granted, and `nextAt`: the epoch ms at
   * which the bucket next holds a whole token (at most `now` when one is left). Concurrent takers
   * are never granted more than the bucket held, in total.
   */
  take(request: RateLimitRequest & { wanted: number }): Promise<{ granted: number; nextAt: number }>;
  /** Puts back tokens taken but not used (fewer deliveries were due than granted); capped at `burst`. */
  giveBack(request: RateLimitRequest & { count: number }): Promise<void>;
}

/* ----------------------------------------------------------------------- dlq */

export interface DeadLetterFilter {
  channel?: string;
  trigger?: string;
  eventType?: string;
  /** Substring of the reason. */
  reason?: string;
}

export interface DeadLetterStore {
  /** Dead deliveries, newest first. */
  list(query: { limit: number; beforeId?: number } & DeadLetterFilter): Promise<Delivery[]>;
  count(): Promise<number>;
  /**
   * Moves dead deliveries back to pending (attempts reset, due at `now`). `ids` replays those,
   * otherwise every dead delivery matching the filter. Returns the ids replayed.
   */
  replay(selection: { ids: number[] } | { filter: DeadLetterFilter }, now: number): Promise<number[]>;
  /**
   * Replays one dead delivery planned again with the current config, in one transaction: it
   * becomes pending (attempts reset, due at `now`) addressed to `as`, and a delivery of the same
   * event, trigger and action is added for each of `also` (a key already planned is skipped).
   * Returns the ids made pending, the replayed one first; none when it was not dead or another
   * delivery already has the key of `as`.
   */
  replayReplanned(
    id: number,
    as: ReplannedDelivery,
    also: ReplannedDelivery[],
    now: number,
  ): Promise<number[]>;
}

/** Where a re-rendered replay sends a dead delivery: its channel, recipient and idempotency key. */
export interface ReplannedDelivery {
  channel: string;
  recipient: string | null;
  idempotencyKey: string;
  maxAttempts: number;
}

/* ------------------------------------------------------- source dead letters */

/**
 * A message a stream source received but set aside instead of storing its event: it failed the
 * source's mapping or validation, or ingest rejected its event for a reason of its own. Kept so
 * an operator can read it and replay it once the config is fixed.
 */
export interface SourceDeadLetter {
  id: number;
  /** The source's name in the config. */
  source: string;
  /** Where the message sits upstream, e.g. `<stream>/<sequence>`, `<key>/<entry id>`, an LSN. */
  position: string;
  /** The NATS subject, Redis stream key or table the message came from. */
  subject: string | null;
  headers: Record<string, string>;
  /** The payload as received, cut to a bound; base64 when it is not NUL-free UTF-8 text. */
  payload: string;
  payloadEncoding: 'utf8' | 'base64';
  /** The payload's size as received, in bytes. */
  payloadBytes: number;
  /** The payload was longer than the bound and only its start is kept (it cannot be replayed). */
  truncated: boolean;
  reason: string;
  /** Epoch ms when it was (last) set aside. */
  createdAt: number;
}

export type NewSourceDeadLetter = Omit<SourceDeadLetter, 'id' | 'createdAt'>;

export interface SourceDeadLetterStore {
  /**
   * Keeps a message. The same source and position again (a redelivery, a second process) keeps
   * one row, with the latest reason, payload and time.
   */
  add(letter: NewSourceDeadLetter, now: number): Promise<SourceDeadLetter>;
  get(id: number): Promise<SourceDeadLetter | null>;
  /** Newest first; `source` keeps one source's. */
  list(query: { limit: number; beforeId?: number; source?: string }): Promise<SourceDeadLetter[]>;
  count(source?: string): Promise<number>;
  /** Removes a message (it was replayed). False when it was not there. */
  remove(id: number): Promise<boolean>;
}

/* --------------------------------------------------------------------- inbox */

export interface InboxMessage {
  id: number;
  channel: string;
  recipient: string | null;
  /** Free-form rendered message (text, subject, blocks…). */
  message: unknown;
  eventId: string;
  eventSource: string;
  deliveryId: number | null;
  createdAt: number;
}

export interface InboxStore {
  add(message: Omit<InboxMessage, 'id' | 'createdAt'> & { createdAt?: number }): Promise<InboxMessage>;
  /** Newest first. */
  list(query: { limit: number; beforeId?: number; channel?: string }): Promise<InboxMessage[]>;
}

/* ------------------------------------------------------------------------ kv */

/** Small durable state for plugins, in namespaces (e.g. `slack-threads`). Values are JSON. */
export interface KeyValueStore {
  get<T = unknown>(namespace: string, key: string): Promise<T | null>;
  set(namespace: string, key: string, value: unknown): Promise<void>;
  delete(namespace: string, key: string): Promise<void>;
  /** Sets only when absent; returns true when this call set it. */
  setIfAbsent(namespace: string, key: string, value: unknown): Promise<boolean>;
}

/* ------------------------------------------------------------- subscriptions */

/** A person who can be notified, with their addresses and their preferences. */
export interface Subscriber {
  id: string;
  name: string | null;
  slackUserId: string | null;
  email: string | null;
  /** As stored: only what the person changed; defaults are applied by the subscriptions area. */
  preferences: Record<string, unknown>;
  createdAt: number;
}

export interface FeedItem {
  key: string;
  eventSeq: number;
  /** Epoch ms when the event was added to the feed. */
  at: number;
  event: CloudEvent;
}

export interface SubscriptionStore {
  /** Creates the subscriber or updates the fields given (others are kept). */
  upsertSubscriber(
    subscriber: { id: string } & Partial<Pick<Subscriber, 'name' | 'slackUserId' | 'email'>>,
    now: number,
  ): Promise<Subscriber>;
  getSubscriber(id: string): Promise<Subscriber | null>;
  /** Ordered by id; `afterId` pages. */
  listSubscribers(query: { limit: number; afterId?: string }): Promise<Subscriber[]>;
  /** Removes the subscriber and their subscriptions. Returns false when there was none. */
  deleteSubscriber(id: string): Promise<boolean>;
  /** Merges `patch` into the stored preferences; returns the subscriber, or null when unknown. */
  setPreferences(id: string, patch: Record<string, unknown>): Promise<Subscriber | null>;
  /** Returns true when the subscription is new. The subscriber must exist. */
  subscribe(subscriberId: string, key: string, now: number): Promise<boolean>;
  /** Returns true when there was such a subscription. */
  unsubscribe(subscriberId: string, key: string): Promise<boolean>;
  keysOf(subscriberId: string): Promise<string[]>;
  /** Every subscriber of `key`, in one query (fan-out reads this for each event). */
  subscribersOf(key: string): Promise<Subscriber[]>;
  /** Appends to feeds, then trims each touched key to `maxItems` and drops items older than `minAt`. */
  appendFeed(items: FeedItem[], retention: { maxItems: number; minAt: number }): Promise<void>;
  /** Newest first. */
  feed(key: string, query: { limit: number; sinceAt?: number }): Promise<FeedItem[]>;
}

/* --------------------------------------------------------------- projections */

/** One row of a materialized view. */
export interface ProjectionRow {
  key: string;
  value: Record<string, unknown>;
  /** Epoch ms of the last change. */
  updatedAt: number;
}

/** What a batch leaves behind, computed synchronously from the rows it read. */
export interface ProjectionChange {
  /** Rows the batch changed, as they end up; null deletes the row. */
  rows: Map<string, Record<string, unknown> | null>;
  /** Events applied by this batch; recorded so no event is ever applied twice. */
  applied: { eventSeq: number; source: string; id: string }[];
  /**
   * Events that could not be applied: each becomes a dead delivery on the internal channel
   * `projection:<name>` (so it shows in the DLQ and can be replayed) with the reason.
   */
  failures: { eventSeq: number; reason: string }[];
  /** Events to publish (threshold alerts), kept in an outbox until they are in the log. */
  outbox: CloudEvent[];
}

export interface ProjectionBatch {
  projection: string;
  /** Rows `compute` reads: loaded (when present) before it runs. */
  keys: string[];
  /** The batch's events, so `compute` learns which were applied before. */
  events: { source: string; id: string }[];
  /**
   * The projector's position in the log: when given, the stored cursor must equal `from`
   * (otherwise nothing is written and the current cursor is returned) and becomes `to`.
   * Without it (a DLQ replay) the cursor is left alone.
   */
  cursor?: { from: number; to: number };
  /** Runs inside the transaction. `applied` holds `appliedKey(source, id)` of events applied before. */
  compute(rows: Map<string, Record<string, unknown>>, applied: Set<string>): ProjectionChange;
  now: number;
}

export const appliedKey = (source: string, id: string): string => `${source}\u0000${id}`;

export interface ProjectionStore {
  /** The projector's position: the `next` of `EventLog.readForProjection` it last handled (0 before the first). */
  cursor(projection: string): Promise<number>;
  /**
   * In one transaction (serialised per projection across processes): reads the rows and which
   * events were applied, runs `compute`, writes rows, applied ids, failures, outbox and cursor.
   */
  apply(batch: ProjectionBatch): Promise<{ ok: true } | { ok: false; cursor: number }>;
  get(projection: string, key: string): Promise<ProjectionRow | null>;
  /** Ordered by key; `after` pages; `q` keeps rows whose JSON contains it (case-insensitive). */
  list(projection: string, query: { limit: number; after?: string; q?: string }): Promise<ProjectionRow[]>;
  /** Row count per projection that has rows. */
  counts(): Promise<Record<string, number>>;
  /** Oldest first. */
  outbox(limit: number): Promise<{ id: number; projection: string; event: CloudEvent }[]>;
  /** Removes outbox entries once their events are durable in the log. */
  ackOutbox(ids: number[]): Promise<void>;
}
