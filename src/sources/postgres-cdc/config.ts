import { z } from 'zod';

const identifier = /^[a-z_][a-z0-9_]{0,62}$/;

export const postgresCdcConfigSchema = z.strictObject({
  url: z
    .string()
    .min(1)
    .describe(
      'PostgreSQL connection URL, e.g. postgres://herald:${PGPASSWORD}@db:5432/shop. The role needs REPLICATION (or superuser), SELECT on the tables, and CREATE on the database unless the publication exists. The password never appears in logs or errors.',
    ),
  tables: z
    .array(
      z
        .string()
        .regex(/^[^.\s"]+(\.[^.\s"]+)?$/, 'a table is "schema.table" or "table"')
        .describe('A table: "schema.table", or "table" in schema public.'),
    )
    .min(1)
    .describe('Tables whose row changes become events.'),
  slot: z
    .string()
    .regex(identifier, 'a slot name is lower-case letters, digits and _ (at most 63)')
    .optional()
    .describe('Logical replication slot, created when missing. Default: herald_<source name>.'),
  publication: z
    .string()
    .regex(identifier, 'a publication name is lower-case letters, digits and _ (at most 63)')
    .optional()
    .describe(
      'Publication of the tables, created (or extended) when missing. Default: herald_<source name>.',
    ),
  topicPrefix: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _, . and -')
    .optional()
    .describe(
      "Debezium's topic.prefix (the logical server name): the envelope's source.name and the CloudEvent source /debezium/postgresql/<topicPrefix>. Default: the database name.",
    ),
  snapshotBatch: z
    .number()
    .int()
    .min(1)
    .max(50_000)
    .default(2000)
    .describe('Rows per ingest call while reading the first snapshot.'),
});
export type PostgresCdcConfig = z.infer<typeof postgresCdcConfigSchema>;
