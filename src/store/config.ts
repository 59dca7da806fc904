import { z } from 'zod';

// The `store` block of herald.yaml; src/config puts it in the whole file's schema.

export const storeSchema = z
  .discriminatedUnion('kind', [
    z.strictObject({
      kind: z.literal('sqlite').describe('Embedded SQLite file (the default).'),
      path: z
        .string()
        .optional()
        .describe(
          'SQLite file. Default: `<data dir>/herald.db` (`--data` sets the data dir). Beside it SQLite keeps its write-ahead log (`-wal`, up to about 64 MiB under sustained writes; removed at a clean stop) and its index (`-shm`).',
        ),
      synchronous: z
        .enum(['full', 'normal'])
        .default('full')
        .describe(
          '`full` survives power loss (default). `normal` is faster but may lose the last commits on a power cut.',
        ),
    }),
    z.strictObject({
      kind: z.literal('postgres').describe('Shared PostgreSQL database, for several Herald processes.'),
      url: z.string().min(1).describe('PostgreSQL connection URL, e.g. ${DATABASE_URL}.'),
      poolSize: z.number().int().positive().default(10).describe('Connections in the pool.'),
      schema: z
        .string()
        .regex(/^[a-z_][a-z0-9_]*$/)
        .default('herald')
        .describe('PostgreSQL schema holding Herald’s tables (created if missing).'),
    }),
  ])
  .describe('Where Herald keeps events, deliveries, the DLQ and the inbox.');

export type StoreConfig = z.infer<typeof storeSchema>;
