import { eventFromJson } from '../../events/serialize.js';
import type {
  Committed,
  Delivery,
  DeliveryStatus,
  InboxMessage,
  RoutingRecord,
  SourceDeadLetter,
  StoredEvent,
} from '../types.js';

export type Row = Record<string, unknown>;

/**
 * Runs one synchronous piece of store work and answers as every Store method does: a promise,
 * with anything but a HeraldError turned into STORE_UNAVAILABLE.
 */
export type Guard = <T>(work: () => T) => Promise<T>;

/**
 * Runs a write and answers at its commit, with a promise of its durability. `syncWithinMs`: the
 * write need not be durable at once (nobody waits to be answered about it), only within that long.
 * `deliveriesThrough`: the highest delivery id the write inserted (0: none), which moves the mark
 * of durable deliveries once the commit is on disk; without it the commit looks that id up (a query).
 */
export type CommitGuard = <T>(
  work: () => T,
  options?: { syncWithinMs?: number; deliveriesThrough?: (value: T) => number },
) => Promise<Committed<T>>;

export const parse = (text: unknown): unknown =>
  text === null || text === undefined ? null : JSON.parse(text as string);
export const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

export function eventRow(r: Row): StoredEvent {
  return {
    seq: r.seq as number,
    event: eventFromJson(r.event as string),
    receivedAt: r.received_at as number,
    routedAt: (r.routed_at as number | null) ?? null,
    routing: parse(r.routing) as RoutingRecord | null,
  };
}

export function deliveryRow(r: Row): Delivery {
  return {
    id: r.id as number,
    eventSeq: r.event_seq as number,
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    eventType: r.event_type as string,
    trigger: r.trigger as string,
    action: r.action as number,
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    idempotencyKey: r.idempotency_key as string,
    status: r.status as DeliveryStatus,
    attempts: r.attempts as number,
    maxAttempts: r.max_attempts as number,
    nextAttemptAt: r.next_attempt_at as number,
    lastError: (r.last_error as string | null) ?? null,
    note: (r.note as string | null) ?? null,
    remoteId: (r.remote_id as string | null) ?? null,
    rendered: parse(r.rendered),
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
  };
}

export function inboxRow(r: Row): InboxMessage {
  return {
    id: r.id as number,
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    message: parse(r.message),
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    deliveryId: (r.delivery_id as number | null) ?? null,
    createdAt: r.created_at as number,
  };
}

export function sourceDeadLetterRow(r: Row): SourceDeadLetter {
  return {
    id: r.id as number,
    source: r.source as string,
    position: r.position as string,
    subject: (r.subject as string | null) ?? null,
    headers: JSON.parse(r.headers as string) as Record<string, string>,
    payload: r.payload as string,
    payloadEncoding: r.payload_encoding as SourceDeadLetter['payloadEncoding'],
    payloadBytes: r.payload_bytes as number,
    truncated: r.truncated === 1,
    reason: r.reason as string,
    createdAt: r.created_at as number,
  };
}
