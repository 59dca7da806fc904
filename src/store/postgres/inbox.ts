import type { InboxStore } from '../types.js';
import { inboxRow, json, type Query } from './rows.js';

/** Messages the inbox channel keeps, read at `GET /api/inbox`. */
export function postgresInbox(query: Query): InboxStore {
  return {
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
  };
}
