import type Database from 'better-sqlite3';
import type {
  DeadLetterFilter,
  DeadLetterStore,
  ReplannedDelivery,
  SourceDeadLetterStore,
} from '../types.js';
import type { ClaimCursors } from './claim-cursors.js';
import type { Leases } from './deliveries.js';
import { deliveryRow, type Guard, type Row, sourceDeadLetterRow } from './rows.js';

function dlqWhere(filter: DeadLetterFilter): { where: string[]; values: unknown[] } {
  const where = [`status = 'dead'`];
  const values: unknown[] = [];
  if (filter.channel !== undefined) {
    where.push('channel = ?');
    values.push(filter.channel);
  }
  if (filter.trigger !== undefined) {
    where.push('trigger = ?');
    values.push(filter.trigger);
  }
  if (filter.eventType !== undefined) {
    where.push('event_type = ?');
    values.push(filter.eventType);
  }
  if (filter.reason !== undefined) {
    where.push(`instr(last_error, ?) > 0`);
    values.push(filter.reason);
  }
  return { where, values };
}

/** Dead deliveries; a replay makes them pending again and drops any lease they still had. */
export function sqliteDeadLetters(
  db: Database.Database,
  guard: Guard,
  leases: Leases,
  cursors: ClaimCursors,
): DeadLetterStore {
  const countDead = db.prepare(`SELECT count(*) AS n FROM deliveries WHERE status = 'dead'`);
  const retarget = db.prepare(
    `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = @now, lease_until = NULL, note = NULL,
       updated_at = @now, channel = @channel, recipient = @recipient, idempotency_key = @key,
       max_attempts = @maxAttempts
     WHERE id = @id AND status = 'dead'
       AND NOT EXISTS (SELECT 1 FROM deliveries o
         WHERE o.event_seq = deliveries.event_seq AND o.idempotency_key = @key AND o.id <> @id)
     RETURNING id`,
  );
  const addSibling = db.prepare(
    `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
       idempotency_key, status, attempts, max_attempts, next_attempt_at, created_at, updated_at)
     SELECT event_seq, event_id, event_source, event_type, trigger, action, @channel, @recipient, @key,
       'pending', 0, @maxAttempts, @now, @now, @now FROM deliveries WHERE id = @id
     ON CONFLICT (event_seq, idempotency_key) DO NOTHING RETURNING id`,
  );
  const keyOf = db.prepare('SELECT idempotency_key FROM deliveries WHERE id = ?').pluck();
  // A readdressed digest keeps its events, and a recipient added to it gets them too.
  const moveDigest = db.prepare('UPDATE digest_events SET delivery_key = ? WHERE delivery_key = ?');
  const copyDigest = db.prepare(
    `INSERT OR IGNORE INTO digest_events (delivery_key, event_seq, digest_key)
     SELECT ?, event_seq, digest_key FROM digest_events WHERE delivery_key = ?`,
  );
  const replayReplanned = db.transaction(
    (id: number, as: ReplannedDelivery, also: ReplannedDelivery[], now: number): number[] => {
      const params = (d: ReplannedDelivery) => ({
        id,
        now,
        channel: d.channel,
        recipient: d.recipient,
        key: d.idempotencyKey,
        maxAttempts: d.maxAttempts,
      });
      const oldKey = keyOf.get(id) as string | undefined;
      const moved = retarget.get(params(as)) as { id: number } | undefined;
      if (!moved) return [];
      leases.delete(id);
      cursors.forgetAll();
      if (oldKey !== undefined && oldKey !== as.idempotencyKey) moveDigest.run(as.idempotencyKey, oldKey);
      const ids = [id];
      for (const d of also) {
        const added = addSibling.get(params(d)) as { id: number } | undefined;
        if (added) {
          ids.push(added.id);
          copyDigest.run(d.idempotencyKey, as.idempotencyKey);
        }
      }
      return ids;
    },
  );
  return {
    list: (q) =>
      guard(() => {
        const { where, values } = dlqWhere(q);
        if (q.beforeId !== undefined) {
          where.push('id < ?');
          values.push(q.beforeId);
        }
        const rows = db
          .prepare(`SELECT * FROM deliveries WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`)
          .all(...values, q.limit) as Row[];
        return rows.map(deliveryRow);
      }),
    count: () => guard(() => (countDead.get() as { n: number }).n),
    replay: (selection, now) =>
      guard(() => {
        let where: string[];
        let values: unknown[];
        if ('ids' in selection) {
          if (selection.ids.length === 0) return [];
          where = [`status = 'dead'`, `id IN (${selection.ids.map(() => '?').join(',')})`];
          values = selection.ids;
        } else ({ where, values } = dlqWhere(selection.filter));
        const rows = db
          .prepare(
            `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL, note = NULL, updated_at = ?
             WHERE ${where.join(' AND ')} RETURNING id`,
          )
          .all(now, now, ...values) as { id: number }[];
        for (const r of rows) leases.delete(r.id);
        if (rows.length > 0) cursors.forgetAll();
        return rows.map((r) => r.id).sort((a, b) => a - b);
      }),
    replayReplanned: (id, as, also, now) => guard(() => replayReplanned(id, as, also, now)),
  };
}

/** Messages stream sources set aside instead of storing their events. */
export function sqliteSourceDeadLetters(db: Database.Database, guard: Guard): SourceDeadLetterStore {
  return {
    add: (letter, now) =>
      guard(() =>
        sourceDeadLetterRow(
          db
            .prepare(
              `INSERT INTO source_dead_letters (source, position, subject, headers, payload, payload_encoding,
                 payload_bytes, truncated, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (source, position) DO UPDATE SET subject = excluded.subject, headers = excluded.headers,
                 payload = excluded.payload, payload_encoding = excluded.payload_encoding,
                 payload_bytes = excluded.payload_bytes, truncated = excluded.truncated,
                 reason = excluded.reason, created_at = excluded.created_at
               RETURNING *`,
            )
            .get(
              letter.source,
              letter.position,
              letter.subject,
              JSON.stringify(letter.headers),
              letter.payload,
              letter.payloadEncoding,
              letter.payloadBytes,
              letter.truncated ? 1 : 0,
              letter.reason,
              now,
            ) as Row,
        ),
      ),
    get: (id) =>
      guard(() => {
        const r = db.prepare('SELECT * FROM source_dead_letters WHERE id = ?').get(id) as Row | undefined;
        return r ? sourceDeadLetterRow(r) : null;
      }),
    list: (q) =>
      guard(() => {
        const where: string[] = [];
        const values: unknown[] = [];
        if (q.source !== undefined) {
          where.push('source = ?');
          values.push(q.source);
        }
        if (q.beforeId !== undefined) {
          where.push('id < ?');
          values.push(q.beforeId);
        }
        const rows = db
          .prepare(
            `SELECT * FROM source_dead_letters ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
          )
          .all(...values, q.limit) as Row[];
        return rows.map(sourceDeadLetterRow);
      }),
    count: (source) =>
      guard(
        () =>
          (
            (source === undefined
              ? db.prepare('SELECT count(*) AS n FROM source_dead_letters').get()
              : db.prepare('SELECT count(*) AS n FROM source_dead_letters WHERE source = ?').get(source)) as {
              n: number;
            }
          ).n,
      ),
    remove: (id) =>
      guard(() => db.prepare('DELETE FROM source_dead_letters WHERE id = ?').run(id).changes === 1),
  };
}
