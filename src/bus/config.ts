import { z } from 'zod';

// The `bus` block of herald.yaml; src/config puts it in the whole file's schema.

/** NATS subject matching: `*` is one token, `>` the rest. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

const natsSubject = z
  .string()
  .regex(/^[^\s.*>]+(\.[^\s.*>]+)*$/, 'a NATS subject without wildcards, e.g. herald.events');

export const jetstreamStreamSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'stream names use letters, digits, "_" and "-"')
      .default('HERALD')
      .describe('JetStream stream holding the events (created if missing).'),
    subjects: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Subjects the stream captures when Herald creates it. Default: `[<bus.subject>]`.'),
    retention: z
      .enum(['limits', 'workqueue', 'interest'])
      .default('limits')
      .describe(
        '`limits`: kept until maxAgeMs (a replayable log); `workqueue`: removed once routed; `interest`: removed once every consumer acked.',
      ),
    replicas: z.number().int().min(1).max(5).default(1).describe('Copies in a NATS cluster (1, 3 or 5).'),
    maxAgeMs: z
      .number()
      .int()
      .nonnegative()
      .default(7 * 24 * 3600_000)
      .describe('How long the stream keeps an event (0 = forever, bounded by other limits).'),
    duplicateWindowMs: z
      .number()
      .int()
      .positive()
      .default(120_000)
      .describe('Window in which JetStream drops a second publish of the same event (Nats-Msg-Id).'),
  })
  .describe('The stream, as Herald creates it when missing. An existing stream is used as it is.');

export const jetstreamConsumerSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'consumer names use letters, digits, "_" and "-"')
      .default('herald-router')
      .describe('Durable pull consumer shared by every router process: each event is routed once.'),
    ackWaitMs: z
      .number()
      .int()
      .min(1000)
      .default(30_000)
      .describe('An event a router took but did not ack within this time goes to another router.'),
    maxAckPending: z
      .number()
      .int()
      .positive()
      .default(10_000)
      .describe('Events taken but not yet acked, across all routers, before JetStream holds back.'),
    batch: z.number().int().positive().max(5000).default(500).describe('Events routed per commit.'),
    maxDeliver: z
      .number()
      .int()
      .min(-1)
      .refine((n) => n !== 0, 'at least 1, or -1 for no limit')
      .default(10)
      .describe(
        'Times JetStream hands one message to routers before it gives up on it (routers that crash on it, or never ack it). Its events stay unrouted in the store, so the recovery sweep publishes them again after `recoverAfterMs`; -1: no limit.',
      ),
  })
  .describe('The durable consumer the routers share.');

export const busSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({ kind: z.literal('embedded').describe('The log lives in the store.') }),
    z
      .strictObject({
        kind: z
          .literal('jetstream')
          .describe('NATS JetStream carries events from ingest to the routers of every process.'),
        url: z
          .string()
          .min(1)
          .describe('NATS server URL; several separated by commas, e.g. nats://n1:4222,nats://n2:4222.'),
        subject: natsSubject.default('herald.events').describe('Subject Herald publishes stored events on.'),
        stream: jetstreamStreamSchema.default(jetstreamStreamSchema.parse({})),
        consumer: jetstreamConsumerSchema.default(jetstreamConsumerSchema.parse({})),
        recoverAfterMs: z
          .number()
          .int()
          .min(1000)
          .default(30_000)
          .describe(
            'An event stored but still unrouted after this long is published again (a process may have died between storing and publishing).',
          ),
      })
      .superRefine((bus, ctx) => {
        const subjects = bus.stream.subjects ?? [bus.subject];
        if (!subjects.some((s) => subjectMatches(s, bus.subject))) {
          ctx.addIssue({
            code: 'custom',
            path: ['subject'],
            message: `"${bus.subject}" is not captured by bus.stream.subjects (${subjects.join(', ')})`,
          });
        }
      }),
  ])
  .describe(
    'The event log between ingest and the router. `embedded`: on the store, in this process; `jetstream`: NATS JetStream, shared by several processes.',
  );

export type BusConfig = z.infer<typeof busSchema>;
export type JetStreamBusConfig = Extract<BusConfig, { kind: 'jetstream' }>;
