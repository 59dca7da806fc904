import { z } from 'zod';
import { type ChannelKind, delivered, failed, retry, templateScope } from '../../engine/types.js';
import { EventValidationError, errorMessage } from '../../errors.js';
import { followUpDraft, nextHop } from '../../events/hops.js';
import { validateEvent } from '../../events/index.js';
import { renderTree, type TemplateTree, templateTreeSchema } from '../../templates/index.js';

export const emitConfigSchema = z.strictObject({
  maxHops: z
    .number()
    .int()
    .positive()
    .default(16)
    .describe('How many emits deep a chain may go; the next one fails to the DLQ, which stops loops.'),
  concurrency: z.number().int().positive().default(8).describe('Events emitted at once.'),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(30_000)
    .describe('Total time one emit may wait for its event to be durable in the log before it is retried.'),
});

export const emitActionSchema = z.strictObject({
  event: templateTreeSchema().describe(
    'The new CloudEvent; strings are templates. `type` is required; `source` defaults to herald://emit/<channel>, `id` to one derived from the delivery (so retries do not duplicate), `data` to the triggering event’s data.',
  ),
});
export type EmitAction = z.infer<typeof emitActionSchema>;

/** Publishes a follow-up CloudEvent, rendered from the triggering one, into Herald's own log. */
export const emitChannel: ChannelKind<z.infer<typeof emitConfigSchema>, EmitAction> = {
  kind: 'emit',
  description:
    'Publishes a new CloudEvent rendered from the triggering event back into Herald (follow-up events).',
  configSchema: emitConfigSchema,
  actionSchema: emitActionSchema,
  create(name, config, context) {
    return {
      concurrency: config.concurrency,
      timeoutMs: config.timeoutMs,
      async send(req) {
        const hops = nextHop(req.event);
        if (hops > config.maxHops) {
          return failed(
            `hop limit of ${config.maxHops} reached: event ${req.event.id} (${req.event.type}) was already re-emitted ${hops - 1} times`,
          );
        }
        const rendered = renderTree(req.action.event as TemplateTree, templateScope(req));
        if (rendered === null || typeof rendered !== 'object' || Array.isArray(rendered)) {
          return failed('the emit action’s `event` must be an object');
        }
        const draft = followUpDraft(req.event, rendered as Record<string, unknown>, {
          id: req.idempotencyKey,
          source: `herald://emit/${name}`,
          inheritData: true,
        });
        let event: ReturnType<typeof validateEvent>;
        try {
          event = validateEvent(draft);
        } catch (err) {
          if (err instanceof EventValidationError)
            return failed(`the emitted event is invalid: ${err.message}`, draft);
          throw err;
        }
        try {
          await context.emit([event]);
        } catch (err) {
          return retry(`could not append the emitted event: ${errorMessage(err)}`, undefined, event);
        }
        return delivered(event.id, event);
      },
    };
  },
};
