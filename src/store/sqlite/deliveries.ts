import type Database from 'better-sqlite3';
import { HeraldError } from '../../errors.js';
import {
  type Attempt,
  DELIVERY_STATUSES,
  type DeliveryQuery,
  type DeliveryStatus,
  type DeliveryStore,
} from '../types.js';
import type { ClaimCursors, DueKey } from './claim-cursors.js';
import { type CommitGuard, deliveryRow, type Guard, json, type Row } from './rows.js';

/**
 * Delivery id → lease expiry (epoch ms). One process owns an embedded store, so leases live in
 * memory: claiming then costs a read, not a write and an fsync. They vanish with the process,
 * which is what a restart wants anyway.
 */
export type Leases = Map<number, number>;

function leased(leases: Leases, id: number, now: number): boolean {
  const until = leases.get(id);
  if (until === undefined) return false;
  if (until < now) {
    leases.delete(id);
    return false;
  }
  return true;
}

/**
 * How long an outcome may wait for a sync that an event's commit starts anyway, before it starts
 * its own. Its send holds one of the channel's `concurrency` slots for outcomes meanwhile (there
 * are as many of those as of sends), so this bounds a channel's rate only when nothing else is
 * written: `concurrency` outcomes per interval.
 */
const OUTCOME_SYNC_WITHIN_MS = 5;

function statusLiteral(status: DeliveryStatus): DeliveryStatus {
  if (!DELIVERY_STATUSES.includes(status))
    throw new HeraldError('REQUEST_INVALID', `unknown delivery status ${JSON.stringify(status)}`);
  return status;
}

/** Deliveries, their attempts and leases. */
export function sqliteDeliveries(
  db: Database.Database,
  guard: Guard,
  commit: CommitGuard,
  leases: Leases,
  cursors: ClaimCursors,
  /** The highest delivery id whose insert is on disk: claims never go past it. */
  durableThrough: () => number,
): DeliveryStore {
  const s = {
    // From the deliveries_due index alone, starting at the channel's claim cursor. Not limited:
    // the walk stops once it has claimed enough, and reads rows only as it goes.
    dueForChannel: db
      .prepare(
        `SELECT id, next_attempt_at FROM deliveries
         WHERE channel = ? AND status = 'pending' AND next_attempt_at <= ? AND (next_attempt_at, id) > (?, ?)
         ORDER BY next_attempt_at, id`,
      )
      .raw(),
    deliveriesById: db.prepare(
      'SELECT * FROM deliveries WHERE id IN (SELECT value FROM json_each(?)) ORDER BY next_attempt_at, id',
    ),
    pendingForChannel: db
      .prepare(
        `SELECT id, next_attempt_at FROM deliveries
         WHERE channel = ? AND status = 'pending' AND id <= ? AND (next_attempt_at, id) > (?, ?)
         ORDER BY next_attempt_at, id LIMIT ?`,
      )
      .raw(),
    recordDelivery: db.prepare(
      `UPDATE deliveries SET status = ?, attempts = max(attempts, ?), next_attempt_at = coalesce(?, next_attempt_at),
         lease_until = NULL, last_error = ?, remote_id = coalesce(?, remote_id), rendered = coalesce(?, rendered),
         updated_at = ?, delivered_started_at = ?, delivered_ms = ?
       WHERE id = ?`,
    ),
    insertAttempt: db.prepare(
      `INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    deliveredAttempt: db.prepare(
      'SELECT attempts, delivered_started_at, delivered_ms FROM deliveries WHERE id = ? AND delivered_started_at IS NOT NULL',
    ),
    getDelivery: db.prepare('SELECT * FROM deliveries WHERE id = ?'),
    attempts: db.prepare('SELECT * FROM attempts WHERE delivery_id = ? ORDER BY number, started_at'),
    // The status index leaves delivered deliveries out (most of the table): they are the rest.
    countOthers: db.prepare(
      `SELECT status, count(*) AS n FROM deliveries
       WHERE status = 'pending' OR status = 'dead' OR status = 'suppressed' GROUP BY status`,
    ),
    countAll: db.prepare('SELECT count(*) FROM deliveries').pluck(),
    oldestPending: db.prepare(`SELECT min(created_at) AS oldest FROM deliveries WHERE status = 'pending'`),
    digest: db.prepare(
      'SELECT event_seq, digest_key FROM digest_events WHERE delivery_key = ? ORDER BY event_seq',
    ),
  };

  const recordTx = db.transaction((outcomes: Parameters<DeliveryStore['record']>[0], now: number) => {
    for (const o of outcomes) {
      const a = o.attempt;
      // The attempt that delivers is kept on the delivery itself: one row written, not two.
      const delivered = o.status === 'delivered' && a.outcome === 'delivered';
      s.recordDelivery.run(
        o.status,
        a.number,
        o.nextAttemptAt ?? null,
        o.error ?? null,
        o.remoteId ?? null,
        json(o.rendered),
        now,
        delivered ? a.startedAt : null,
        delivered ? a.durationMs : null,
        o.deliveryId,
      );
      if (!delivered)
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

  const recordNow = (outcomes: Parameters<DeliveryStore['record']>[0]): void => {
    if (outcomes.length === 0) return;
    recordTx(outcomes, Date.now());
    for (const o of outcomes) {
      leases.delete(o.deliveryId);
      // A retry sorts at its new time; one kept pending at its old time is now behind the cursor.
      if (o.status === 'pending')
        cursors.placedSomewhere({
          nextAttemptAt: o.nextAttemptAt ?? Number.MIN_SAFE_INTEGER,
          id: o.deliveryId,
        });
    }
  };

  return {
    claim: ({ channel, limit, now, leaseMs }) =>
      guard(() => {
        const durable = durableThrough();
        const from = cursors.from(channel, now, leases);
        const ids: number[] = [];
        // The cursor moves over the deliveries leased here, up to the first one it must come back
        // for: one whose insert is not on disk yet.
        let resume: DueKey | null = null;
        let contiguous = true;
        for (const [id, nextAttemptAt] of s.dueForChannel.iterate(
          channel,
          now,
          from?.nextAttemptAt ?? Number.MIN_SAFE_INTEGER,
          from?.id ?? 0,
        ) as IterableIterator<[number, number]>) {
          if (id > durable) {
            contiguous = false;
            continue;
          }
          if (contiguous) resume = { nextAttemptAt, id };
          if (leased(leases, id, now)) continue;
          leases.set(id, now + leaseMs);
          ids.push(id);
          if (ids.length >= limit) break;
        }
        cursors.advance(channel, resume);
        if (ids.length === 0) return [];
        cursors.leased(now + leaseMs);
        return (s.deliveriesById.all(JSON.stringify(ids)) as Row[]).map(deliveryRow);
      }),
    // Nothing to read or write: the leases live here, and the rows are as the append returned them.
    leaseRouted: (ids, now, leaseMs) => {
      const durable = durableThrough();
      const until = now + leaseMs;
      const taken: number[] = [];
      for (const id of ids) {
        if (id > durable || leased(leases, id, now)) continue;
        leases.set(id, until);
        taken.push(id);
      }
      if (taken.length > 0) cursors.leased(until);
      return taken;
    },
    record: (outcomes) => guard(() => recordNow(outcomes)),
    // An outcome's sync rides on the next event's; a power cut before it sends the delivery again.
    recordCommitted: (outcomes) =>
      commit(() => recordNow(outcomes), {
        syncWithinMs: OUTCOME_SYNC_WITHIN_MS,
        deliveriesThrough: () => 0,
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
        cursors.forgetAll();
      }),
    releaseAllLeases: () =>
      guard(() => {
        const n = leases.size;
        leases.clear();
        cursors.forgetAll();
        return n;
      }),
    digest: (idempotencyKey) =>
      guard(() => {
        const rows = s.digest.all(idempotencyKey) as Row[];
        if (rows.length === 0) return null;
        return { key: String(rows[0]!.digest_key), eventSeqs: rows.map((r) => Number(r.event_seq)) };
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
        // Inline, so the planner can see that the status index (which leaves delivered out) serves it.
        if (q.status !== undefined) where.push(`status = '${statusLiteral(q.status)}'`);
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
      guard(() => {
        const attempts = (s.attempts.all(deliveryId) as Row[]).map(
          (r): Attempt => ({
            deliveryId: r.delivery_id as number,
            number: r.number as number,
            startedAt: r.started_at as number,
            durationMs: r.duration_ms as number,
            outcome: r.outcome as Attempt['outcome'],
            error: (r.error as string | null) ?? null,
            nextAttemptAt: (r.next_attempt_at as number | null) ?? null,
          }),
        );
        const d = s.deliveredAttempt.get(deliveryId) as Row | undefined;
        if (d)
          attempts.push({
            deliveryId,
            number: d.attempts as number,
            startedAt: d.delivered_started_at as number,
            durationMs: d.delivered_ms as number,
            outcome: 'delivered',
            error: null,
            nextAttemptAt: null,
          });
        return attempts.sort((a, b) => a.number - b.number || a.startedAt - b.startedAt);
      }),
    nextDue: (channel) =>
      guard(() => {
        // One not on disk yet is not due: the end of its commit's fsync wakes the pump instead.
        const from = cursors.from(channel, Date.now(), leases);
        for (const [id, nextAttemptAt] of s.pendingForChannel.iterate(
          channel,
          durableThrough(),
          from?.nextAttemptAt ?? Number.MIN_SAFE_INTEGER,
          from?.id ?? 0,
          leases.size + 1,
        ) as IterableIterator<[number, number]>) {
          if (!leases.has(id)) return nextAttemptAt;
        }
        return null;
      }),
    counts: () =>
      guard(() => {
        const out: Record<DeliveryStatus, number> = { pending: 0, delivered: 0, dead: 0, suppressed: 0 };
        let others = 0;
        for (const r of s.countOthers.all() as { status: DeliveryStatus; n: number }[]) {
          out[r.status] = r.n;
          others += r.n;
        }
        out.delivered = (s.countAll.get() as number) - others;
        return out;
      }),
    oldestPendingAge: (now) =>
      guard(() => {
        const oldest = (s.oldestPending.get() as { oldest: number | null }).oldest;
        return oldest === null ? 0 : Math.max(0, now - oldest);
      }),
  };
}
