import type { Attempt, DeliveryQuery, DeliveryStatus, DeliveryStore } from '../types.js';
import { deliveryRow, int, intOrNull, type Query } from './rows.js';

/**
 * Deliveries and their attempts. Claims use `FOR UPDATE SKIP LOCKED`, so two dispatchers never
 * take the same delivery; a lease is the row's `lease_until`.
 */
export function postgresDeliveries(query: Query): DeliveryStore {
  return {
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
    async digest(idempotencyKey) {
      const rows = await query(
        'SELECT event_seq, digest_key FROM digest_events WHERE delivery_key = $1 ORDER BY event_seq',
        [idempotencyKey],
      );
      if (rows.length === 0) return null;
      return { key: String(rows[0]!.digest_key), eventSeqs: rows.map((r) => int(r.event_seq)) };
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
      const rows = await query('SELECT * FROM attempts WHERE delivery_id = $1 ORDER BY number, started_at', [
        deliveryId,
      ]);
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
      const out: Record<DeliveryStatus, number> = { pending: 0, delivered: 0, dead: 0, suppressed: 0 };
      for (const r of rows) out[r.status as DeliveryStatus] = int(r.n);
      return out;
    },
    async oldestPendingAge(now) {
      const [r] = await query(`SELECT min(created_at) AS oldest FROM deliveries WHERE status = 'pending'`);
      const oldest = intOrNull(r?.oldest);
      return oldest === null ? 0 : Math.max(0, now - oldest);
    },
  };
}
