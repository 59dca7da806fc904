import { z } from 'zod';
import { validateEvent } from '../events/index.js';
import type { CloudEvent } from '../events/types.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../templates/index.js';

/**
 * The `map` block of message-based sources: how a payload that is not a CloudEvent becomes one,
 * with templates as in the http source's `event` block. `scope` names what templates can read.
 */
export function eventMapSchema(scope: string, defaultId: string) {
  return z
    .strictObject({
      type: templateSchema().describe(`CloudEvent type (template; the scope is ${scope}).`),
      source: templateSchema().optional().describe('CloudEvent source. Default: herald://<source name>.'),
      subject: templateSchema().optional().describe('CloudEvent subject (template).'),
      id: templateSchema()
        .optional()
        .describe(
          `CloudEvent id (template). Default: ${defaultId}; ingest stores an event once per source and id.`,
        ),
      data: templateTreeSchema()
        .optional()
        .describe('The event data; string leaves are templates. Default: the payload as is.'),
    })
    .describe(
      'How a message that is not a CloudEvent becomes one. Without it such messages are set aside in the source dead-letter table (stream sources; Pub/Sub ones are logged and dropped).',
    );
}

export type EventMap = z.infer<ReturnType<typeof eventMapSchema>>;

/**
 * Renders a mapped CloudEvent. Throws a TemplateRenderError or EventValidationError (naming the
 * attribute) when the result is not a valid event.
 */
export function mapToEvent(
  map: EventMap,
  scope: Record<string, unknown>,
  defaults: { id: string; source: string; data: unknown },
): CloudEvent {
  const draft: Record<string, unknown> = {
    specversion: '1.0',
    id: map.id ? map.id.render(scope) : defaults.id,
    source: map.source ? map.source.render(scope) : defaults.source,
    type: map.type.render(scope),
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: map.data === undefined ? defaults.data : renderTree(map.data as TemplateTree, scope),
  };
  if (map.subject) {
    const subject = map.subject.render(scope);
    if (subject !== '') draft.subject = subject;
  }
  return validateEvent(draft);
}

/** A connection URL whose scheme is one of `protocols` (e.g. `nats:`), checked at config load. */
export function urlSchema(protocols: string[], hint: string) {
  return z.string().refine((value) => {
    try {
      return protocols.includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, hint);
}
