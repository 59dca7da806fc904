import pg from 'pg';
import type { Logger } from 'pino';
import { HeraldError } from '../../errors.js';
import { eventJson } from '../../events/serialize.js';
import type { CloudEvent } from '../../events/types.js';
import { nextTokenAt, TOKEN_SLACK } from '../token-bucket.js';
import type {
  AppendResult,
  Attempt,
  DeadLetterFilter,
  Delivery,
  DeliveryQuery,
  DeliveryStatus,
  InboxMessage,
  NewDelivery,
  RoutingRecord,
  SourceDeadLetter,
  Store,
  StoredEvent,
} from '../types.js';
import { migrations } from './migrations.js';
import { postgresProjections } from './projections.js';
import { postgresSubscriptions } from './subscriptions.js';

export interface PostgresStoreOptions {
  url: string;
  poolSize?: number;
  /** Schema to use (created if missing); lets tests and several Heralds share one database. */
  schema?: string;
  logger?: Logger;
}

// BIGINT columns come back as strings by default; every one Herald uses fits a JS number.
const int = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const intOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

type Row = Record<string, unknown>;

/** Events with their routing outcome (null until routed), which lives beside them (migration 7). */
const SELECT_EVENTS =
  'SELECT e.*, r.routed_at, r.routing FROM events e LEFT JOIN event_routing r ON r.seq = e.seq';

function eventRow(r: Row): StoredEvent {
  return {
    seq: int(r.seq),
    event: r.event as CloudEvent,
    receivedAt: int(r.received_at),
    routedAt: intOrNull(r.routed_at),
    routing: (r.routing as RoutingRecord | null) ?? null,
  };
}

function deliveryRow(r: Row): Delivery {
  return {
    id: int(r.id),
    eventSeq: int(r.event_seq),
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    eventType: r.event_type as string,
    trigger: r.trigger as string,
    action: int(r.action),
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    idempotencyKey: r.idempotency_key as string,
    status: r.status as DeliveryStatus,
    attempts: int(r.attempts),
    maxAttempts: int(r.max_attempts),
    nextAttemptAt: int(r.next_attempt_at),
    lastError: (r.last_error as string | null) ?? null,
    remoteId: (r.remote_id as string | null) ?? null,
    rendered: r.rendered ?? null,
    createdAt: int(r.created_at),
    updatedAt: int(r.updated_at),
  };
}

function inboxRow(r: Row): InboxMessage {
  return {
    id: int(r.id),
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    message: r.message,
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    deliveryId: intOrNull(r.delivery_id),
    createdAt: int(r.created_at),
  };
}

function sourceDeadLetterRow(r: Row): SourceDeadLetter {
  return {
    id: int(r.id),
    source: r.source as string,
    position: r.position as string,
    subject: (r.subject as string | null) ?? null,
    headers: JSON.parse(r.headers as string) as Record<string, string>,
    payload: r.payload as string,
    payloadEncoding: r.payload_encoding as SourceDeadLetter['payloadEncoding'],
    payloadBytes: int(r.payload_bytes),
    truncated: r.truncated === true,
    reason: r.reason as string,
    createdAt: int(r.created_at),
  };
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

/** JSON for a JSONB parameter; undefined becomes SQL NULL. */
const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

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

    events: {
      async append(events, receivedAt) {
        if (events.length === 0) return [];
        const key = (e: CloudEvent) => `${e.source}\u0000${e.id}`;
        const firstIndex = new Map<string, number>();
        const unique: CloudEvent[] = [];
        events.forEach((e, i) => {
          if (!firstIndex.has(key(e))) {
            firstIndex.set(key(e), i);
            unique.push(e);
          }
        });
        let rows: string;
        try {
          rows = `[${unique.map(eventJson).join(',')}]`;
        } catch (err) {
          throw new HeraldError(
            'EVENT_UNSTORABLE',
            `an event cannot be serialised: ${(err as Error).message}`,
            {
              cause: err,
            },
          );
        }
        const inserted = await query(
          `WITH inserted AS (
             INSERT INTO events (id, source, type, subject, received_at, event)
             SELECT t.e->>'id', t.e->>'source', t.e->>'type', t.e->>'subject', $2, t.e
             FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n)
             ORDER BY t.n
             ON CONFLICT (source, id) DO NOTHING
             RETURNING seq, source, id
           ), queued AS (
             INSERT INTO unrouted_events (seq) SELECT seq FROM inserted
           )
           SELECT seq, source, id FROM inserted`,
          [rows, receivedAt],
        ).catch(refusedEvents);
        const seqOf = new Map<string, { seq: number; fresh: boolean }>();
        for (const r of inserted) seqOf.set(`${r.source}\u0000${r.id}`, { seq: int(r.seq), fresh: true });
        const existing = unique.filter((e) => !seqOf.has(key(e)));
        if (existing.length > 0) {
          const rows = await query(
            `SELECT e.seq, e.source, e.id FROM events e
             JOIN unnest($1::text[], $2::text[]) AS t(source, id) ON e.source = t.source AND e.id = t.id`,
            [existing.map((e) => e.source), existing.map((e) => e.id)],
          );
          for (const r of rows) seqOf.set(`${r.source}\u0000${r.id}`, { seq: int(r.seq), fresh: false });
        }
        return events.map((e, i): AppendResult => {
          const found = seqOf.get(key(e));
          if (!found) throw new HeraldError('STORE_UNAVAILABLE', 'event vanished during append');
          return { seq: found.seq, duplicate: !found.fresh || firstIndex.get(key(e)) !== i };
        });
      },
      async get(seq) {
        const [r] = await query(`${SELECT_EVENTS} WHERE e.seq = $1`, [seq]);
        return r ? eventRow(r) : null;
      },
      async getMany(seqs) {
        if (seqs.length === 0) return [];
        return (await query(`${SELECT_EVENTS} WHERE e.seq = ANY($1::bigint[]) ORDER BY e.seq`, [seqs])).map(
          eventRow,
        );
      },
      async findById(id, source) {
        const [r] = source
          ? await query(`${SELECT_EVENTS} WHERE e.id = $1 AND e.source = $2`, [id, source])
          : await query(`${SELECT_EVENTS} WHERE e.id = $1 ORDER BY e.seq DESC LIMIT 1`, [id]);
        return r ? eventRow(r) : null;
      },
      async list(q) {
        const where: string[] = [];
        const values: unknown[] = [];
        const add = (clause: string, value: unknown) => {
          values.push(value);
          where.push(clause.replace('?', `$${values.length}`));
        };
        if (q.beforeSeq !== undefined) add('e.seq < ?', q.beforeSeq);
        if (q.type !== undefined) add('e.type = ?', q.type);
        if (q.source !== undefined) add('e.source = ?', q.source);
        if (q.subject !== undefined) add('e.subject = ?', q.subject);
        values.push(q.limit);
        const rows = await query(
          `${SELECT_EVENTS} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.seq DESC LIMIT $${values.length}`,
          values,
        );
        return rows.map(eventRow);
      },
      async unrouted(limit) {
        return (
          await query(
            'SELECT e.* FROM unrouted_events u JOIN events e ON e.seq = u.seq ORDER BY u.seq LIMIT $1',
            [limit],
          )
        ).map(eventRow);
      },
      async readForProjection(cursor, limit) {
        // Sequence values are taken before commit, so with several appenders seq 5 can commit
        // after seq 6: a reader following seq alone would pass 5 for good. Each row records its
        // transaction id (tx); every transaction older than the snapshot's xmin has ended and any
        // new one gets a larger id, so rows with tx < xmin are final and nothing can appear
        // behind them in (tx, seq) order. The cursor is the seq of the last event read and its
        // row gives the tx; 0, or a row that is not there, means the start (applied ids keep a
        // re-read from applying anything twice).
        //
        // Events of one row keep their order: one process appends one transaction at a time (the
        // ingest batcher), so a later append gets its transaction id after the earlier one has
        // committed — a larger tx — and within one transaction seq follows the batch order.
        // A write transaction left open anywhere on the server holds xmin back and delays
        // projections (never routing) until it ends.
        const rows = await query(
          `${SELECT_EVENTS}
           WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot())
             AND (e.tx, e.seq) > (COALESCE((SELECT tx FROM events WHERE seq = $1), '0'::xid8), $1)
           ORDER BY e.tx, e.seq LIMIT $2`,
          [cursor, limit],
        );
        const events = rows.map(eventRow);
        return { events, next: events.at(-1)?.seq ?? cursor };
      },
      async count() {
        const [r] = await query('SELECT count(*) AS n FROM events');
        return int(r!.n);
      },
    },

    routing: {
      async commit(batch, routedAt) {
        if (batch.length === 0) return 0;
        const deliveries: NewDelivery[] = batch.flatMap((b) => b.deliveries);
        // One statement is one transaction: the deliveries and the routed marks commit together,
        // in one round trip instead of four (BEGIN, INSERT, UPDATE, COMMIT).
        const [r] = await query(
          `WITH planned AS (
             INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
               idempotency_key, status, attempts, max_attempts, next_attempt_at, created_at, updated_at)
             SELECT d."eventSeq", e.id, e.source, e.type, d.trigger, d.action, d.channel, d.recipient,
               d."idempotencyKey", 'pending', 0, d."maxAttempts", d."notBefore", $2, $2
             FROM jsonb_to_recordset($1::jsonb) AS d("eventSeq" bigint, trigger text, action int, channel text,
               recipient text, "idempotencyKey" text, "maxAttempts" int, "notBefore" bigint)
             JOIN events e ON e.seq = d."eventSeq"
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING 1
           ), routed AS (
             INSERT INTO event_routing (seq, routed_at, routing)
             SELECT t.seq, $2, t.record FROM jsonb_to_recordset($3::jsonb) AS t(seq bigint, record jsonb)
             ON CONFLICT (seq) DO UPDATE SET routed_at = EXCLUDED.routed_at, routing = EXCLUDED.routing
           ), dequeued AS (
             DELETE FROM unrouted_events WHERE seq = ANY($4::bigint[])
           )
           SELECT count(*) AS inserted FROM planned`,
          [
            JSON.stringify(deliveries),
            routedAt,
            JSON.stringify(batch.map((b) => ({ seq: b.seq, record: b.record }))),
            batch.map((b) => b.seq),
          ],
        );
        return int(r!.inserted);
      },
    },

    deliveries: {
      async claim({ channel, limit, now, leaseMs }) {
        const rows = await query(
          `UPDATE deliveries SET lease_until = $4 WHERE id IN (
             SELECT id FROM deliveries
             WHERE channel = $1 AND status = 'pending' AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2)
             ORDER BY next_attempt_at, id LIMIT $3
             FOR UPDATE SKIP LOCKED)
           RETURNING *`,
          [channel, now, limit, now + leaseMs],
        );
        return rows.map(deliveryRow).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || a.id - b.id);
      },
      async record(outcomes) {
        if (outcomes.length === 0) return;
        // One statement, so one round trip and one transaction for the whole batch.
        await query(
          `WITH t AS (
             SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(id bigint, status text, next_attempt_at bigint,
               error text, remote_id text, rendered jsonb, number int, started_at bigint, duration_ms int,
               outcome text, attempt_error text, attempt_next_at bigint)
           ), updated AS (
             UPDATE deliveries d SET status = t.status, attempts = GREATEST(d.attempts, t.number),
               next_attempt_at = COALESCE(t.next_attempt_at, d.next_attempt_at), lease_until = NULL,
               last_error = t.error, remote_id = COALESCE(t.remote_id, d.remote_id),
               rendered = COALESCE(t.rendered->0, d.rendered), updated_at = $2
             FROM t WHERE d.id = t.id
             RETURNING d.id
           )
           INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error, next_attempt_at)
           SELECT t.id, number, started_at, duration_ms, outcome, attempt_error, attempt_next_at
           FROM t JOIN updated u ON u.id = t.id
           ON CONFLICT DO NOTHING`,
          [
            JSON.stringify(
              outcomes.map((o) => ({
                id: o.deliveryId,
                status: o.status,
                next_attempt_at: o.nextAttemptAt,
                error: o.error,
                remote_id: o.remoteId,
                // Wrapped, so that a rendered JSON null is stored as such; no rendered keeps the last.
                rendered: o.rendered === undefined ? undefined : [o.rendered],
                number: o.attempt.number,
                started_at: o.attempt.startedAt,
                duration_ms: o.attempt.durationMs,
                outcome: o.attempt.outcome,
                attempt_error: o.attempt.error,
                attempt_next_at: o.attempt.nextAttemptAt,
              })),
            ),
            Date.now(),
          ],
        );
      },
      async renewLeases(held, until) {
        if (held.length === 0) return [];
        const rows = await query(
          `UPDATE deliveries d SET lease_until = $3
           FROM unnest($1::bigint[], $2::bigint[]) AS t(id, lease_until)
           WHERE d.id = t.id AND d.lease_until = t.lease_until AND d.status = 'pending'
           RETURNING d.id`,
          [held.map((l) => l.id), held.map((l) => l.leaseUntil), until],
        );
        return rows.map((r) => int(r.id));
      },
      async release(ids) {
        if (ids.length === 0) return;
        await query(
          `UPDATE deliveries SET lease_until = NULL WHERE id = ANY($1::bigint[]) AND status = 'pending'`,
          [ids],
        );
      },
      async releaseAllLeases() {
        const rows = await query(
          `UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL RETURNING id`,
        );
        return rows.length;
      },
      async get(id) {
        const [r] = await query('SELECT * FROM deliveries WHERE id = $1', [id]);
        return r ? deliveryRow(r) : null;
      },
      async list(q: DeliveryQuery) {
        const where: string[] = [];
        const values: unknown[] = [];
        const add = (clause: string, value: unknown) => {
          values.push(value);
          where.push(clause.replace('?', `$${values.length}`));
        };
        if (q.beforeId !== undefined) add('id < ?', q.beforeId);
        if (q.status !== undefined) add('status = ?', q.status);
        if (q.eventSeq !== undefined) add('event_seq = ?', q.eventSeq);
        if (q.channel !== undefined) add('channel = ?', q.channel);
        if (q.trigger !== undefined) add('trigger = ?', q.trigger);
        values.push(q.limit);
        const rows = await query(
          `SELECT * FROM deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`,
          values,
        );
        return rows.map(deliveryRow);
      },
      async attempts(deliveryId) {
        const rows = await query(
          'SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY number, started_at',
          [deliveryId],
        );
        return rows.map(
          (r): Attempt => ({
            deliveryId: int(r.delivery_id),
            number: int(r.number),
            startedAt: int(r.started_at),
            durationMs: int(r.duration_ms),
            outcome: r.outcome as Attempt['outcome'],
            error: (r.error as string | null) ?? null,
            nextAttemptAt: intOrNull(r.next_attempt_at),
          }),
        );
      },
      async nextDue(channel) {
        const [r] = await query(
          `SELECT min(next_attempt_at) AS due FROM deliveries WHERE channel = $1 AND status = 'pending' AND lease_until IS NULL`,
          [channel],
        );
        return intOrNull(r?.due);
      },
      async counts() {
        const rows = await query('SELECT status, count(*) AS n FROM deliveries GROUP BY status');
        const out: Record<DeliveryStatus, number> = { pending: 0, delivered: 0, dead: 0 };
        for (const r of rows) out[r.status as DeliveryStatus] = int(r.n);
        return out;
      },
      async oldestPendingAge(now) {
        const [r] = await query(`SELECT min(created_at) AS oldest FROM deliveries WHERE status = 'pending'`);
        const oldest = intOrNull(r?.oldest);
        return oldest === null ? 0 : Math.max(0, now - oldest);
      },
    },

    dlq: {
      async list(q) {
        const { where, values } = dlqWhere(q);
        if (q.beforeId !== undefined) {
          values.push(q.beforeId);
          where.push(`id < $${values.length}`);
        }
        values.push(q.limit);
        const rows = await query(
          `SELECT * FROM deliveries WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $${values.length}`,
          values,
        );
        return rows.map(deliveryRow);
      },
      async count() {
        const [r] = await query(`SELECT count(*) AS n FROM deliveries WHERE status = 'dead'`);
        return int(r!.n);
      },
      async replay(selection, now) {
        let rows: Row[];
        if ('ids' in selection) {
          rows = await query(
            `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, lease_until = NULL, updated_at = $2
             WHERE id = ANY($1::bigint[]) AND status = 'dead' RETURNING id`,
            [selection.ids, now],
          );
        } else {
          const { where, values } = dlqWhere(selection.filter);
          values.push(now);
          rows = await query(
            `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $${values.length}, lease_until = NULL,
               updated_at = $${values.length}
             WHERE ${where.join(' AND ')} RETURNING id`,
            values,
          );
        }
        return rows.map((r) => int(r.id)).sort((a, b) => a - b);
      },
    },

    sourceDlq: {
      async add(letter, now) {
        const [r] = await query(
          `INSERT INTO source_dead_letters (source, position, subject, headers, payload, payload_encoding,
             payload_bytes, truncated, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (source, position) DO UPDATE SET subject = excluded.subject, headers = excluded.headers,
             payload = excluded.payload, payload_encoding = excluded.payload_encoding,
             payload_bytes = excluded.payload_bytes, truncated = excluded.truncated,
             reason = excluded.reason, created_at = excluded.created_at
           RETURNING *`,
          [
            letter.source,
            letter.position,
            letter.subject,
            JSON.stringify(letter.headers),
            letter.payload,
            letter.payloadEncoding,
            letter.payloadBytes,
            letter.truncated,
            letter.reason,
            now,
          ],
        );
        return sourceDeadLetterRow(r!);
      },
      async get(id) {
        const [r] = await query('SELECT * FROM source_dead_letters WHERE id = $1', [id]);
        return r ? sourceDeadLetterRow(r) : null;
      },
      async list(q) {
        const where: string[] = [];
        const values: unknown[] = [];
        if (q.source !== undefined) {
          values.push(q.source);
          where.push(`source = $${values.length}`);
        }
        if (q.beforeId !== undefined) {
          values.push(q.beforeId);
          where.push(`id < $${values.length}`);
        }
        values.push(q.limit);
        const rows = await query(
          `SELECT * FROM source_dead_letters ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`,
          values,
        );
        return rows.map(sourceDeadLetterRow);
      },
      async count(source) {
        const [r] =
          source === undefined
            ? await query('SELECT count(*) AS n FROM source_dead_letters')
            : await query('SELECT count(*) AS n FROM source_dead_letters WHERE source = $1', [source]);
        return int(r!.n);
      },
      async remove(id) {
        const rows = await query('DELETE FROM source_dead_letters WHERE id = $1 RETURNING id', [id]);
        return rows.length === 1;
      },
    },

    inbox: {
      async add(m) {
        const [r] = await query(
          `INSERT INTO inbox (channel, recipient, message, event_id, event_source, delivery_id, created_at)
           VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) RETURNING *`,
          [
            m.channel,
            m.recipient,
            json(m.message),
            m.eventId,
            m.eventSource,
            m.deliveryId,
            m.createdAt ?? Date.now(),
          ],
        );
        return inboxRow(r!);
      },
      async list(q) {
        const where: string[] = [];
        const values: unknown[] = [];
        if (q.beforeId !== undefined) {
          values.push(q.beforeId);
          where.push(`id < $${values.length}`);
        }
        if (q.channel !== undefined) {
          values.push(q.channel);
          where.push(`channel = $${values.length}`);
        }
        values.push(q.limit);
        const rows = await query(
          `SELECT * FROM inbox ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`,
          values,
        );
        return rows.map(inboxRow);
      },
    },

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

function dlqWhere(filter: DeadLetterFilter): { where: string[]; values: unknown[] } {
  const where = [`status = 'dead'`];
  const values: unknown[] = [];
  const add = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    values.push(value);
    where.push(`${column} = $${values.length}`);
  };
  add('channel', filter.channel);
  add('trigger', filter.trigger);
  add('event_type', filter.eventType);
  if (filter.reason !== undefined) {
    values.push(`%${filter.reason.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`last_error LIKE $${values.length}`);
  }
  return { where, values };
}

/**
 * An append that PostgreSQL refuses for what it holds — a data exception (class 22, e.g. a
 * `\u0000` in JSON text), a constraint (class 23), a value too complex (54) — is EVENT_UNSTORABLE,
 * so ingest can find the event and store the rest. A lost connection stays STORE_UNAVAILABLE.
 */
function refusedEvents(err: unknown): never {
  const sqlState = ((err as HeraldError).cause as { code?: unknown } | undefined)?.code;
  if (typeof sqlState === 'string' && /^(22|23|54)/.test(sqlState)) {
    throw new HeraldError('EVENT_UNSTORABLE', (err as Error).message, { cause: err });
  }
  throw err;
}

function wrap(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  // pg messages never include the connection password; keep them, and the cause.
  return new HeraldError('STORE_UNAVAILABLE', `PostgreSQL: ${(err as Error).message}`, { cause: err });
}
