import type { DeadLetterFilter, DeadLetterStore, SourceDeadLetterStore } from '../types.js';
import { deliveryRow, int, type Query, type Row, sourceDeadLetterRow } from './rows.js';

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

/** Dead deliveries; a replay makes them pending again, with no lease. */
export function postgresDeadLetters(query: Query): DeadLetterStore {
  return {
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
          `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, lease_until = NULL, note = NULL, updated_at = $2
           WHERE id = ANY($1::bigint[]) AND status = 'dead' RETURNING id`,
          [selection.ids, now],
        );
      } else {
        const { where, values } = dlqWhere(selection.filter);
        values.push(now);
        rows = await query(
          `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $${values.length}, lease_until = NULL, note = NULL,
             updated_at = $${values.length}
           WHERE ${where.join(' AND ')} RETURNING id`,
          values,
        );
      }
      return rows.map((r) => int(r.id)).sort((a, b) => a - b);
    },
    async replayReplanned(id, as, also, now) {
      // One statement, so one transaction: the siblings exist only if the replayed one moved.
      const rows = await query(
        `WITH old AS (
           SELECT idempotency_key FROM deliveries WHERE id = $1
         ), moved AS (
           UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, lease_until = NULL,
             note = NULL, updated_at = $2, channel = $3, recipient = $4, idempotency_key = $5, max_attempts = $6
           WHERE id = $1 AND status = 'dead'
             AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.idempotency_key = $5 AND o.id <> $1)
           RETURNING id, event_seq, event_id, event_source, event_type, trigger, action
         ), added AS (
           INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel,
             recipient, idempotency_key, status, attempts, max_attempts, next_attempt_at, created_at, updated_at)
           SELECT m.event_seq, m.event_id, m.event_source, m.event_type, m.trigger, m.action, d.channel,
             d.recipient, d."idempotencyKey", 'pending', 0, d."maxAttempts", $2, $2, $2
           FROM moved m, jsonb_to_recordset($7::jsonb) AS d(channel text, recipient text, "idempotencyKey" text,
             "maxAttempts" int)
           ON CONFLICT (idempotency_key) DO NOTHING
           RETURNING id, idempotency_key
         ), digest_moved AS (
           -- A readdressed digest keeps its events, and a recipient added to it gets them too.
           UPDATE digest_events g SET delivery_key = $5 FROM old, moved
           WHERE g.delivery_key = old.idempotency_key AND old.idempotency_key <> $5
         ), digest_copied AS (
           INSERT INTO digest_events (delivery_key, event_seq, digest_key)
           SELECT a.idempotency_key, g.event_seq, g.digest_key FROM added a, old
           JOIN digest_events g ON g.delivery_key = old.idempotency_key
           ON CONFLICT DO NOTHING
         )
         SELECT id, 0 AS o FROM moved UNION ALL SELECT id, 1 AS o FROM added ORDER BY o, id`,
        [id, now, as.channel, as.recipient, as.idempotencyKey, as.maxAttempts, JSON.stringify(also)],
      );
      return rows.map((r) => int(r.id));
    },
  };
}

/** Messages stream sources set aside instead of storing their events. */
export function postgresSourceDeadLetters(query: Query): SourceDeadLetterStore {
  return {
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
  };
}
