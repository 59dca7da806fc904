import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { HeraldError } from '../../errors.js';
import { eventJson } from '../../events/serialize.js';
import type { CloudEvent } from '../../events/types.js';
import { type Bucket, grantable, nextTokenAt, refilled } from '../token-bucket.js';
import type {
  AppendResult,
  Attempt,
  DeadLetterFilter,
  Delivery,
  DeliveryQuery,
  DeliveryStatus,
  InboxMessage,
  NewDelivery,
  PlannedRouting,
  RoutingRecord,
  SourceDeadLetter,
  Store,
  StoredEvent,
} from '../types.js';
import { migrations } from './migrations.js';
import { sqliteProjections } from './projections.js';
import { sqliteSubscriptions } from './subscriptions.js';

/** How far the subject index may trail the log: the most events a subject lookup reads unindexed. */
const SUBJECT_BATCH = 20_000;

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. Parent directories are created. */
  path: string;
  /** `full` (default) survives power loss; `normal` may lose the last commits on a power cut. */
  synchronous?: 'full' | 'normal';
  logger?: Logger;
}

type Row = Record<string, unknown>;

const parse = (text: unknown): unknown =>
  text === null || text === undefined ? null : JSON.parse(text as string);
const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v));

function eventRow(r: Row): StoredEvent {
  return {
    seq: r.seq as number,
    event: JSON.parse(r.event as string) as CloudEvent,
    receivedAt: r.received_at as number,
    routedAt: (r.routed_at as number | null) ?? null,
    routing: parse(r.routing) as RoutingRecord | null,
  };
}

function deliveryRow(r: Row): Delivery {
  return {
    id: r.id as number,
    eventSeq: r.event_seq as number,
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    eventType: r.event_type as string,
    trigger: r.trigger as string,
    action: r.action as number,
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    idempotencyKey: r.idempotency_key as string,
    status: r.status as DeliveryStatus,
    attempts: r.attempts as number,
    maxAttempts: r.max_attempts as number,
    nextAttemptAt: r.next_attempt_at as number,
    lastError: (r.last_error as string | null) ?? null,
    remoteId: (r.remote_id as string | null) ?? null,
    rendered: parse(r.rendered),
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
  };
}

function inboxRow(r: Row): InboxMessage {
  return {
    id: r.id as number,
    channel: r.channel as string,
    recipient: (r.recipient as string | null) ?? null,
    message: parse(r.message),
    eventId: r.event_id as string,
    eventSource: r.event_source as string,
    deliveryId: (r.delivery_id as number | null) ?? null,
    createdAt: r.created_at as number,
  };
}

function sourceDeadLetterRow(r: Row): SourceDeadLetter {
  return {
    id: r.id as number,
    source: r.source as string,
    position: r.position as string,
    subject: (r.subject as string | null) ?? null,
    headers: JSON.parse(r.headers as string) as Record<string, string>,
    payload: r.payload as string,
    payloadEncoding: r.payload_encoding as SourceDeadLetter['payloadEncoding'],
    payloadBytes: r.payload_bytes as number,
    truncated: r.truncated === 1,
    reason: r.reason as string,
    createdAt: r.created_at as number,
  };
}

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is synchronous, so each batch
 * method is one short transaction on the event loop; the engine batches calls (group commit) so
 * one fsync serves many events.
 */
export function createSqliteStore(options: SqliteStoreOptions): Store {
  let db: Database.Database;
  try {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    db = new Database(options.path);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  } catch (err) {
    throw new HeraldError(
      'STORE_UNAVAILABLE',
      `cannot open SQLite store ${options.path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }

  /**
   * An append that fails because of what it was given (a constraint, a value SQLite refuses, an
   * event that cannot be serialised) is EVENT_UNSTORABLE, so ingest can find the event and store
   * the rest; anything else (disk full, I/O, a closed database) stays STORE_UNAVAILABLE.
   */
  const refusedEvents = <T>(work: () => T): T => {
    try {
      return work();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const refused =
        err instanceof RangeError ||
        err instanceof TypeError ||
        (typeof code === 'string' && /^SQLITE_(CONSTRAINT|TOOBIG|MISMATCH|RANGE)/.test(code));
      if (!refused) throw err;
      throw new HeraldError('EVENT_UNSTORABLE', `SQLite refused the event: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };

  const guard = <T>(work: () => T): Promise<T> => {
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(
        err instanceof HeraldError
          ? err
          : new HeraldError('STORE_UNAVAILABLE', `SQLite: ${(err as Error).message}`, { cause: err }),
      );
    }
  };

  const migrate = () => {
    const current = db.pragma('user_version', { simple: true }) as number;
    for (const m of migrations) {
      if (m.version <= current) continue;
      // Foreign keys cannot be switched inside a transaction; a rebuild checks them itself.
      if (m.rebuildsTable) db.pragma('foreign_keys = OFF');
      try {
        db.transaction(() => {
          db.exec(m.sql);
          if (m.rebuildsTable && (db.pragma('foreign_key_check') as unknown[]).length > 0)
            throw new Error(`migration ${m.version} would break a foreign key`);
          db.pragma(`user_version = ${m.version}`);
        })();
      } finally {
        if (m.rebuildsTable) db.pragma('foreign_keys = ON');
      }
      options.logger?.info({ version: m.version, name: m.name }, 'store migrated');
    }
  };
  // Statements need the tables: migrate before preparing them (migrate() stays idempotent).
  migrate();

  const s = {
    insertEvent: db.prepare(
      `INSERT INTO events (id, source, type, subject, received_at, routed_at, routing, event) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id, source) DO NOTHING RETURNING seq`,
    ),
    findEvent: db.prepare('SELECT seq FROM events WHERE source = ? AND id = ?'),
    getEvent: db.prepare('SELECT * FROM events WHERE seq = ?'),
    getEvents: db.prepare('SELECT * FROM events WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq'),
    findById: db.prepare('SELECT * FROM events WHERE id = ? ORDER BY seq DESC LIMIT 1'),
    findByIdSource: db.prepare('SELECT * FROM events WHERE id = ? AND source = ?'),
    unrouted: db.prepare('SELECT * FROM events WHERE routed_at IS NULL ORDER BY seq LIMIT ?'),
    // One writer: seq order is commit order, so nothing is ever inserted behind a seq read.
    readForProjection: db.prepare('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),
    subjectsThrough: db.prepare('SELECT through_seq AS seq FROM event_subjects_state WHERE id = 1'),
    lastSeq: db.prepare('SELECT max(seq) AS seq FROM events'),
    indexSubjects: db.prepare(
      `INSERT OR IGNORE INTO event_subjects (subject, seq)
       SELECT subject, seq FROM events WHERE seq > ? AND seq <= ? AND subject IS NOT NULL ORDER BY subject, seq`,
    ),
    setSubjectsThrough: db.prepare('UPDATE event_subjects_state SET through_seq = ? WHERE id = 1'),
    countEvents: db.prepare('SELECT count(*) AS n FROM events'),
    insertDelivery: db.prepare(
      `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
         idempotency_key, status, attempts, max_attempts, next_attempt_at, created_at, updated_at)
       SELECT e.seq, e.id, e.source, e.type, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ? FROM events e WHERE e.seq = ?
       ON CONFLICT (idempotency_key) DO NOTHING`,
    ),
    markRouted: db.prepare('UPDATE events SET routed_at = ?, routing = ? WHERE seq = ?'),
    dueForChannel: db.prepare(
      `SELECT * FROM deliveries WHERE channel = ? AND status = 'pending' AND next_attempt_at <= ?
       ORDER BY next_attempt_at, id LIMIT ?`,
    ),
    pendingForChannel: db.prepare(
      `SELECT id, next_attempt_at FROM deliveries WHERE channel = ? AND status = 'pending'
       ORDER BY next_attempt_at, id LIMIT ?`,
    ),
    recordDelivery: db.prepare(
      `UPDATE deliveries SET status = ?, attempts = max(attempts, ?), next_attempt_at = coalesce(?, next_attempt_at),
         lease_until = NULL, last_error = ?, remote_id = coalesce(?, remote_id), rendered = coalesce(?, rendered),
         updated_at = ?
       WHERE id = ?`,
    ),
    insertAttempt: db.prepare(
      `INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    getDelivery: db.prepare('SELECT * FROM deliveries WHERE id = ?'),
    attempts: db.prepare('SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number, started_at'),
    counts: db.prepare('SELECT status, count(*) AS n FROM deliveries GROUP BY status'),
    oldestPending: db.prepare(`SELECT min(created_at) AS oldest FROM deliveries WHERE status = 'pending'`),
    countDead: db.prepare(`SELECT count(*) AS n FROM deliveries WHERE status = 'dead'`),
    addInbox: db.prepare(
      `INSERT INTO inbox (channel, recipient, message, event_id, event_source, delivery_id, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
    ),
    kvGet: db.prepare('SELECT value FROM kv WHERE namespace = ? AND key = ?'),
    kvSet: db.prepare(
      'INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value',
    ),
    kvDelete: db.prepare('DELETE FROM kv WHERE namespace = ? AND key = ?'),
    kvSetIfAbsent: db.prepare(
      'INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
  };

  // One process owns an embedded store, so leases live in memory: claiming then costs a read, not
  // a write and an fsync. They vanish with the process, which is what a restart wants anyway.
  const leases = new Map<number, number>();
  const leased = (id: number, now: number) => {
    const until = leases.get(id);
    if (until === undefined) return false;
    if (until < now) {
      leases.delete(id);
      return false;
    }
    return true;
  };

  // Rate-limit buckets live in memory for the same reason as leases: one process owns an embedded
  // store, so there is nobody to share them with, and a take costs no write. A restart starts with
  // full buckets, which lets at most one extra burst through.
  const buckets = new Map<string, Bucket>();

  // Events by subject: the index table trails the log by up to SUBJECT_BATCH events and is
  // filled a batch at a time, sorted, so a batch touches each index page once rather than each
  // event its own page. Lookups read the trailing events from the log directly.
  let subjectsThrough = (s.subjectsThrough.get() as { seq: number }).seq;
  let lastAppended = (s.lastSeq.get() as { seq: number | null }).seq ?? 0;
  const indexSubjects = db.transaction((through: number) => {
    s.indexSubjects.run(subjectsThrough, through);
    s.setSubjectsThrough.run(through);
    subjectsThrough = through;
  });
  const afterAppend = (results: AppendResult[]) => {
    for (const r of results) if (r.seq > lastAppended) lastAppended = r.seq;
    if (lastAppended - subjectsThrough < SUBJECT_BATCH) return;
    try {
      indexSubjects(lastAppended);
    } catch (err) {
      // The append itself is durable; the next one tries again, and lookups read the log meanwhile.
      options.logger?.warn({ err: (err as Error).message }, 'indexing event subjects failed');
    }
  };
  const bySubject = (q: Parameters<Store['events']['list']>[0] & { subject: string }): Row[] => {
    const extra: string[] = [];
    const extraValues: unknown[] = [];
    for (const col of ['type', 'source'] as const) {
      if (q[col] !== undefined) {
        extra.push(`AND e.${col} = ?`);
        extraValues.push(q[col]);
      }
    }
    const before = q.beforeSeq ?? Number.MAX_SAFE_INTEGER;
    const recent = db
      .prepare(
        `SELECT * FROM events e WHERE e.seq > ? AND e.seq < ? AND e.subject = ? ${extra.join(' ')}
         ORDER BY e.seq DESC LIMIT ?`,
      )
      .all(subjectsThrough, before, q.subject, ...extraValues, q.limit) as Row[];
    if (recent.length === q.limit) return recent;
    const older = db
      .prepare(
        `SELECT e.* FROM event_subjects x JOIN events e ON e.seq = x.seq
         WHERE x.subject = ? AND x.seq < ? ${extra.join(' ')} ORDER BY x.seq DESC LIMIT ?`,
      )
      .all(
        q.subject,
        Math.min(before, subjectsThrough + 1),
        ...extraValues,
        q.limit - recent.length,
      ) as Row[];
    return recent.concat(older);
  };

  /** 1 when inserted, 0 when its idempotency key was planned before. */
  const insertDelivery = (d: NewDelivery, eventSeq: number, routedAt: number): number =>
    s.insertDelivery.run(
      d.trigger,
      d.action,
      d.channel,
      d.recipient,
      d.idempotencyKey,
      d.maxAttempts,
      d.notBefore,
      routedAt,
      routedAt,
      eventSeq,
    ).changes;

  /**
   * Appends in one transaction, deduplicating on (source, id) against the log and within the
   * batch. With `routing`, new events are stored already routed, with their planned deliveries.
   */
  const appendTx = db.transaction(
    (
      events: CloudEvent[],
      receivedAt: number,
      routing?: { plans: PlannedRouting[]; routedAt: number },
    ): { results: AppendResult[]; deliveries: number } => {
      const seen = new Map<string, number>();
      let deliveries = 0;
      const results = events.map((e, i): AppendResult => {
        const key = `${e.source}\u0000${e.id}`;
        const earlier = seen.get(key);
        if (earlier !== undefined) return { seq: earlier, duplicate: true };
        const plan = routing?.plans[i];
        const inserted = s.insertEvent.get(
          e.id,
          e.source,
          e.type,
          e.subject ?? null,
          receivedAt,
          routing?.routedAt ?? null,
          plan ? JSON.stringify(plan.record) : null,
          eventJson(e),
        ) as { seq: number } | undefined;
        if (!inserted) {
          const existing = s.findEvent.get(e.source, e.id) as { seq: number };
          seen.set(key, existing.seq);
          return { seq: existing.seq, duplicate: true };
        }
        seen.set(key, inserted.seq);
        if (plan)
          for (const d of plan.deliveries) deliveries += insertDelivery(d, inserted.seq, routing!.routedAt);
        return { seq: inserted.seq, duplicate: false };
      });
      return { results, deliveries };
    },
  );

  const routingTx = db.transaction(
    (batch: Parameters<Store['routing']['commit']>[0], routedAt: number): number => {
      let inserted = 0;
      for (const b of batch) {
        for (const d of b.deliveries) inserted += insertDelivery(d, d.eventSeq, routedAt);
        s.markRouted.run(routedAt, JSON.stringify(b.record), b.seq);
      }
      return inserted;
    },
  );

  const recordTx = db.transaction((outcomes: Parameters<Store['deliveries']['record']>[0], now: number) => {
    for (const o of outcomes) {
      s.recordDelivery.run(
        o.status,
        o.attempt.number,
        o.nextAttemptAt ?? null,
        o.error ?? null,
        o.remoteId ?? null,
        json(o.rendered),
        now,
        o.deliveryId,
      );
      const a = o.attempt;
      s.insertAttempt.run(
        o.deliveryId,
        a.number,
        a.startedAt,
        a.durationMs,
        a.outcome,
        a.error,
        a.nextAttemptAt,
      );
    }
  });

  const dlqWhere = (filter: DeadLetterFilter) => {
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
  };

  let closed = false;
  return {
    kind: 'sqlite',
    migrate: () => guard(migrate),
    close: () =>
      guard(() => {
        if (closed) return;
        closed = true;
        db.close();
      }),
    ping: () =>
      guard(() => {
        if (closed) throw new HeraldError('STORE_UNAVAILABLE', 'the store is closed');
        db.prepare('SELECT 1').get();
      }),

    events: {
      append: (events, receivedAt) =>
        guard(() => {
          if (events.length === 0) return [];
          const { results } = refusedEvents(() => appendTx(events, receivedAt));
          afterAppend(results);
          return results;
        }),
      appendRouted: (events, plans, receivedAt, routedAt) =>
        guard(() => {
          const appended = refusedEvents(() => appendTx(events, receivedAt, { plans, routedAt }));
          afterAppend(appended.results);
          return appended;
        }),
      get: (seq) =>
        guard(() => {
          const r = s.getEvent.get(seq) as Row | undefined;
          return r ? eventRow(r) : null;
        }),
      getMany: (seqs) => guard(() => (s.getEvents.all(JSON.stringify(seqs)) as Row[]).map(eventRow)),
      findById: (id, source) =>
        guard(() => {
          const r = (source === undefined ? s.findById.get(id) : s.findByIdSource.get(id, source)) as
            | Row
            | undefined;
          return r ? eventRow(r) : null;
        }),
      list: (q) =>
        guard(() => {
          if (q.subject !== undefined) return bySubject({ ...q, subject: q.subject }).map(eventRow);
          const where: string[] = [];
          const values: unknown[] = [];
          if (q.beforeSeq !== undefined) {
            where.push('seq < ?');
            values.push(q.beforeSeq);
          }
          for (const col of ['type', 'source'] as const) {
            if (q[col] !== undefined) {
              where.push(`${col} = ?`);
              values.push(q[col]);
            }
          }
          const rows = db
            .prepare(
              `SELECT * FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`,
            )
            .all(...values, q.limit) as Row[];
          return rows.map(eventRow);
        }),
      unrouted: (limit) => guard(() => (s.unrouted.all(limit) as Row[]).map(eventRow)),
      readForProjection: (cursor, limit) =>
        guard(() => {
          const events = (s.readForProjection.all(cursor, limit) as Row[]).map(eventRow);
          return { events, next: events.at(-1)?.seq ?? cursor };
        }),
      count: () => guard(() => (s.countEvents.get() as { n: number }).n),
    },

    routing: {
      commit: (batch, routedAt) => guard(() => (batch.length === 0 ? 0 : routingTx(batch, routedAt))),
    },

    deliveries: {
      claim: ({ channel, limit, now, leaseMs }) =>
        guard(() => {
          const out: Delivery[] = [];
          for (const r of s.dueForChannel.iterate(
            channel,
            now,
            limit + leases.size,
          ) as IterableIterator<Row>) {
            if (leased(r.id as number, now)) continue;
            leases.set(r.id as number, now + leaseMs);
            out.push(deliveryRow(r));
            if (out.length >= limit) break;
          }
          return out;
        }),
      record: (outcomes) =>
        guard(() => {
          if (outcomes.length === 0) return;
          recordTx(outcomes, Date.now());
          for (const o of outcomes) leases.delete(o.deliveryId);
        }),
      renewLeases: (held, until) =>
        guard(() => {
          const renewed: number[] = [];
          for (const { id, leaseUntil } of held) {
            if (leases.get(id) !== leaseUntil) continue;
            leases.set(id, until);
            renewed.push(id);
          }
          return renewed;
        }),
      release: (ids) =>
        guard(() => {
          for (const id of ids) leases.delete(id);
        }),
      releaseAllLeases: () =>
        guard(() => {
          const n = leases.size;
          leases.clear();
          return n;
        }),
      get: (id) =>
        guard(() => {
          const r = s.getDelivery.get(id) as Row | undefined;
          return r ? deliveryRow(r) : null;
        }),
      list: (q: DeliveryQuery) =>
        guard(() => {
          const where: string[] = [];
          const values: unknown[] = [];
          const add = (clause: string, value: unknown) => {
            if (value === undefined) return;
            where.push(clause);
            values.push(value);
          };
          add('id < ?', q.beforeId);
          add('status = ?', q.status);
          add('event_seq = ?', q.eventSeq);
          add('channel = ?', q.channel);
          add('trigger = ?', q.trigger);
          const rows = db
            .prepare(
              `SELECT * FROM deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
            )
            .all(...values, q.limit) as Row[];
          return rows.map(deliveryRow);
        }),
      attempts: (deliveryId) =>
        guard(() =>
          (s.attempts.all(deliveryId) as Row[]).map(
            (r): Attempt => ({
              deliveryId: r.delivery_id as number,
              number: r.number as number,
              startedAt: r.started_at as number,
              durationMs: r.duration_ms as number,
              outcome: r.outcome as Attempt['outcome'],
              error: (r.error as string | null) ?? null,
              nextAttemptAt: (r.next_attempt_at as number | null) ?? null,
            }),
          ),
        ),
      nextDue: (channel) =>
        guard(() => {
          for (const r of s.pendingForChannel.iterate(channel, leases.size + 1) as IterableIterator<Row>) {
            if (!leases.has(r.id as number)) return r.next_attempt_at as number;
          }
          return null;
        }),
      counts: () =>
        guard(() => {
          const out: Record<DeliveryStatus, number> = { pending: 0, delivered: 0, dead: 0 };
          for (const r of s.counts.all() as { status: DeliveryStatus; n: number }[]) out[r.status] = r.n;
          return out;
        }),
      oldestPendingAge: (now) =>
        guard(() => {
          const oldest = (s.oldestPending.get() as { oldest: number | null }).oldest;
          return oldest === null ? 0 : Math.max(0, now - oldest);
        }),
    },

    dlq: {
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
      count: () => guard(() => (s.countDead.get() as { n: number }).n),
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
              `UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL, updated_at = ?
               WHERE ${where.join(' AND ')} RETURNING id`,
            )
            .all(now, now, ...values) as { id: number }[];
          for (const r of rows) leases.delete(r.id);
          return rows.map((r) => r.id).sort((a, b) => a - b);
        }),
    },

    sourceDlq: {
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
                : db
                    .prepare('SELECT count(*) AS n FROM source_dead_letters WHERE source = ?')
                    .get(source)) as {
                n: number;
              }
            ).n,
        ),
      remove: (id) =>
        guard(() => db.prepare('DELETE FROM source_dead_letters WHERE id = ?').run(id).changes === 1),
    },

    inbox: {
      add: (m) =>
        guard(() =>
          inboxRow(
            s.addInbox.get(
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
    },

    rateLimits: {
      take: ({ channel, wanted, now, perSecond, burst }) =>
        guard(() => {
          const bucket = refilled(buckets.get(channel), now, perSecond, burst);
          const granted = grantable(bucket.tokens, wanted);
          bucket.tokens = Math.max(0, bucket.tokens - granted);
          buckets.set(channel, bucket);
          return { granted, nextAt: nextTokenAt(bucket, perSecond) };
        }),
      giveBack: ({ channel, count, now, perSecond, burst }) =>
        guard(() => {
          const current = buckets.get(channel);
          if (!current || count <= 0) return;
          const bucket = refilled(current, now, perSecond, burst);
          bucket.tokens = Math.min(burst, bucket.tokens + count);
          buckets.set(channel, bucket);
        }),
    },

    subscriptions: sqliteSubscriptions(db, guard),
    projections: sqliteProjections(db, guard),

    kv: {
      get: <T>(namespace: string, key: string) =>
        guard(() => {
          const r = s.kvGet.get(namespace, key) as { value: string | null } | undefined;
          return r ? (parse(r.value) as T) : null;
        }),
      set: (namespace, key, value) =>
        guard(() => {
          s.kvSet.run(namespace, key, json(value));
        }),
      delete: (namespace, key) =>
        guard(() => {
          s.kvDelete.run(namespace, key);
        }),
      setIfAbsent: (namespace, key, value) =>
        guard(() => s.kvSetIfAbsent.run(namespace, key, json(value)).changes === 1),
    },
  };
}
