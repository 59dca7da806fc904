import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { HeraldError } from '../../errors.js';
import { eventJson } from '../../events/serialize.js';
import type { CloudEvent } from '../../events/types.js';
import { type HeldDelivery, KeyLedger, type KeyRef, type KeyRow } from '../notification-keys.js';
import type {
  AppendResult,
  Delivery,
  EventLog,
  EventQuery,
  NewDelivery,
  PlannedRouting,
  RoutedAppend,
  RoutingStore,
} from '../types.js';
import type { ClaimCursors } from './claim-cursors.js';
import type { Leases } from './deliveries.js';
import { type CommitGuard, eventRow, type Guard, type Row } from './rows.js';

/**
 * How far the indexes by subject, type and source may trail the log: the most events such a lookup
 * reads unindexed.
 */
const INDEX_BATCH = 20_000;
/**
 * Events indexed at a time once the indexes trail by INDEX_BATCH. The fill runs on the event loop
 * after an append: 20,000 events at once held it 25-45 ms for the three tables, in which no
 * request or send ran; a tenth of that each time spreads the same work over ten appends.
 */
const INDEX_CHUNK = 2_000;

/** The tables that index the log by a field, filled in batches behind it (see indexBehind). */
const FIELD_INDEX = { subject: 'event_subjects', type: 'event_types', source: 'event_sources' } as const;
type IndexedField = keyof typeof FIELD_INDEX;

/**
 * An append that fails because of what it was given (a constraint, a value SQLite refuses, an
 * event that cannot be serialised) is EVENT_UNSTORABLE, so ingest can find the event and store
 * the rest; anything else (disk full, I/O, a closed database) stays STORE_UNAVAILABLE.
 */
function refusedEvents<T>(work: () => T): T {
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
}

/**
 * The event log and the routing of its events. Routing lives here because an append may store
 * its events already routed: the log and the planned deliveries commit in one transaction.
 */
export function sqliteEvents(
  db: Database.Database,
  guard: Guard,
  commit: CommitGuard,
  logger: Logger | undefined,
  leases: Leases,
  cursors: ClaimCursors,
): { events: EventLog; routing: RoutingStore } {
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
    // event_subjects_state keeps how far all three index tables reach, not only the subjects'.
    indexedThrough: db.prepare('SELECT through_seq AS seq FROM event_subjects_state WHERE id = 1'),
    lastSeq: db.prepare('SELECT max(seq) AS seq FROM events'),
    indexSubjects: db.prepare(
      `INSERT OR IGNORE INTO event_subjects (subject, seq)
       SELECT subject, seq FROM events WHERE seq > ? AND seq <= ? AND subject IS NOT NULL ORDER BY subject, seq`,
    ),
    indexTypes: db.prepare(
      `INSERT OR IGNORE INTO event_types (type, seq)
       SELECT type, seq FROM events WHERE seq > ? AND seq <= ? ORDER BY type, seq`,
    ),
    indexSources: db.prepare(
      `INSERT OR IGNORE INTO event_sources (source, seq)
       SELECT source, seq FROM events WHERE seq > ? AND seq <= ? ORDER BY source, seq`,
    ),
    setIndexedThrough: db.prepare('UPDATE event_subjects_state SET through_seq = ? WHERE id = 1'),
    countEvents: db.prepare('SELECT count(*) AS n FROM events'),
    newest: db.prepare('SELECT * FROM events ORDER BY seq DESC LIMIT ?'),
    newestBefore: db.prepare('SELECT * FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?'),
    insertDelivery: db.prepare(
      `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
         idempotency_key, status, attempts, max_attempts, next_attempt_at, note, created_at, updated_at)
       SELECT e.seq, e.id, e.source, e.type, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ? FROM events e WHERE e.seq = ?
       ON CONFLICT (event_seq, idempotency_key) DO NOTHING`,
    ),
    markRouted: db.prepare('UPDATE events SET routed_at = ?, routing = ? WHERE seq = ?'),
    deliveryExists: db.prepare('SELECT 1 FROM deliveries WHERE event_seq = ? AND idempotency_key = ?'),
    insertDecided: db.prepare(
      `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
         idempotency_key, status, attempts, max_attempts, next_attempt_at, last_error, note, created_at, updated_at)
       SELECT e.seq, e.id, e.source, e.type, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ? FROM events e WHERE e.seq = ?
       ON CONFLICT (event_seq, idempotency_key) DO NOTHING`,
    ),
    getKey: db.prepare(
      `SELECT window_start, count, delivery_key, event_seq, event_id FROM notification_keys
       WHERE scope = ? AND kind = ? AND key = ? AND window_start IS NOT NULL`,
    ),
    putKey: db.prepare(
      `INSERT INTO notification_keys (scope, kind, key, window_start, count, delivery_key, event_seq, event_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (scope, kind, key) DO UPDATE SET window_start = excluded.window_start, count = excluded.count,
         delivery_key = excluded.delivery_key, event_seq = excluded.event_seq, event_id = excluded.event_id`,
    ),
    getHeld: db.prepare(
      'SELECT id, status, attempts, next_attempt_at FROM deliveries WHERE event_seq = ? AND idempotency_key = ?',
    ),
    suppressHeld: db.prepare(
      `UPDATE deliveries SET status = 'suppressed', last_error = ?, note = NULL, updated_at = ?
       WHERE event_seq = ? AND idempotency_key = ? AND status = 'pending' AND attempts = 0`,
    ),
    addDigestEvent: db.prepare(
      'INSERT OR IGNORE INTO digest_events (delivery_key, event_seq, digest_key) VALUES (?, ?, ?)',
    ),
    digestDue: db.prepare(
      `UPDATE deliveries SET next_attempt_at = min(next_attempt_at, ?), updated_at = ?
       WHERE event_seq = ? AND idempotency_key = ? AND status = 'pending' AND attempts = 0`,
    ),
  };

  const loadKey = (ref: KeyRef): KeyRow | null => {
    const r = s.getKey.get(ref.scope, ref.kind, ref.key) as Row | undefined;
    if (!r) return null;
    return {
      windowStart: Number(r.window_start),
      count: Number(r.count),
      deliveryKey: (r.delivery_key as string | null) ?? null,
      eventSeq: r.event_seq === null ? null : Number(r.event_seq),
      eventId: (r.event_id as string | null) ?? null,
    };
  };
  const loadHeld = (idempotencyKey: string, eventSeq: number): HeldDelivery | null => {
    const r = s.getHeld.get(eventSeq, idempotencyKey) as Row | undefined;
    if (!r) return null;
    // Leased: the dispatcher may be reading a digest's events to send it, so it is in flight.
    const until = leases.get(Number(r.id));
    return {
      status: until !== undefined && until >= Date.now() ? 'claimed' : String(r.status),
      attempts: Number(r.attempts),
      nextAttemptAt: Number(r.next_attempt_at),
    };
  };

  /**
   * A delivery with notification keys: decided against the keys as stored (one writer, inside the
   * caller's transaction), stored pending or suppressed, and the keys and replaced deliveries
   * written back. Routing an event again changes nothing: its deliveries exist already.
   * Returns the id of the delivery stored, or 0.
   */
  const insertGated = (d: NewDelivery, eventSeq: number, routedAt: number): number => {
    if (s.deliveryExists.get(eventSeq, d.idempotencyKey)) return 0;
    const ledger = new KeyLedger(loadKey, loadHeld);
    const decision = ledger.decide(d, eventSeq);
    const notBefore = decision.notBefore ?? d.notBefore;
    const insert = s.insertDecided.run(
      d.trigger,
      d.action,
      d.channel,
      d.recipient,
      d.idempotencyKey,
      decision.status,
      d.maxAttempts,
      notBefore,
      decision.reason,
      decision.status === 'pending' ? (d.note ?? null) : null,
      routedAt,
      routedAt,
      eventSeq,
    );
    if (insert.changes === 0) return 0;
    const id = Number(insert.lastInsertRowid);
    if (decision.status === 'pending') cursors.placed(d.channel, { nextAttemptAt: notBefore, id });
    for (const { ref, row } of ledger.changedKeys())
      s.putKey.run(
        ref.scope,
        ref.kind,
        ref.key,
        row.windowStart,
        row.count,
        row.deliveryKey,
        row.eventSeq,
        row.eventId,
      );
    for (const r of ledger.replacedStored)
      s.suppressHeld.run(r.reason, routedAt, r.eventSeq, r.idempotencyKey);
    for (const m of ledger.digestMembers) s.addDigestEvent.run(m.deliveryKey, m.eventSeq, m.key);
    for (const r of ledger.dueStored) s.digestDue.run(r.at, routedAt, r.eventSeq, r.idempotencyKey);
    // A digest due sooner may now sort before its channel's claim cursor.
    if (ledger.dueStored.length > 0) cursors.forgetAll();
    return id;
  };

  // Events by subject, type and source: the index tables trail the log by up to INDEX_BATCH events
  // and are filled a chunk at a time, sorted, so a chunk touches each index page once rather than
  // each append its own pages. Lookups read the trailing events from the log directly.
  let indexedThrough = (s.indexedThrough.get() as { seq: number }).seq;
  let lastAppended = (s.lastSeq.get() as { seq: number | null }).seq ?? 0;
  const indexBehind = db.transaction((through: number) => {
    s.indexSubjects.run(indexedThrough, through);
    s.indexTypes.run(indexedThrough, through);
    s.indexSources.run(indexedThrough, through);
    s.setIndexedThrough.run(through);
    indexedThrough = through;
  });
  const afterAppend = (results: AppendResult[]) => {
    for (const r of results) if (r.seq > lastAppended) lastAppended = r.seq;
    if (lastAppended - indexedThrough < INDEX_BATCH) return;
    try {
      // A chunk, and whatever a large append put past the bound, so the fill keeps up with appends.
      indexBehind(lastAppended - INDEX_BATCH + INDEX_CHUNK);
    } catch (err) {
      // The append itself is durable; the next one tries again, and lookups read the log meanwhile.
      logger?.warn({ err: (err as Error).message }, 'indexing events by subject, type and source failed');
    }
  };
  /** Newest first, by one field's index table; the query's other fields filter the rows found. */
  const byIndexed = (q: EventQuery, field: IndexedField, value: string): Row[] => {
    const extra: string[] = [];
    const extraValues: unknown[] = [];
    for (const col of ['subject', 'type', 'source'] as const) {
      if (col !== field && q[col] !== undefined) {
        extra.push(`AND e.${col} = ?`);
        extraValues.push(q[col]);
      }
    }
    const before = q.beforeSeq ?? Number.MAX_SAFE_INTEGER;
    const recent = db
      .prepare(
        `SELECT * FROM events e WHERE e.seq > ? AND e.seq < ? AND e.${field} = ? ${extra.join(' ')}
         ORDER BY e.seq DESC LIMIT ?`,
      )
      .all(indexedThrough, before, value, ...extraValues, q.limit) as Row[];
    if (recent.length === q.limit) return recent;
    const older = db
      .prepare(
        `SELECT e.* FROM ${FIELD_INDEX[field]} x JOIN events e ON e.seq = x.seq
         WHERE x.${field} = ? AND x.seq < ? ${extra.join(' ')} ORDER BY x.seq DESC LIMIT ?`,
      )
      .all(value, Math.min(before, indexedThrough + 1), ...extraValues, q.limit - recent.length) as Row[];
    return recent.concat(older);
  };

  /** A delivery free of notification keys: its id, or 0 when its idempotency key was planned before. */
  const insertPlain = (d: NewDelivery, eventSeq: number, routedAt: number): number => {
    const insert = s.insertDelivery.run(
      d.trigger,
      d.action,
      d.channel,
      d.recipient,
      d.idempotencyKey,
      d.maxAttempts,
      d.notBefore,
      d.note ?? null,
      routedAt,
      routedAt,
      eventSeq,
    );
    if (insert.changes === 0) return 0;
    const id = Number(insert.lastInsertRowid);
    cursors.placed(d.channel, { nextAttemptAt: d.notBefore, id });
    return id;
  };

  /** The delivery `insertPlain` stored, as a read of its row would give it. */
  const storedPlain = (
    d: NewDelivery,
    id: number,
    seq: number,
    e: CloudEvent,
    routedAt: number,
  ): Delivery => ({
    id,
    eventSeq: seq,
    eventId: e.id,
    eventSource: e.source,
    eventType: e.type,
    trigger: d.trigger,
    action: d.action,
    channel: d.channel,
    recipient: d.recipient,
    idempotencyKey: d.idempotencyKey,
    status: 'pending',
    attempts: 0,
    maxAttempts: d.maxAttempts,
    nextAttemptAt: d.notBefore,
    lastError: null,
    note: d.note ?? null,
    remoteId: null,
    rendered: null,
    createdAt: routedAt,
    updatedAt: routedAt,
  });

  /** The highest delivery id the last append inserted (0: none), for its commit's durable mark. */
  let appendedThrough = 0;
  /**
   * Appends in one transaction, deduplicating on (source, id) against the log and within the
   * batch. With `routing`, new events are stored already routed, with their planned deliveries.
   */
  const appendTx = db.transaction(
    (
      events: CloudEvent[],
      receivedAt: number,
      routing?: { plans: PlannedRouting[]; routedAt: number },
    ): RoutedAppend => {
      let deliveries = 0;
      const claimable: Delivery[] = [];
      appendedThrough = 0;
      const results = events.map((e, i): AppendResult => {
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
        // Stored before, or earlier in this batch: the transaction sees its own rows.
        if (!inserted) {
          const existing = s.findEvent.get(e.source, e.id) as { seq: number };
          return { seq: existing.seq, duplicate: true };
        }
        if (plan)
          for (const d of plan.deliveries) {
            const id = d.gates
              ? insertGated(d, inserted.seq, routing!.routedAt)
              : insertPlain(d, inserted.seq, routing!.routedAt);
            if (id === 0) continue;
            deliveries++;
            // Ids grow within the transaction: the last one stored is the highest.
            appendedThrough = id;
            if (d.gates) continue;
            claimable.push(storedPlain(d, id, inserted.seq, e, routing!.routedAt));
          }
        return { seq: inserted.seq, duplicate: false };
      });
      return routing ? { results, deliveries, claimable } : { results, deliveries };
    },
  );

  const routingTx = db.transaction(
    (batch: Parameters<RoutingStore['commit']>[0], routedAt: number): number => {
      let inserted = 0;
      for (const b of batch) {
        for (const d of b.deliveries)
          if ((d.gates ? insertGated(d, d.eventSeq, routedAt) : insertPlain(d, d.eventSeq, routedAt)) > 0)
            inserted++;
        s.markRouted.run(routedAt, JSON.stringify(b.record), b.seq);
      }
      return inserted;
    },
  );

  return {
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
      appendCommitted: (events, receivedAt, routing) =>
        commit(
          () => {
            const appended = refusedEvents(() => appendTx(events, receivedAt, routing ?? undefined));
            afterAppend(appended.results);
            return appended;
          },
          { deliveriesThrough: () => appendedThrough },
        ),
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
          // The subject is the most selective of the three, the source the least.
          for (const field of ['subject', 'type', 'source'] as const) {
            const value = q[field];
            if (value !== undefined) return byIndexed(q, field, value).map(eventRow);
          }
          const rows = (
            q.beforeSeq === undefined ? s.newest.all(q.limit) : s.newestBefore.all(q.beforeSeq, q.limit)
          ) as Row[];
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
  };
}
