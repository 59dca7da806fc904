import type Database from 'better-sqlite3';
import type { CloudEvent } from '../../events/types.js';
import { appliedKey, type ProjectionRow, type ProjectionStore } from '../types.js';

type Row = Record<string, unknown>;

function projectionRow(r: Row): ProjectionRow {
  return {
    key: r.key as string,
    value: JSON.parse(r.value as string) as Record<string, unknown>,
    updatedAt: r.updated_at as number,
  };
}

/** LIKE pattern matching `text` literally anywhere. */
const containing = (text: string): string => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** Materialized views in the embedded store; `guard` maps errors like the rest of it. */
export function sqliteProjections(
  db: Database.Database,
  guard: <T>(work: () => T) => Promise<T>,
): ProjectionStore {
  const s = {
    cursor: db.prepare('SELECT seq FROM projection_cursors WHERE projection = ?'),
    setCursor: db.prepare(
      `INSERT INTO projection_cursors (projection, seq, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (projection) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`,
    ),
    row: db.prepare('SELECT * FROM projection_rows WHERE projection = ? AND key = ?'),
    upsert: db.prepare(
      `INSERT INTO projection_rows (projection, key, value, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (projection, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
    ),
    delete: db.prepare('DELETE FROM projection_rows WHERE projection = ? AND key = ?'),
    isApplied: db.prepare(
      'SELECT 1 FROM projection_applied WHERE projection = ? AND event_source = ? AND event_id = ?',
    ),
    applied: db.prepare(
      `INSERT INTO projection_applied (projection, event_source, event_id, event_seq, applied_at)
       VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ),
    failure: db.prepare(
      `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
         idempotency_key, status, attempts, max_attempts, next_attempt_at, last_error, created_at, updated_at)
       SELECT seq, id, source, type, @channel, 0, @channel, NULL, @key, 'dead', 1, 3, @now, @reason, @now, @now
       FROM events WHERE seq = @seq
       ON CONFLICT (event_seq, idempotency_key) DO UPDATE SET status = 'dead', last_error = excluded.last_error,
         updated_at = excluded.updated_at, lease_until = NULL`,
    ),
    outboxAdd: db.prepare('INSERT INTO projection_outbox (projection, event, created_at) VALUES (?, ?, ?)'),
    outbox: db.prepare('SELECT * FROM projection_outbox ORDER BY id LIMIT ?'),
    outboxDelete: db.prepare('DELETE FROM projection_outbox WHERE id = ?'),
    counts: db.prepare('SELECT projection, count(*) AS n FROM projection_rows GROUP BY projection'),
  };

  const applyTx = db.transaction((batch: Parameters<ProjectionStore['apply']>[0]) => {
    const { projection, now } = batch;
    if (batch.cursor) {
      const current = (s.cursor.get(projection) as { seq: number } | undefined)?.seq ?? 0;
      if (current !== batch.cursor.from) return { ok: false as const, cursor: current };
    }
    const rows = new Map<string, Record<string, unknown>>();
    for (const key of new Set(batch.keys)) {
      const r = s.row.get(projection, key) as Row | undefined;
      if (r) rows.set(key, JSON.parse(r.value as string));
    }
    const applied = new Set<string>();
    for (const e of batch.events) {
      if (s.isApplied.get(projection, e.source, e.id)) applied.add(appliedKey(e.source, e.id));
    }
    const change = batch.compute(rows, applied);
    for (const [key, value] of change.rows) {
      if (value === null) s.delete.run(projection, key);
      else s.upsert.run(projection, key, JSON.stringify(value), now);
    }
    for (const a of change.applied) s.applied.run(projection, a.source, a.id, a.eventSeq, now);
    const channel = `projection:${projection}`;
    for (const f of change.failures) {
      s.failure.run({ channel, key: `${channel}:${f.eventSeq}`, now, reason: f.reason, seq: f.eventSeq });
    }
    for (const event of change.outbox) s.outboxAdd.run(projection, JSON.stringify(event), now);
    if (batch.cursor) s.setCursor.run(projection, batch.cursor.to, now);
    return { ok: true as const };
  });
  const ackTx = db.transaction((ids: number[]) => {
    for (const id of ids) s.outboxDelete.run(id);
  });

  return {
    cursor: (projection) => guard(() => (s.cursor.get(projection) as { seq: number } | undefined)?.seq ?? 0),
    apply: (batch) => guard(() => applyTx(batch)),
    get: (projection, key) =>
      guard(() => {
        const r = s.row.get(projection, key) as Row | undefined;
        return r ? projectionRow(r) : null;
      }),
    list: (projection, q) =>
      guard(() => {
        const where = ['projection = ?'];
        const values: unknown[] = [projection];
        if (q.after !== undefined) {
          where.push('key > ?');
          values.push(q.after);
        }
        if (q.q) {
          // SQLite's LIKE is case-insensitive for ASCII, which is what a search box expects.
          where.push("value LIKE ? ESCAPE '\\'");
          values.push(containing(q.q));
        }
        return (
          db
            .prepare(`SELECT * FROM projection_rows WHERE ${where.join(' AND ')} ORDER BY key LIMIT ?`)
            .all(...values, q.limit) as Row[]
        ).map(projectionRow);
      }),
    counts: () =>
      guard(() =>
        Object.fromEntries(
          (s.counts.all() as { projection: string; n: number }[]).map((r) => [r.projection, r.n]),
        ),
      ),
    outbox: (limit) =>
      guard(() =>
        (s.outbox.all(limit) as Row[]).map((r) => ({
          id: r.id as number,
          projection: r.projection as string,
          event: JSON.parse(r.event as string) as CloudEvent,
        })),
      ),
    ackOutbox: (ids) => guard(() => ackTx(ids)),
  };
}
