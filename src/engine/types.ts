import type { Logger } from 'pino';
import type { z } from 'zod';
import { HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import type { IngestAuth } from '../signing/ingest-auth.js';
import type { InboxStore, KeyValueStore } from './store.js';

/* ------------------------------------------------------------------ channels */

/** What a channel answers for one send. The dispatcher owns retries, backoff and the DLQ. */
export type ChannelResult =
  | { outcome: 'delivered'; remoteId?: string; rendered?: unknown }
  | {
      outcome: 'retry';
      reason: string;
      /** Earliest next attempt, epoch ms (e.g. from `Retry-After`). */
      notBefore?: number;
      rendered?: unknown;
    }
  | { outcome: 'failed'; reason: string; rendered?: unknown };

export const delivered = (remoteId?: string, rendered?: unknown): ChannelResult => ({
  outcome: 'delivered',
  remoteId,
  rendered,
});
export const retry = (reason: string, notBefore?: number, rendered?: unknown): ChannelResult => ({
  outcome: 'retry',
  reason,
  notBefore,
  rendered,
});
export const failed = (reason: string, rendered?: unknown): ChannelResult => ({
  outcome: 'failed',
  reason,
  rendered,
});

/** One attempt to deliver one event through one action to one recipient. */
export interface DeliveryRequest<A = unknown> {
  deliveryId: number;
  /** Stable across retries and restarts: derived from trigger, action, recipient, event source+id. */
  idempotencyKey: string;
  /** 1 for the first attempt. */
  attempt: number;
  /** The triggering event; for a digest, the newest event it collected. */
  event: CloudEvent;
  /** A digest's events, oldest first (`event` is the last); absent for an action without digest. */
  events?: CloudEvent[];
  /**
   * For a digest delivery: its rendered key, and whether later digests of the key (same trigger,
   * action and recipient) edit the message this one posted (`digest.update`).
   */
  digest?: { key: string; update: boolean; action: number };
  trigger: string;
  /** The action as the channel's `actionSchema` parsed it (templates compiled). */
  action: A;
  /** The rendered recipient (`to`) of this delivery, or null when the action has none. */
  recipient: string | null;
  /**
   * Aborted at the send's deadline (the channel's `timeoutMs`, with a `SendTimeoutError`), when
   * its lease went to another dispatcher, or when shutdown's deadline passes. Channels pass it to
   * whatever they wait on, stop and answer retry.
   */
  signal: AbortSignal;
}

/**
 * What a channel's templates see: `event`, `recipient`, and `events` — a digest's events oldest
 * first, or the one event for an action without digest, so one template serves both.
 */
export function templateScope(req: Pick<DeliveryRequest<unknown>, 'event' | 'events' | 'recipient'>): {
  event: CloudEvent;
  events: CloudEvent[];
  recipient: string | null;
} {
  return { event: req.event, events: req.events ?? [req.event], recipient: req.recipient };
}

/** Why a send's signal was aborted at its deadline. */
export class SendTimeoutError extends HeraldError {
  readonly timeoutMs: number;
  constructor(timeoutMs: number) {
    super('CHANNEL_ERROR', `no answer within ${timeoutMs} ms`);
    this.name = 'SendTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

export interface CheckResult {
  ok: boolean;
  detail: string;
  /** What to do about it, when not ok. */
  fix?: string;
}

export interface Channel<A = unknown> {
  /** How many sends may run at once through this channel. */
  readonly concurrency: number;
  /**
   * The most one send may take, start to end (connecting, waiting for an answer and reading it).
   * The dispatcher aborts the send's signal then, and counts the attempt.
   */
  readonly timeoutMs: number;
  send(request: DeliveryRequest<A>): Promise<ChannelResult>;
  /** Used by `herald doctor`: does the channel's remote end answer? */
  check?(): Promise<CheckResult>;
  close?(): Promise<void>;
}

/** Services a channel may use; the engine provides them. */
export interface ChannelContext {
  logger: Logger;
  /** Durable small state, e.g. Slack thread timestamps per key. */
  kv: KeyValueStore;
  inbox: InboxStore;
  /** Appends events to Herald's own log (follow-up events); resolves when they are durable. */
  emit(events: CloudEvent[]): Promise<void>;
  env: NodeJS.ProcessEnv;
}

/** A channel kind is one folder under src/channels exporting this. */
export interface ChannelKind<C = unknown, A = unknown> {
  kind: string;
  description: string;
  /** The channel block under `channels.<name>` (without `kind`). */
  configSchema: z.ZodType<C>;
  /** An action block under `triggers.<name>.actions[i]` (without `channel` and `to`). */
  actionSchema: z.ZodType<A>;
  /**
   * Loads what `create` needs for this config and is not loaded up front (a client library only
   * one mode uses). Awaited before `create`, for every channel of the kind.
   */
  prepare?(config: C): Promise<void>;
  /**
   * The channel can edit a message it sent (Slack's chat.update), so an action may use
   * `digest: { update: true }`; the config rejects it on other kinds.
   */
  updatesMessages?: boolean;
  create(name: string, config: C, context: ChannelContext): Channel<A>;
  /**
   * Checks an action against the channel block it names, for rules one schema cannot express
   * (e.g. a job channel in kubernetes mode needs a `manifest`). Returns what is wrong, or null.
   */
  checkAction?(config: C, action: A): string | null;
}

/* ------------------------------------------------------------------- sources */

export interface IngestResult {
  id: string;
  source: string;
  /** The event was already in the log (same source and id) and was not stored again. */
  duplicate: boolean;
}

/** A route a source adds to Herald's HTTP server. */
export interface HttpRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  /** A signature the server checks over the raw body instead of the ingest token. */
  auth?: IngestAuth;
  /**
   * The handler reads `rawBody` itself and `body` is undefined: for a route that takes bodies
   * other than JSON (an empty body, a binary-mode CloudEvent without a content type).
   */
  readsRawBody?: boolean;
  handler(request: {
    body: unknown;
    rawBody: Buffer | undefined;
    headers: Record<string, string | string[] | undefined>;
    query: Record<string, unknown>;
  }): Promise<{ status: number; body: unknown; headers?: Record<string, string> }>;
}

/** A message as a stream source received it, for the source dead-letter table. */
export interface SourceMessage {
  /** Where it sits upstream: `<stream>/<sequence>`, `<stream key>/<entry id>`, an LSN… */
  position: string;
  /** The NATS subject, Redis stream key or table it came from. */
  subject?: string | null;
  headers?: Record<string, string>;
  payload: Uint8Array | string;
}

export interface SourceContext {
  logger: Logger;
  /**
   * Resolves once every event is durable in the log: acknowledge upstream only then. Rejects with
   * a 4xx HeraldError when the events themselves are refused (see `src/sources/isolate.ts`), with
   * another error when the store cannot take them now.
   */
  ingest(events: CloudEvent[]): Promise<IngestResult[]>;
  /**
   * Sets aside a message that cannot become a stored event (its mapping or validation fails, or
   * ingest refuses its event): it is kept in the source dead-letter table (`GET /api/dlq?source=`),
   * logged once with its position and counted, so the stream can move on; acknowledge it upstream
   * once this resolves. Rejects when the store cannot keep it: hold the message back then.
   */
  deadLetter(message: SourceMessage, reason: string): Promise<void>;
  /** Present when Herald runs its HTTP server; HTTP-based sources add routes through it. */
  http?: { addRoute(route: HttpRoute): void };
  kv: KeyValueStore;
  env: NodeJS.ProcessEnv;
}

export interface Source {
  start(): Promise<void>;
  stop(): Promise<void>;
  check?(): Promise<CheckResult>;
  /**
   * The events of a message set aside earlier, made again with the current config (a replay from
   * the source dead-letter table). Throws, saying why, when the message still cannot be turned
   * into events.
   */
  replayDeadLetter?(message: SourceMessage & { payload: Uint8Array }): CloudEvent[];
  /** How far behind upstream the source is, sampled when metrics are scraped (keep it cheap). */
  lag?(): Promise<SourceLag>;
}

export interface SourceLag {
  /** WAL bytes the source's replication slot holds unconfirmed (server WAL position − confirmed_flush_lsn). */
  replicationSlotLagBytes?: number;
}

export interface SourceKind<C = unknown> {
  kind: string;
  description: string;
  configSchema: z.ZodType<C>;
  /**
   * Loads what `create` needs and is not loaded up front (a client library only this kind uses),
   * as ChannelKind.prepare does. Awaited before `create`, for every source of the kind.
   */
  prepare?(config: C): Promise<void>;
  create(name: string, config: C, context: SourceContext): Source;
}

/* ---------------------------------------------------------------- projector */

/** What one projector step (or one replayed event) did to a projection. */
export interface ProjectedBatch {
  /** Log events applied to the view. */
  applied: number;
  /** Events that could not be applied (in the stream or on a replay). */
  failed: number;
  /** New dead letters: the stream's failures (a failed replay updates its existing dead letter). */
  deadLettered: number;
  /** Threshold alerts the batch raised. */
  alerts: number;
  /** Epoch ms of the newest applied event's `time` (for a change: its commit time in the source). */
  newestChangeAt?: number;
}

export interface ProjectorHooks {
  onProjected?(projection: string, batch: ProjectedBatch): void;
}

/**
 * Keeps the materialized views (src/projections builds it, app.ts hands it to the engine). It
 * runs with the router role and stops before intake closes.
 */
export interface EngineProjector {
  start(): void;
  /** New events are in the log. */
  wake(): void;
  stop(): Promise<void>;
  /** Internal channels whose dead deliveries are the views' failed events (DLQ and replay). */
  channels(): Map<string, Channel>;
}
