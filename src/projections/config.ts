import { z } from 'zod';
import { templateSchema, templateTreeSchema } from '../templates/index.js';

const fieldName = z.string().min(1).describe('A field of the view row.');

export const valueSchema = z
  .union([
    templateSchema(),
    z.strictObject({
      value: templateSchema().describe('Template over `event`, e.g. "{{ event.data.after.price }}".'),
      type: z
        .enum(['auto', 'number', 'string', 'boolean'])
        .default('auto')
        .describe(
          '`number` turns numeric strings (Debezium sends numeric/decimal as strings) into numbers; a value that is not numeric sends the event to the DLQ. `auto` keeps what the template gives.',
        ),
    }),
  ])
  .describe(
    'A value: a template over `event`. A template that is only a path (`{{ event.data.after.qty }}`) keeps the value’s JSON type; anything else renders to a string.',
  );

const amountSchema = z.strictObject({
  field: fieldName,
  by: valueSchema.describe(
    'How much: a template, always turned into a number (e.g. "{{ event.data.after.quantity }}").',
  ),
});

export const ruleSchema = z
  .strictObject({
    description: z.string().optional().describe('What the rule is for.'),
    filter: z
      .unknown()
      .optional()
      .describe(
        'Subscriptions-API filter choosing the events this rule applies to. Absent = every event of the projection.',
      ),
    key: templateSchema()
      .optional()
      .describe(
        'Key of the row this rule changes, when it is not the event’s own (the projection’s `key`), e.g. "{{ event.data.after.product_id }}".',
      ),
    upsert: z
      .union([z.literal('after'), z.record(fieldName, valueSchema)])
      .optional()
      .describe(
        'Creates the row or merges fields into it: `after` copies every column of the Debezium `after`; a map sets each field from a value.',
      ),
    delete: z.literal(true).optional().describe('Removes the row (e.g. for op `d`).'),
    increment: amountSchema
      .optional()
      .describe('Adds `by` to a numeric field atomically (a missing field counts as 0).'),
    decrement: amountSchema.optional().describe('Subtracts `by` from a numeric field atomically.'),
  })
  .refine(
    (rule) =>
      [
        rule.upsert !== undefined,
        rule.delete !== undefined,
        rule.increment !== undefined,
        rule.decrement !== undefined,
      ].filter(Boolean).length === 1,
    { message: 'a rule needs exactly one of upsert, delete, increment, decrement' },
  );

export const alertSchema = z.strictObject({
  field: fieldName.describe('Numeric field to watch.'),
  below: z.number().describe('Threshold: the alert fires when the field goes from >= below to < below.'),
  emit: z
    .strictObject({
      type: z.string().min(1).describe('CloudEvent type, e.g. inventory.low_stock.'),
      subject: templateSchema()
        .optional()
        .describe(
          'Template; default: the row key. Scope: event, projection, key, field, value, previous, row.',
        ),
      data: templateTreeSchema()
        .optional()
        .describe(
          'Event data (strings are templates, same scope as subject). Default: {projection, key, field, below, value, previous, row}.',
        ),
    })
    .describe('The CloudEvent emitted once per crossing (source herald://projections/<name>).'),
});

export const projectionSchema = z.strictObject({
  description: z.string().optional().describe('What the view holds.'),
  filter: z
    .unknown()
    .optional()
    .describe(
      'Events this projection is responsible for. Such an event that no rule matches goes to the DLQ (e.g. an unknown table). Absent: events no rule matches are ignored.',
    ),
  key: templateSchema().describe(
    'Key of the event’s own row: a template ("{{ event.data.after.id }}") or a column name ("id": read from `after`, or `before` for a delete).',
  ),
  rules: z
    .array(ruleSchema)
    .min(1, 'a projection needs at least one rule')
    .describe('Applied in order; every matching rule applies.'),
  alerts: z.array(alertSchema).default([]).describe('Threshold alerts over the view’s rows.'),
  batchSize: z
    .number()
    .int()
    .positive()
    .max(10_000)
    .default(1000)
    .describe('Most log events applied in one store transaction.'),
});

export const projectionsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/), projectionSchema)
  .default({})
  .describe('Materialized views kept from the event log, by name (read them at /api/views).');

export type ProjectionConfig = z.infer<typeof projectionSchema>;
export type RuleConfig = z.infer<typeof ruleSchema>;
export type AlertConfig = z.infer<typeof alertSchema>;
export type ValueConfig = z.infer<typeof valueSchema>;
