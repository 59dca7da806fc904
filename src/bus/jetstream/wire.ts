import { createHash } from 'node:crypto';
import type { StoredEvent } from '../../engine/store.js';
import type { CloudEvent } from '../../events/types.js';

/** What travels on the stream: enough to route without reading the event back from the store. */
interface WireEvent {
  seq: number;
  receivedAt: number;
  event: CloudEvent;
}

/**
 * One message carries a run of stored events (`{events}`), so a busy ingest costs one publish and
 * one ack per batch rather than per event. A single event (`{seq, receivedAt, event}`) is read too.
 */
type WireMessage = { events: WireEvent[] } | WireEvent;

/** Encoded size a message aims to stay under: well within NATS' default 1 MB max_payload. */
const MESSAGE_BYTES = 256 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Nats-Msg-Id of a message: the identities (source, id) of the events it carries, hashed so any id
 * is a valid header value. The same events published again get the same id and are dropped.
 */
export function messageId(
  events: Pick<CloudEvent, 'source' | 'id'> | Pick<CloudEvent, 'source' | 'id'>[],
): string {
  const hash = createHash('sha256');
  for (const event of Array.isArray(events) ? events : [events]) {
    // Length-prefixed, so no two different lists of (source, id) hash the same input.
    hash.update(`${event.source.length}:${event.source}${event.id.length}:${event.id}`);
  }
  return hash.digest('base64url');
}

/**
 * The messages that carry `events`, in order: each under MESSAGE_BYTES (unless one event alone is
 * larger) and with at most `maxEvents` events. Each event is encoded once; its length keeps
 * messages under the limit, and a message is those encodings joined into `{"events":[…]}`.
 */
export function* encodeMessages(
  events: StoredEvent[],
  maxEvents: number,
): Generator<{ events: StoredEvent[]; data: Uint8Array }> {
  let chunk: StoredEvent[] = [];
  let encoded: string[] = [];
  let bytes = 0;
  for (const stored of events) {
    const wire: WireEvent = { seq: stored.seq, receivedAt: stored.receivedAt, event: stored.event };
    const json = JSON.stringify(wire);
    if (chunk.length > 0 && (bytes + json.length > MESSAGE_BYTES || chunk.length >= maxEvents)) {
      yield { events: chunk, data: encoder.encode(`{"events":[${encoded.join(',')}]}`) };
      chunk = [];
      encoded = [];
      bytes = 0;
    }
    chunk.push(stored);
    encoded.push(json);
    bytes += json.length + 1;
  }
  if (chunk.length > 0) yield { events: chunk, data: encoder.encode(`{"events":[${encoded.join(',')}]}`) };
}

const nonEmpty = (value: unknown) => typeof value === 'string' && value !== '';

/**
 * The events of a message; throws, saying what is wrong, when it is not a Herald message: a
 * router must never be handed something it cannot route.
 */
export function decodeMessage(data: Uint8Array): StoredEvent[] {
  const wire = JSON.parse(decoder.decode(data)) as WireMessage;
  if (wire === null || typeof wire !== 'object') throw new Error('not a Herald message');
  const list = 'events' in wire && Array.isArray(wire.events) ? wire.events : [wire as WireEvent];
  return list.map((w, i) => {
    if (!Number.isSafeInteger(w?.seq) || w.seq <= 0) throw new Error(`event ${i}: no position in the log`);
    const event = w.event as Partial<CloudEvent> | undefined;
    if (
      event === null ||
      typeof event !== 'object' ||
      !nonEmpty(event.specversion) ||
      !nonEmpty(event.id) ||
      !nonEmpty(event.source) ||
      !nonEmpty(event.type)
    )
      throw new Error(`event ${i} (seq ${w.seq}): not a CloudEvent`);
    const receivedAt = typeof w.receivedAt === 'number' ? w.receivedAt : Date.now();
    return { seq: w.seq, receivedAt, event: event as CloudEvent, routedAt: null, routing: null };
  });
}
