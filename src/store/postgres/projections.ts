import type pg from 'pg';
import type { CloudEvent } from '../../events/types.js';
import { appliedKey, type ProjectionRow, type ProjectionStore } from '../types.js';

type Row = Record<string, unknown>;
type Query = (text: string, values?: unknown[]) => Promise<Row[]>;
type Tx = <T>(work: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

function projectionRow(r: Row): ProjectionRow {
  return {
    key: r.key as string,
    value: r.value as Record<string, unknown>,
    updatedAt: Number(r.updated_at),
  };
}

const containing = (text: string): string => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Materialized views in PostgreSQL; the cursor row lock serialises projectors across processes. */
export function postgresProjections(query: Query, tx: Tx): ProjectionStore {
  return {
    async cursor(projection) {
      const [row] = await query('SELECT seq FROM projection_cursors WHERE projection = $1', [projection]);
      return row ? Number(row.seq) : 0;
    },
    apply: (batch) =>
      tx(async (c) => {
        const { projection, now } = batch;
        await c.query(
          `INSERT INTO projection_cursors (projection, seq, updated_at) VALUES ($1, 0, $2)
           ON CONFLICT (projection) DO NOTHING`,
          [projection, now],
        );
        // Held to commit: two processes never apply the same projection at once.
        const locked = await c.query('SELECT seq FROM projection_cursors WHERE projection = $1 FOR UPDATE', [
          projection,
        ]);
        const current = Number(locked.rows[0]!.seq);
        if (batch.cursor && current !== batch.cursor.from) return { ok: false as const, cursor: current };
        const keys = [...new Set(batch.keys)];
        const rows = new Map<string, Record<string, unknown>>();
        if (keys.length > 0) {
          const res = await c.query(
            'SELECT key, value FROM projection_rows WHERE projection = $1 AND key = ANY($2::text[])',
            [projection, keys],
          );
          for (const r of res.rows) rows.set(r.key as string, r.value as Record<string, unknown>);
        }
        const applied = new Set<string>();
        if (batch.events.length > 0) {
          const res = await c.query(
            `SELECT a.event_source, a.event_id FROM projection_applied a
             JOIN unnest($2::text[], $3::text[]) AS t(source, id) ON a.event_source = t.source AND a.event_id = t.id
             WHERE a.projection = $1`,
            [projection, batch.events.map((e) => e.source), batch.events.map((e) => e.id)],
          );
          for (const r of res.rows) applied.add(appliedKey(r.event_source as string, r.event_id as string));
        }
        const change = batch.compute(rows, applied);
        const upserts = [...change.rows].filter((e): e is [string, Record<string, unknown>] => e[1] !== null);
        const deletes = [...change.rows].filter(([, v]) => v === null).map(([k]) => k);
        if (upserts.length > 0) {
          await c.query(
            `INSERT INTO projection_rows (projection, key, value, updated_at)
             SELECT $1, t.key, t.value::jsonb, $4 FROM unnest($2::text[], $3::text[]) AS t(key, value)
             ON CONFLICT (projection, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
            [projection, upserts.map(([k]) => k), upserts.map(([, v]) => JSON.stringify(v)), now],
          );
        }
        if (deletes.length > 0) {
          await c.query('DELETE FROM projection_rows WHERE projection = $1 AND key = ANY($2::text[])', [
            projection,
            deletes,
          ]);
        }
        if (change.applied.length > 0) {
          await c.query(
            `INSERT INTO projection_applied (projection, event_source, event_id, event_seq, applied_at)
             SELECT $1, t.source, t.id, t.seq, $5 FROM unnest($2::text[], $3::text[], $4::bigint[]) AS t(source, id, seq)
             ON CONFLICT DO NOTHING`,
            [
              projection,
              change.applied.map((a) => a.source),
              change.applied.map((a) => a.id),
              change.applied.map((a) => a.eventSeq),
              now,
            ],
          );
        }
        if (change.failures.length > 0) {
          const channel = `projection:${projection}`;
          await c.query(
            `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
               idempotency_key, status, attempts, max_attempts, next_attempt_at, last_error, created_at, updated_at)
             SELECT e.seq, e.id, e.source, e.type, $1, 0, $1, NULL, $1 || ':' || e.seq, 'dead', 1, 3, $4, t.reason, $4, $4
             FROM unnest($2::bigint[], $3::text[]) AS t(seq, reason) JOIN events e ON e.seq = t.seq
             ON CONFLICT (idempotency_key) DO UPDATE SET status = 'dead', last_error = excluded.last_error,
               updated_at = excluded.updated_at, lease_until = NULL`,
            [channel, change.failures.map((f) => f.eventSeq), change.failures.map((f) => f.reason), now],
          );
        }
        if (change.outbox.length > 0) {
          await c.query(
            `INSERT INTO projection_outbox (projection, event, created_at)
             SELECT $1, e::jsonb, $3 FROM unnest($2::text[]) AS e`,
            [projection, change.outbox.map((e) => JSON.stringify(e)), now],
          );
        }
        if (batch.cursor) {
          await c.query('UPDATE projection_cursors SET seq = $2, updated_at = $3 WHERE projection = $1', [
            projection,
            batch.cursor.to,
            now,
          ]);
        }
        return { ok: true as const };
      }),
    async get(projection, key) {
      const [row] = await query('SELECT * FROM projection_rows WHERE projection = $1 AND key = $2', [
        projection,
        key,
      ]);
      return row ? projectionRow(row) : null;
    },
    async list(projection, q) {
      const where = ['projection = $1'];
      const values: unknown[] = [projection];
      if (q.after !== undefined) {
        values.push(q.after);
        where.push(`key COLLATE "C" > $${values.length}`);
      }
      if (q.q) {
        values.push(containing(q.q));
        where.push(`value::text ILIKE $${values.length}`);
      }
      values.push(q.limit);
      // COLLATE "C": the same byte order as SQLite, so cursors page identically on both stores.
      const rows = await query(
        `SELECT * FROM projection_rows WHERE ${where.join(' AND ')} ORDER BY key COLLATE "C" LIMIT $${values.length}`,
        values,
      );
      return rows.map(projectionRow);
    },
    async counts() {
      const rows = await query('SELECT projection, count(*) AS n FROM projection_rows GROUP BY projection');
      return Object.fromEntries(rows.map((r) => [r.projection as string, Number(r.n)]));
    },
    async outbox(limit) {
      const rows = await query('SELECT * FROM projection_outbox ORDER BY id LIMIT $1', [limit]);
      return rows.map((r) => ({
        id: Number(r.id),
        projection: r.projection as string,
        event: r.event as CloudEvent,
      }));
    },
    async ackOutbox(ids) {
      if (ids.length === 0) return;
      await query('DELETE FROM projection_outbox WHERE id = ANY($1::bigint[])', [ids]);
    },
  };
}
