import type { MsgHdrs } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { SourceContext, SourceMessage } from '../../engine/types.js';
import { NotACloudEventError, parseNatsMessage } from '../../events/index.js';
import type { CloudEvent } from '../../events/types.js';
import { type EventMap, mapToEvent } from '../map.js';

/** A NATS message as the source reads it, with its position (JetStream) or default id (core). */
export interface NatsMessage {
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  position: string;
}

/** What the core and the JetStream receivers share with their source. */
export interface ReceiverContext {
  /** The source's name, for log lines and mapped events' default `source`. */
  name: string;
  map: EventMap | undefined;
  context: SourceContext;
  logger: Logger;
}

export function headerRecord(headers: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const key of headers.keys()) out[key] = headers.get(key);
  return out;
}

export function msgIdOf(headers: Record<string, string>): string | undefined {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'nats-msg-id' && v) return v;
  return undefined;
}

/** The events a message carries (CloudEvents binding first, then the `map` block). */
export function natsMessageToEvents(
  message: { subject: string; data: Uint8Array; headers: Record<string, string> },
  options: { sourceName: string; map?: EventMap; defaultId: () => string },
): CloudEvent[] {
  try {
    return parseNatsMessage({ headers: message.headers, payload: message.data }).events;
  } catch (err) {
    if (!(err instanceof NotACloudEventError)) throw err;
    if (!options.map)
      throw new NotACloudEventError(`not a CloudEvent (${err.message}) and no map is configured`);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(message.data).toString('utf8'));
  } catch {
    throw new NotACloudEventError('the payload is not JSON, so the map cannot read it');
  }
  return [
    mapToEvent(
      options.map,
      { subject: message.subject, body, headers: message.headers },
      { id: options.defaultId(), source: `herald://${options.sourceName}`, data: body },
    ),
  ];
}

/** The events of a received message; the id its events get by default is its position. */
export function eventsOf(message: NatsMessage, receiver: ReceiverContext): CloudEvent[] {
  return natsMessageToEvents(message, {
    sourceName: receiver.name,
    map: receiver.map,
    defaultId: () => message.position,
  });
}

/** The message as the source dead-letter table keeps it. */
export const deadLetterOf = (message: NatsMessage): SourceMessage => ({
  position: message.position,
  subject: message.subject,
  headers: message.headers,
  payload: message.data,
});
