/**
 * `herald/client`: send events to a running Herald and read or act on it through its admin API,
 * typed with the server's own answer types (src/server/api-types.ts).
 */

import { newEventId } from '../events/ids.js';
import type {
  BatchAccepted,
  CloudEvent,
  DeadLetterFilterReplay,
  DeadLetterPage,
  DeadLetterReplay,
  DeliveryDetail,
  DeliveryPage,
  DeliveryStatus,
  EventAccepted,
  EventDetail,
  EventExplanation,
  EventPage,
  Feed,
  Health,
  InboxMessagePage,
  KeySubscribers,
  ProjectionRow,
  SourceDeadLetter,
  SourceDeadLetterPage,
  SourceDeadLetterReplay,
  Status,
  SubscriberPage,
  SubscriberView,
  SubscriptionAdded,
  ViewList,
  ViewRowPage,
} from '../server/api-types.js';
import { call, type HttpRequest, type RetryMode, type TransportOptions } from './transport.js';

export type * from '../server/api-types.js';
export { HeraldApiError, HeraldUnreachableError } from './transport.js';

export interface ClientOptions {
  /** Herald's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** The admin token (`HERALD_ADMIN_TOKEN`), sent with admin calls. */
  token?: string;
  /** The ingest token (`HERALD_INGEST_TOKEN`), sent with `send` and `notify`. */
  ingestToken?: string;
  /** Retries after the first attempt (default 3; 0 = none). At most 10. */
  retries?: number;
  /** Time one attempt may take, answer included (default 10 000 ms). */
  timeoutMs?: number;
  /** First backoff delay; each retry waits up to twice the previous, randomised (default 200 ms). */
  retryDelayMs?: number;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** The attributes a CloudEvent names (without its index signature for extensions). */
type NamedAttributes = {
  [K in keyof CloudEvent as string extends K ? never : K]: CloudEvent[K];
};

/** An event to send: a CloudEvent whose `id`, `specversion` and `time` may be left out. */
export type EventInput = Omit<NamedAttributes, 'id' | 'specversion'> &
  Partial<Pick<NamedAttributes, 'id' | 'specversion'>> & { [extension: string]: unknown };

/** A page request: `before` is the `next` cursor of the previous page. */
export interface PageQuery {
  limit?: number;
  before?: number;
}

export interface EventQuery extends PageQuery {
  type?: string;
  source?: string;
  subject?: string;
  /** A CESQL condition (the answer then says how many events it `scanned`). */
  sql?: string;
}

export interface DeliveryQuery extends PageQuery {
  status?: DeliveryStatus;
  channel?: string;
  trigger?: string;
}

/** Which dead letters: every field given must match. */
export interface DeadLetterFilter {
  channel?: string;
  trigger?: string;
  eventType?: string;
  /** Text the last error contains. */
  reason?: string;
}

export interface SubscriberInput {
  id?: string;
  name?: string;
  email?: string;
  slackUserId?: string;
}

export interface HeraldClient {
  /** Sends one event (structured mode) or several (one batch); fills `id` and `time` when absent. */
  send(event: EventInput): Promise<EventAccepted>;
  send(events: EventInput[]): Promise<BatchAccepted>;
  /** POSTs a JSON body to an `http` source route, e.g. `notify('/notify', { topic, description })`. */
  notify(path: string, body: unknown): Promise<EventAccepted>;
  events: {
    list(query?: EventQuery): Promise<EventPage>;
    /** An event by id (with `source` when ids repeat across sources), with its deliveries. */
    get(id: string, options?: { source?: string }): Promise<EventDetail>;
    bySeq(seq: number): Promise<EventDetail>;
    /** Why the event did or did not notify, under the current config (`recipient` narrows it to one). */
    explain(id: string, options?: { source?: string; recipient?: string }): Promise<EventExplanation>;
  };
  deliveries: {
    list(query?: DeliveryQuery): Promise<DeliveryPage>;
    get(id: number): Promise<DeliveryDetail>;
  };
  dlq: {
    list(query?: PageQuery & DeadLetterFilter): Promise<DeadLetterPage>;
    /**
     * Makes one dead delivery pending again, its recipient planned again from the current config
     * unless `asRecorded`.
     */
    replay(id: number, options?: { asRecorded?: boolean }): Promise<DeadLetterReplay>;
    /** Makes every dead delivery matching the filter pending again ({} = all), re-rendered unless `asRecorded`. */
    replayMatching(filter: DeadLetterFilter & { asRecorded?: boolean }): Promise<DeadLetterFilterReplay>;
    /** Messages a stream source set aside (they never became events). */
    source: {
      list(source: string, query?: PageQuery): Promise<SourceDeadLetterPage>;
      get(id: number): Promise<SourceDeadLetter>;
      replay(id: number): Promise<SourceDeadLetterReplay>;
    };
  };
  inbox: {
    list(query?: PageQuery & { channel?: string }): Promise<InboxMessagePage>;
  };
  subscribers: {
    list(query?: { limit?: number; after?: string }): Promise<SubscriberPage>;
    get(id: string): Promise<SubscriberView>;
    /** Creates the subscriber, or updates the fields given. */
    save(subscriber: SubscriberInput): Promise<SubscriberView>;
    delete(id: string): Promise<void>;
    setPreferences(id: string, preferences: Record<string, string | boolean>): Promise<SubscriberView>;
    subscribe(id: string, key: string): Promise<SubscriptionAdded>;
    unsubscribe(id: string, key: string): Promise<void>;
    /** Who follows a subscription key. */
    of(key: string): Promise<KeySubscribers>;
    feed(key: string, query?: { limit?: number }): Promise<Feed>;
  };
  views: {
    list(query?: { q?: string }): Promise<ViewList>;
    rows(view: string, query?: { limit?: number; after?: string; q?: string }): Promise<ViewRowPage>;
    get(view: string, key: string): Promise<ProjectionRow>;
  };
  status(): Promise<Status>;
  health(): Promise<Health>;
}

const seg = encodeURIComponent;

function bounded(name: string, value: number | undefined, fallback: number, min: number, max: number) {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < min || value > max)
    throw new RangeError(`createClient: ${name} must be a number from ${min} to ${max}, got ${value}`);
  return value;
}

function completeEvent(input: EventInput): CloudEvent {
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new TypeError('send: an event is an object with at least `source` and `type`');
  // The id is fixed before the first attempt, so a retry is the same event and Herald drops repeats.
  return {
    ...input,
    specversion: input.specversion ?? '1.0',
    id: input.id ?? newEventId(),
    ...(input.time === undefined ? { time: new Date().toISOString() } : {}),
  } as CloudEvent;
}

export function createClient(options: ClientOptions): HeraldClient {
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    throw new TypeError(`createClient: url must be an absolute URL, got ${JSON.stringify(options.url)}`);
  }
  const transport: TransportOptions = {
    url: base.href,
    retries: bounded('retries', options.retries, 3, 0, 10),
    timeoutMs: bounded('timeoutMs', options.timeoutMs, 10_000, 1, 600_000),
    retryDelayMs: bounded('retryDelayMs', options.retryDelayMs, 200, 0, 60_000),
    fetch: options.fetch ?? globalThis.fetch,
  };
  const admin = <T>(
    method: HttpRequest['method'],
    path: string,
    extra: Partial<Pick<HttpRequest, 'query' | 'body'>> = {},
  ): Promise<T> => {
    // Reads may be repeated freely; a write is retried only when it was certainly not handled.
    const retry: RetryMode = method === 'GET' ? 'idempotent' : 'unhandled-only';
    // The admin API takes writes only as JSON, so a POST always has a body.
    const body = extra.body ?? (method === 'POST' ? {} : undefined);
    return call<T>(transport, { method, path, ...extra, body, token: options.token, retry });
  };

  function send(event: EventInput): Promise<EventAccepted>;
  function send(events: EventInput[]): Promise<BatchAccepted>;
  function send(input: EventInput | EventInput[]): Promise<EventAccepted | BatchAccepted> {
    const batch = Array.isArray(input);
    let body: CloudEvent | CloudEvent[];
    try {
      body = batch ? input.map(completeEvent) : completeEvent(input);
    } catch (err) {
      return Promise.reject(err);
    }
    return call(transport, {
      method: 'POST',
      path: '/events',
      body,
      contentType: batch ? 'application/cloudevents-batch+json' : 'application/cloudevents+json',
      token: options.ingestToken,
      retry: 'idempotent',
    });
  }

  return {
    send,
    notify: (path, body) =>
      call<EventAccepted>(transport, {
        method: 'POST',
        path,
        body,
        token: options.ingestToken,
        // A route makes a new event id per request unless it takes one from the body.
        retry: 'unhandled-only',
      }),
    events: {
      list: (query = {}) => admin<EventPage>('GET', '/api/events', { query: { ...query } }),
      get: (id, { source } = {}) =>
        admin<EventDetail>('GET', `/api/events/${seg(id)}`, { query: { source } }),
      bySeq: (seq) => admin<EventDetail>('GET', `/api/events/by-seq/${seg(String(seq))}`),
      explain: (id, { source, recipient } = {}) =>
        admin<EventExplanation>('GET', `/api/events/${seg(id)}/explain`, { query: { source, recipient } }),
    },
    deliveries: {
      list: (query = {}) => admin<DeliveryPage>('GET', '/api/deliveries', { query: { ...query } }),
      get: (id) => admin<DeliveryDetail>('GET', `/api/deliveries/${seg(String(id))}`),
    },
    dlq: {
      list: (query = {}) => admin<DeadLetterPage>('GET', '/api/dlq', { query: { ...query } }),
      replay: (id, options = {}) =>
        admin<DeadLetterReplay>('POST', `/api/dlq/${seg(String(id))}/replay`, { body: options }),
      replayMatching: (filter) => admin<DeadLetterFilterReplay>('POST', '/api/dlq/replay', { body: filter }),
      source: {
        list: (source, query = {}) =>
          admin<SourceDeadLetterPage>('GET', '/api/dlq', { query: { ...query, source } }),
        get: (id) => admin<SourceDeadLetter>('GET', `/api/dlq/source/${seg(String(id))}`),
        replay: (id) => admin<SourceDeadLetterReplay>('POST', `/api/dlq/source/${seg(String(id))}/replay`),
      },
    },
    inbox: {
      list: (query = {}) => admin<InboxMessagePage>('GET', '/api/inbox', { query: { ...query } }),
    },
    subscribers: {
      list: (query = {}) => admin<SubscriberPage>('GET', '/api/subscribers', { query: { ...query } }),
      get: (id) => admin<SubscriberView>('GET', `/api/subscribers/${seg(id)}`),
      save: (subscriber) => admin<SubscriberView>('POST', '/api/subscribers', { body: subscriber }),
      delete: (id) => admin<void>('DELETE', `/api/subscribers/${seg(id)}`),
      setPreferences: (id, preferences) =>
        admin<SubscriberView>('PATCH', `/api/subscribers/${seg(id)}/preferences`, { body: preferences }),
      subscribe: (id, key) =>
        admin<SubscriptionAdded>('POST', `/api/subscribers/${seg(id)}/subscriptions`, { body: { key } }),
      unsubscribe: (id, key) =>
        admin<void>('DELETE', `/api/subscribers/${seg(id)}/subscriptions/${seg(key)}`),
      of: (key) => admin<KeySubscribers>('GET', `/api/subscriptions/${seg(key)}/subscribers`),
      feed: (key, query = {}) => admin<Feed>('GET', `/api/feeds/${seg(key)}`, { query: { ...query } }),
    },
    views: {
      list: (query = {}) => admin<ViewList>('GET', '/api/views', { query: { ...query } }),
      rows: (view, query = {}) =>
        admin<ViewRowPage>('GET', `/api/views/${seg(view)}`, { query: { ...query } }),
      get: (view, key) => admin<ProjectionRow>('GET', `/api/views/${seg(view)}/${seg(key)}`),
    },
    status: () => admin<Status>('GET', '/api/status'),
    health: () => admin<Health>('GET', '/api/health'),
  };
}
