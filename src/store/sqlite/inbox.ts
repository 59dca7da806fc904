import type Database from 'better-sqlite3';
import type { InboxStore } from '../types.js';
import { type Guard, inboxRow, json, type Row } from './rows.js';

/** Messages the inbox channel keeps, read at `GET /api/inbox`. */
export function sqliteInbox(db: Database.Database, guard: Guard): InboxStore {
  const add = db.prepare(
    `INSERT INTO inbox (channel, recipient, message, event_id, event_source, delivery_id, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
  );
  return {
    add: (m) =>
      guard(() =>
        inboxRow(
          add.get(
            m.channel,
            m.recipient,
            json(m.message),
            m.eventId,
            m.eventSource,
            m.deliveryId,
            m.createdAt ?? Date.now(),
          ) as Row,
        ),
      ),
    list: (q) =>
      guard(() => {
        const where: string[] = [];
        const values: unknown[] = [];
        if (q.beforeId !== undefined) {
          where.push('id < ?');
          values.push(q.beforeId);
        }
        if (q.channel !== undefined) {
          where.push('channel = ?');
          values.push(q.channel);
        }
        const rows = db
          .prepare(
            `SELECT * FROM inbox ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
          )
          .all(...values, q.limit) as Row[];
        return rows.map(inboxRow);
      }),
  };
}
