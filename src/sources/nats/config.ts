import { z } from 'zod';
import { natsUrlSchema } from '../../nats/index.js';
import { eventMapSchema } from '../map.js';

const jetstreamSchema = z.strictObject({
  stream: z.string().min(1).describe('Name of an existing JetStream stream holding the subjects.'),
  consumer: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only')
    .describe(
      'Durable pull consumer; created when missing (explicit acks, filtered to `subjects`). Herald processes using the same consumer share its messages.',
    ),
  batch: z.number().int().min(1).max(10_000).default(100).describe('Messages pulled per request.'),
  ackWaitMs: z
    .number()
    .int()
    .min(1000)
    .default(30_000)
    .describe(
      'When Herald creates the consumer: how long a message may stay unacknowledged before JetStream redelivers it. Well above the time a batch takes to be stored, so only the messages of a process that stopped or crashed come back, within half a minute.',
    ),
  maxDeliver: z
    .number()
    .int()
    .min(-1)
    .refine((n) => n !== 0, 'at least 1, or -1 for no limit')
    .default(-1)
    .describe(
      'When Herald creates the consumer: deliveries per message before JetStream gives up on it (-1: no limit). No limit by default on purpose: a message that fails mapping or validation, or whose event ingest refuses, is set aside in the source dead-letter table and terminated at its first delivery, so redelivery only follows a store outage or a stopped process, and a limit would make JetStream give up on messages during a long outage (those are then set aside too, named by JetStream’s advisory).',
    ),
  nakDelayMs: z
    .number()
    .int()
    .min(0)
    .default(1000)
    .describe(
      'When a batch cannot be stored (the store is unavailable), how long JetStream waits before redelivering it.',
    ),
});

export const natsSourceConfigSchema = z.strictObject({
  url: natsUrlSchema
    .default('nats://127.0.0.1:4222')
    .describe('NATS server URL; user:password@ or token@ credentials may be part of it (never logged).'),
  subjects: z
    .array(z.string().min(1))
    .min(1, 'list at least one subject')
    .describe(
      'Subjects to receive (wildcards allowed). With `jetstream`, the consumer’s filter (several need NATS 2.10).',
    ),
  queue: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Queue group for core subscriptions: Herald processes with the same queue each get a share of the messages.',
    ),
  jetstream: jetstreamSchema
    .optional()
    .describe(
      'Consume from a JetStream stream instead of core NATS: messages are acknowledged only once their events are stored, so none is lost. Recommended.',
    ),
  map: eventMapSchema(
    '`subject` (the NATS subject), `body` (the JSON payload) and `headers`',
    'with JetStream `<stream>/<stream sequence>` (the same on redelivery), else the `Nats-Msg-Id` header or a new time-ordered UUID (version 7)',
  ).optional(),
});
export type NatsSourceConfig = z.infer<typeof natsSourceConfigSchema>;
export type NatsJetStreamConfig = NonNullable<NatsSourceConfig['jetstream']>;
