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
 * The length of the event's JSON text: the text made by `eventJson` when there is one, else
 * measured without keeping it (an event read back from the store need not hold its text too).
 */
export function eventJsonLength(event: CloudEvent): number {
  return (texts.get(event) ?? JSON.stringify(event)).length;
}
