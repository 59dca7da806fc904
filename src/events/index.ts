export {
  decodeHeaderValue,
  encodeHeaderValue,
  type HttpMode,
  isCloudEventContentType,
  isJsonMediaType,
  mediaType,
  parseHttpEvents,
  toBinaryHttp,
  toStructuredHttp,
} from './http.js';
export {
  type NatsMessageParts,
  type NatsMode,
  NotACloudEventError,
  parseNatsMessage,
  toBinaryNats,
  toStructuredNats,
} from './nats.js';
export { type CloudEvent, CONTEXT_ATTRIBUTES, REQUIRED_ATTRIBUTES } from './types.js';
export { validateEvent } from './validate.js';

/** The key ingest deduplicates on: source and id together identify an event. */
export function eventKey(event: { source: string; id: string }): string {
  return `${event.source}\u0000${event.id}`;
}
