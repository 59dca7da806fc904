import type pg from 'pg';
import type { CloudEvent } from '../../events/types.js';
import type { FeedItem, Subscriber, SubscriptionStore } from '../types.js';

type Row = Record<string, unknown>;
type Query = (text: string, values?: unknown[]) => Promise<Row[]>;
type Tx = <T>(work: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

function subscriberRow(r: Row): Subscriber {
  return {
    id: r.id as string,
    name: (r.name as string | null) ?? null,
    slackUserId: (r.slack_user_id as string | null) ?? null,
    email: (r.email as string | null) ?? null,
    preferences: (r.preferences as Record<string, unknown> | null) ?? {},
    createdAt: Number(r.created_at),
  };
}

/** Subscribers, subscriptions and feeds in PostgreSQL, shared by every Herald process. */
export function postgresSubscriptions(query: Query, tx: Tx): SubscriptionStore {
  return {
    async upsertSubscriber(sub, now) {
      const [row] = await query(
        `INSERT INTO subscribers (id, name, slack_user_id, email, preferences, created_at) VALUES ($1, $2, $3, $4, '{}', $5)
         ON CONFLICT (id) DO UPDATE SET name = coalesce(excluded.name, subscribers.name),
           slack_user_id = coalesce(excluded.slack_user_id, subscribers.slack_user_id),
           email = coalesce(excluded.email, subscribers.email)
         RETURNING *`,
        [sub.id, sub.name ?? null, sub.slackUserId ?? null, sub.email ?? null, now],
      );
      return subscriberRow(row!);
    },
    async getSubscriber(id) {
      const [row] = await query('SELECT * FROM subscribers WHERE id = $1', [id]);
      return row ? subscriberRow(row) : null;
    },
    async listSubscribers(q) {
      const rows =
        q.afterId !== undefined
          ? await query('SELECT * FROM subscribers WHERE id > $1 ORDER BY id LIMIT $2', [q.afterId, q.limit])
          : await query('SELECT * FROM subscribers ORDER BY id LIMIT $1', [q.limit]);
      return rows.map(subscriberRow);
    },
    deleteSubscriber: (id) =>
      tx(async (client) => {
        await client.query('DELETE FROM subscriptions WHERE subscriber_id = $1', [id]);
        return ((await client.query('DELETE FROM subscribers WHERE id = $1', [id])).rowCount ?? 0) === 1;
      }),
    async setPreferences(id, patch) {
      // jsonb || merges at the top level, atomically: concurrent toggles of different keys both stick.
      const [row] = await query(
        'UPDATE subscribers SET preferences = preferences || $2::jsonb WHERE id = $1 RETURNING *',
        [id, JSON.stringify(patch)],
      );
      return row ? subscriberRow(row) : null;
    },
    async subscribe(subscriberId, key, now) {
      const rows = await query(
        'INSERT INTO subscriptions (key, subscriber_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING key',
        [key, subscriberId, now],
      );
      return rows.length === 1;
    },
    async unsubscribe(subscriberId, key) {
      const rows = await query(
        'DELETE FROM subscriptions WHERE key = $1 AND subscriber_id = $2 RETURNING key',
        [key, subscriberId],
      );
      return rows.length === 1;
    },
    async keysOf(subscriberId) {
      const rows = await query('SELECT key FROM subscriptions WHERE subscriber_id = $1 ORDER BY key', [
        subscriberId,
      ]);
      return rows.map((r) => r.key as string);
    },
    async subscribersOf(key) {
      const rows = await query(
        'SELECT s.* FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id WHERE x.key = $1 ORDER BY s.id',
        [key],
      );
      return rows.map(subscriberRow);
    },
    appendFeed: (items: FeedItem[], retention) =>
      tx(async (client) => {
        if (items.length === 0) return;
        await client.query(
          `INSERT INTO feed (key, event_seq, at, event)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::jsonb[])`,
          [
            items.map((i) => i.key),
            items.map((i) => i.eventSeq),
            items.map((i) => i.at),
            items.map((i) => JSON.stringify(i.event)),
          ],
        );
        for (const key of new Set(items.map((i) => i.key))) {
          await client.query(
            `DELETE FROM feed WHERE key = $1 AND (at < $2 OR id <= coalesce(
               (SELECT id FROM feed WHERE key = $1 ORDER BY id DESC LIMIT 1 OFFSET $3), -1))`,
            [key, retention.minAt, retention.maxItems],
          );
        }
      }),
    async feed(key, q) {
      const rows = await query('SELECT * FROM feed WHERE key = $1 AND at >= $2 ORDER BY id DESC LIMIT $3', [
        key,
        q.sinceAt ?? 0,
        q.limit,
      ]);
      return rows.map((r) => ({
        key: r.key as string,
        eventSeq: Number(r.event_seq),
        at: Number(r.at),
        event: r.event as CloudEvent,
      }));
    },
  };
}
