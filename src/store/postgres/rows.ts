import type pg from 'pg';
import type { CloudEvent } from '../../events/types.js';
import type {
  Delivery,
  DeliveryStatus,
  InboxMessage,
  RoutingRecord,
  SourceDeadLetter,
  StoredEvent,
} from '../types.js';

export type Row = Record<string, unknown>;
/** One statement on the pool; failures are HeraldErrors (STORE_UNAVAILABLE unless more is known). */
export type Query = (text: string, values?: unknown[]) => Promise<Row[]>;
/** Runs `work` in one transaction on one pooled connection. */
export type Tx = <T>(work: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

// BIGINT columns come back as strings by default; every one Herald uses fits a JS number.
export const int = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
export const intOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** JSON for a JSONB parameter; undefined becomes SQL NULL. */
export const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

export function eventRow(r: Row): StoredEvent {
  return {
    seq: int(r.seq),
    event: r.event as CloudEvent,
    receivedAt: int(r.received_at),
    routedAt: intOrNull(r.routed_at),
    routing: (r.routing as RoutingRecord | null) ?? null,
  };
}

export function deliveryRow(r: Row): Delivery {
  return {
    id: int(r.id),
    eventSeq: int(r.event_seq),
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    eventType: r.event_type as string,
    trigger: r.trigger as string,
    action: int(r.action),
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    idempotencyKey: r.idempotency_key as string,
    status: r.status as DeliveryStatus,
    attempts: int(r.attempts),
    maxAttempts: int(r.max_attempts),
    nextAttemptAt: int(r.next_attempt_at),
    lastError: (r.last_error as string | null) ?? null,
    note: (r.note as string | null) ?? null,
    remoteId: (r.remote_id as string | null) ?? null,
    rendered: r.rendered ?? null,
    createdAt: int(r.created_at),
    updatedAt: int(r.updated_at),
  };
}

export function inboxRow(r: Row): InboxMessage {
  return {
    id: int(r.id),
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    message: r.message,
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    deliveryId: intOrNull(r.delivery_id),
    createdAt: int(r.created_at),
  };
}

export function sourceDeadLetterRow(r: Row): SourceDeadLetter {
  return {
    id: int(r.id),
    source: r.source as string,
    position: r.position as string,
    subject: (r.subject as string | null) ?? null,
    headers: JSON.parse(r.headers as string) as Record<string, string>,
    payload: r.payload as string,
    payloadEncoding: r.payload_encoding as SourceDeadLetter['payloadEncoding'],
    payloadBytes: int(r.payload_bytes),
    truncated: r.truncated === true,
    reason: r.reason as string,
    createdAt: int(r.created_at),
  };
}
