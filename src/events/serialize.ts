import type { CloudEvent } from './types.js';

const texts = new WeakMap<CloudEvent, string>();

/**
 * The event as JSON text, made once per event object. Ingest serialises every event before it
 * joins a group commit, so an event that cannot be serialised fails on its own; the store then
 * writes the same text instead of serialising again. Events are not changed once validated.
 */
export function eventJson(event: CloudEvent): string {
  let text = texts.get(event);
  if (text === undefined) {
    text = JSON.stringify(event);
    texts.set(event, text);
  }
  return text;
}

/**
 * The event as JSON text for a message body: the text ingest made when this process accepted the
 * event, else serialised now and not remembered, so an event read back from the store does not
 * keep a second copy of itself alive.
 */
export function eventJsonForSend(event: CloudEvent): string {
  return texts.get(event) ?? JSON.stringify(event);
}

/** The length of the JSON text of events parsed from stored text (`eventFromJson`). */
const lengths = new WeakMap<CloudEvent, number>();

/**
 * An event parsed from the text a store kept, which remembers the text's length: sizing an event
 * read back (the dispatcher's cache, a digest's budget) then costs no serialisation, and the text
 * itself is not kept alive with the event.
 */
export function eventFromJson(text: string): CloudEvent {
  const event = JSON.parse(text) as CloudEvent;
  lengths.set(event, text.length);
  return event;
}

/** The length of the event's JSON text, serialising it only when no store or ingest has. */
export function eventJsonLength(event: CloudEvent): number {
  return texts.get(event)?.length ?? lengths.get(event) ?? JSON.stringify(event).length;
}
