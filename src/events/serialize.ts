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
