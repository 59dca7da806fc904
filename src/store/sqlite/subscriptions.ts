import type Database from 'better-sqlite3';
import type { CloudEvent } from '../../events/types.js';
import type { FeedItem, Subscriber, SubscriptionStore } from '../types.js';

type Row = Record<string, unknown>;

function subscriberRow(r: Row): Subscriber {
  return {
    id: r.id as string,
    name: (r.name as string | null) ?? null,
    slackUserId: (r.slack_user_id as string | null) ?? null,
    email: (r.email as string | null) ?? null,
    preferences: JSON.parse((r.preferences as string | null) ?? '{}'),
    createdAt: r.created_at as number,
  };
}

/** Subscribers, subscriptions and feeds in the embedded store; `guard` maps errors like the rest of it. */
export function sqliteSubscriptions(
  db: Database.Database,
  guard: <T>(work: () => T) => Promise<T>,
): SubscriptionStore {
  const s = {
    upsert: db.prepare(
      `INSERT INTO subscribers (id, name, slack_user_id, email, preferences, created_at) VALUES (?, ?, ?, ?, '{}', ?)
       ON CONFLICT (id) DO UPDATE SET name = coalesce(excluded.name, name),
         slack_user_id = coalesce(excluded.slack_user_id, slack_user_id), email = coalesce(excluded.email, email)
       RETURNING *`,
    ),
    get: db.prepare('SELECT * FROM subscribers WHERE id = ?'),
    delete: db.prepare('DELETE FROM subscribers WHERE id = ?'),
    deleteSubs: db.prepare('DELETE FROM subscriptions WHERE subscriber_id = ?'),
    setPrefs: db.prepare('UPDATE subscribers SET preferences = ? WHERE id = ?'),
    subscribe: db.prepare(
      'INSERT INTO subscriptions (key, subscriber_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    unsubscribe: db.prepare('DELETE FROM subscriptions WHERE key = ? AND subscriber_id = ?'),
    keysOf: db.prepare('SELECT key FROM subscriptions WHERE subscriber_id = ? ORDER BY key'),
    subscribersOf: db.prepare(
      `SELECT s.* FROM subscriptions x JOIN subscribers s ON s.id = x.subscriber_id WHERE x.key = ? ORDER BY s.id`,
    ),
    appendFeed: db.prepare('INSERT INTO feed (key, event_seq, at, event) VALUES (?, ?, ?, ?)'),
    trimFeed: db.prepare(
      `DELETE FROM feed WHERE key = ? AND (at < ? OR id <= coalesce(
         (SELECT id FROM feed WHERE key = ? ORDER BY id DESC LIMIT 1 OFFSET ?), -1))`,
    ),
    feed: db.prepare('SELECT * FROM feed WHERE key = ? AND at >= ? ORDER BY id DESC LIMIT ?'),
  };
  const deleteTx = db.transaction((id: string) => {
    s.deleteSubs.run(id);
    return s.delete.run(id).changes === 1;
  });
  const prefsTx = db.transaction((id: string, patch: Record<string, unknown>) => {
    const row = s.get.get(id) as Row | undefined;
    if (!row) return null;
    const current = subscriberRow(row);
    const preferences = { ...current.preferences, ...patch };
    s.setPrefs.run(JSON.stringify(preferences), id);
    return { ...current, preferences };
  });
  const feedTx = db.transaction((items: FeedItem[], retention: { maxItems: number; minAt: number }) => {
    const keys = new Set<string>();
    for (const item of items) {
      s.appendFeed.run(item.key, item.eventSeq, item.at, JSON.stringify(item.event));
      keys.add(item.key);
    }
    for (const key of keys) s.trimFeed.run(key, retention.minAt, key, retention.maxItems);
  });
  return {
    upsertSubscriber: (sub, now) =>
      guard(() =>
        subscriberRow(
          s.upsert.get(sub.id, sub.name ?? null, sub.slackUserId ?? null, sub.email ?? null, now) as Row,
        ),
      ),
    getSubscriber: (id) =>
      guard(() => {
        const row = s.get.get(id) as Row | undefined;
        return row ? subscriberRow(row) : null;
      }),
    listSubscribers: (q) =>
      guard(() =>
        (
          db
            .prepare(
              `SELECT * FROM subscribers ${q.afterId !== undefined ? 'WHERE id > ?' : ''} ORDER BY id LIMIT ?`,
            )
            .all(...(q.afterId !== undefined ? [q.afterId] : []), q.limit) as Row[]
        ).map(subscriberRow),
      ),
    deleteSubscriber: (id) => guard(() => deleteTx(id)),
    setPreferences: (id, patch) => guard(() => prefsTx(id, patch)),
    subscribe: (subscriberId, key, now) => guard(() => s.subscribe.run(key, subscriberId, now).changes === 1),
    unsubscribe: (subscriberId, key) => guard(() => s.unsubscribe.run(key, subscriberId).changes === 1),
    keysOf: (subscriberId) =>
      guard(() => (s.keysOf.all(subscriberId) as { key: string }[]).map((r) => r.key)),
    subscribersOf: (key) => guard(() => (s.subscribersOf.all(key) as Row[]).map(subscriberRow)),
    appendFeed: (items, retention) => guard(() => feedTx(items, retention)),
    feed: (key, q) =>
      guard(() =>
        (s.feed.all(key, q.sinceAt ?? 0, q.limit) as Row[]).map((r) => ({
          key: r.key as string,
          eventSeq: r.event_seq as number,
          at: r.at as number,
          event: JSON.parse(r.event as string) as CloudEvent,
        })),
      ),
  };
}
