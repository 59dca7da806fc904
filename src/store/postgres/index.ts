import pg from 'pg';
import type { Logger } from 'pino';
import { HeraldError } from '../../errors.js';
import { nextTokenAt, TOKEN_SLACK } from '../token-bucket.js';
import type { Store } from '../types.js';
import { postgresDeadLetters, postgresSourceDeadLetters } from './dead-letters.js';
import { postgresDeliveries } from './deliveries.js';
import { postgresEvents, postgresRouting } from './events.js';
import { postgresInbox } from './inbox.js';
import { migrations } from './migrations.js';
import { postgresProjections } from './projections.js';
import { int, json, type Row } from './rows.js';
import { postgresSubscriptions } from './subscriptions.js';

export interface PostgresStoreOptions {
  url: string;
  poolSize?: number;
  /** Schema to use (created if missing); lets tests and several Heralds share one database. */
  schema?: string;
  logger?: Logger;
}

// The bucket refilled to $3 (now, ms) at $4 tokens per second, capped at $5 (burst); the same
// arithmetic as src/store/token-bucket.ts. A caller whose clock is behind gets no refill.
const AVAILABLE = `LEAST($5::float8, b.tokens + GREATEST(0, $3::bigint - b.refilled_at) * $4::float8 / 1000)`;
const grant = (tokens: string) => `LEAST($2::int, floor(${tokens} + ${TOKEN_SLACK}::float8))::int`;

/**
 * Takes up to $2 tokens from channel $1's bucket in one statement: the insert creates a bucket
 * seen for the first time (full, less this grant); otherwise the conflicting row is locked and
 * updated from its latest committed version, so concurrent takers queue on the row and each sees
 * what the one before left.
 */
const TAKE_TOKENS = `
INSERT INTO rate_buckets AS b (channel, tokens, refilled_at, granted)
SELECT $1, $5::float8 - g, $3::bigint, g FROM (SELECT ${grant('$5::float8')} AS g) AS first
ON CONFLICT (channel) DO UPDATE SET
  granted = ${grant(AVAILABLE)},
  tokens = GREATEST(0, ${AVAILABLE} - ${grant(AVAILABLE)}),
  refilled_at = GREATEST(b.refilled_at, $3::bigint)
RETURNING granted, tokens, refilled_at`;

const GIVE_BACK_TOKENS = `
UPDATE rate_buckets AS b SET
  tokens = LEAST($5::float8, ${AVAILABLE} + $2::int),
  refilled_at = GREATEST(b.refilled_at, $3::bigint)
WHERE channel = $1`;

/**
 * The shared store on PostgreSQL, for several Herald processes. Writes are batched into one
 * statement per batch, claims use `FOR UPDATE SKIP LOCKED` so two dispatchers never take
 * the same delivery, and commits are synchronous (`synchronous_commit=on`, the server default).
 *
 * The hot batch writes (append, routing, outcomes) send their rows as one JSON parameter, read
 * with jsonb_array_elements / jsonb_to_recordset. node-postgres sends a JS array as a text array
 * literal, built by string concatenation with every element escaped; for a batch of events (JSON
 * with many quotes) that was about a sixth of everything a busy Herald allocated, and
 * JSON.stringify does the same work natively.
 */
export function createPostgresStore(options: PostgresStoreOptions): Store {
  const schema = options.schema ?? 'herald';
  if (!/^[a-z_][a-z0-9_]*$/.test(schema))
    throw new HeraldError('CONFIG_INVALID', `invalid schema name "${schema}"`);
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    options: `-c search_path=${schema}`,
  });
  pool.on('error', (err) => options.logger?.warn({ err: err.message }, 'idle PostgreSQL connection failed'));

  const query = async (text: string, values?: unknown[]): Promise<Row[]> => {
    try {
      return (await pool.query(text, values)).rows;
    } catch (err) {
      throw wrap(err);
    }
  };
  const tx = async <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw wrap(err);
    }
    // When the server ends the session (a restart, a failover), pg emits 'error' on the client as
    // well as failing the statement; on a checked-out client nobody else listens, and an unheard
    // 'error' event would end the process. The statement's own failure reaches the caller.
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      if (!lost) await client.query('ROLLBACK').catch(() => undefined);
      throw wrap(err);
    } finally {
      client.removeListener('error', onError);
      // With the error, the pool discards the connection instead of handing it out again.
      client.release(lost);
    }
  };

  const store: Store = {
    kind: 'postgres',

    async migrate() {
      await query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await tx(async (c) => {
        // One migrator at a time across processes.
        await c.query('SELECT pg_advisory_xact_lock(4242001)');
        await c.query(
          'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at BIGINT)',
        );
        const done = new Set(
          (await c.query('SELECT version FROM schema_migrations')).rows.map((r) => int(r.version)),
        );
        for (const m of migrations) {
          if (done.has(m.version)) continue;
          await c.query(m.sql);
          await c.query('INSERT INTO schema_migrations VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
        }
      });
    },

    async close() {
      await pool.end();
    },

    async ping() {
      await query('SELECT 1');
    },

    events: postgresEvents(query),
    routing: postgresRouting(query, tx),
    deliveries: postgresDeliveries(query),
    dlq: postgresDeadLetters(query),
    sourceDlq: postgresSourceDeadLetters(query),
    inbox: postgresInbox(query),

    rateLimits: {
      async take({ channel, wanted, now, perSecond, burst }) {
        const [r] = await query(TAKE_TOKENS, [
          channel,
          Math.max(0, Math.floor(wanted)),
          now,
          perSecond,
          burst,
        ]);
        const bucket = { tokens: Number(r!.tokens), refilledAt: int(r!.refilled_at) };
        return { granted: int(r!.granted), nextAt: nextTokenAt(bucket, perSecond) };
      },
      async giveBack({ channel, count, now, perSecond, burst }) {
        if (count <= 0) return;
        await query(GIVE_BACK_TOKENS, [channel, Math.floor(count), now, perSecond, burst]);
      },
    },

    subscriptions: postgresSubscriptions(query, tx),
    projections: postgresProjections(query, tx),

    kv: {
      async get<T>(namespace: string, key: string) {
        const [r] = await query('SELECT value FROM kv WHERE namespace = $1 AND key = $2', [namespace, key]);
        return r ? (r.value as T) : null;
      },
      async set(namespace, key, value) {
        await query(
          `INSERT INTO kv (namespace, key, value) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value`,
          [namespace, key, json(value)],
        );
      },
      async delete(namespace, key) {
        await query('DELETE FROM kv WHERE namespace = $1 AND key = $2', [namespace, key]);
      },
      async setIfAbsent(namespace, key, value) {
        const rows = await query(
          `INSERT INTO kv (namespace, key, value) VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING RETURNING key`,
          [namespace, key, json(value)],
        );
        return rows.length === 1;
      },
    },
  };
  return store;
}

function wrap(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  // pg messages never include the connection password; keep them, and the cause.
  return new HeraldError('STORE_UNAVAILABLE', `PostgreSQL: ${(err as Error).message}`, { cause: err });
}
