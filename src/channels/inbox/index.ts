import { z } from 'zod';
import { type ChannelKind, delivered, templateScope } from '../../engine/types.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../../templates/index.js';

export const inboxConfigSchema = z.strictObject({
  concurrency: z.number().int().positive().default(8).describe('Messages stored at once.'),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(30_000)
    .describe('Total time storing one message may take before the attempt is retried.'),
});

/**
 * The inbox keeps rendered messages in Herald's store, readable at `GET /api/inbox`. It stands in
 * for Slack or email when their credentials are not configured, so the message is never lost.
 */
export const inboxActionSchema = z
  .object({
    text: templateSchema().optional().describe('Message text (template).'),
    subject: templateSchema().optional().describe('Subject line, as an email would have (template).'),
    message: templateTreeSchema().optional().describe('Any structured message (strings are templates).'),
  })
  // Actions written for Slack or email (blocks, html, cc…) stay valid when they fall back to the inbox.
  .catchall(templateTreeSchema());
export type InboxAction = z.infer<typeof inboxActionSchema>;

export const inboxChannel: ChannelKind<z.infer<typeof inboxConfigSchema>, InboxAction> = {
  kind: 'inbox',
  description: 'Stores each rendered message in Herald (GET /api/inbox, the dashboard).',
  configSchema: inboxConfigSchema,
  actionSchema: inboxActionSchema,
  create(name, config, context) {
    return {
      concurrency: config.concurrency,
      timeoutMs: config.timeoutMs,
      async send(req) {
        const scope = templateScope(req);
        const message: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(req.action)) {
          if (value !== undefined) message[key] = renderTree(value as TemplateTree, scope);
        }
        if (Object.keys(message).length === 0) message.text = JSON.stringify(req.event.data ?? null);
        const stored = await context.inbox.add({
          channel: name,
          recipient: req.recipient,
          message,
          eventId: req.event.id,
          eventSource: req.event.source,
          deliveryId: req.deliveryId,
        });
        return delivered(String(stored.id), message);
      },
    };
  },
};
