import { z } from 'zod';
import { type ChannelKind, delivered, templateScope } from '../../engine/types.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../../templates/index.js';

export const logConfigSchema = z.strictObject({
  stream: z.enum(['stdout', 'stderr']).default('stdout').describe('Where the JSON lines go.'),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(10_000)
    .describe('Total time writing one line may take before the attempt is retried.'),
});

export const logActionSchema = z.strictObject({
  text: templateSchema()
    .optional()
    .describe('Message text (template). Without text or message, the whole event is logged.'),
  message: templateTreeSchema().optional().describe('A structured message (strings are templates).'),
});
export type LogAction = z.infer<typeof logActionSchema>;

export const logChannel: ChannelKind<z.infer<typeof logConfigSchema>, LogAction> = {
  kind: 'log',
  description: 'Writes one JSON line per delivery to stdout (or stderr).',
  configSchema: logConfigSchema,
  actionSchema: logActionSchema,
  create(name, config) {
    const out = config.stream === 'stderr' ? process.stderr : process.stdout;
    return {
      concurrency: 1,
      timeoutMs: config.timeoutMs,
      async send(req) {
        const scope = templateScope(req);
        const message =
          req.action.message !== undefined
            ? renderTree(req.action.message as TemplateTree, scope)
            : req.action.text
              ? req.action.text.render(scope)
              : req.event;
        const line = {
          channel: name,
          trigger: req.trigger,
          recipient: req.recipient,
          eventId: req.event.id,
          eventType: req.event.type,
          idempotencyKey: req.idempotencyKey,
          message,
        };
        out.write(`${JSON.stringify(line)}\n`);
        return delivered(undefined, message);
      },
    };
  },
};
