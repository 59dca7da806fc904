import type pg from 'pg';
import { HeraldError } from '../../errors.js';
import { eventJson } from '../../events/serialize.js';
import type { CloudEvent } from '../../events/types.js';
import {
  type Decision,
  type HeldDelivery,
  KeyLedger,
  type KeyRef,
  type KeyRow,
  keysOf,
} from '../notification-keys.js';
import type { AppendResult, EventLog, NewDelivery, RoutingStore } from '../types.js';
import { eventRow, int, intOrNull, type Query, type Row, type Tx } from './rows.js';

/** Events with their routing outcome (null until routed), which lives beside them (migration 7). */
const SELECT_EVENTS =
  'SELECT e.*, r.routed_at, r.routing FROM events e LEFT JOIN event_routing r ON r.seq = e.seq';

/**
 * An append that PostgreSQL refuses for what it holds — a data exception (class 22, e.g. a
 * `\u0000` in JSON text), a constraint (class 23), a value too complex (54) — is EVENT_UNSTORABLE,
 * so ingest can find the event and store the rest. A lost connection stays STORE_UNAVAILABLE.
 */
function refusedEvents(err: unknown): never {
  const sqlState = ((err as HeraldError).cause as { code?: unknown } | undefined)?.code;
  if (typeof sqlState === 'string' && /^(22|23|54)/.test(sqlState)) {
    throw new HeraldError('EVENT_UNSTORABLE', (err as Error).message, { cause: err });
  }
  throw err;
}

/** The event log: appended in one statement per batch, read back with its routing. */
export function postgresEvents(query: Query): EventLog {
  return {
    async append(events, receivedAt) {
      if (events.length === 0) return [];
      const key = (e: CloudEvent) => `${e.source}\u0000${e.id}`;
      const firstIndex = new Map<string, number>();
      const unique: CloudEvent[] = [];
      events.forEach((e, i) => {
        if (!firstIndex.has(key(e))) {
          firstIndex.set(key(e), i);
          unique.push(e);
        }
      });
      let rows: string;
      try {
        rows = `[${unique.map(eventJson).join(',')}]`;
      } catch (err) {
        throw new HeraldError(
          'EVENT_UNSTORABLE',
          `an event cannot be serialised: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      const inserted = await query(
        `WITH inserted AS (
           INSERT INTO events (id, source, type, subject, received_at, event)
           SELECT t.e->>'id', t.e->>'source', t.e->>'type', t.e->>'subject', $2, t.e
           FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(e, n)
           ORDER BY t.n
           ON CONFLICT (source, id) DO NOTHING
           RETURNING seq, source, id
         ), queued AS (
           INSERT INTO unrouted_events (seq) SELECT seq FROM inserted
         )
         SELECT seq, source, id FROM inserted`,
        [rows, receivedAt],
      ).catch(refusedEvents);
      const seqOf = new Map<string, { seq: number; fresh: boolean }>();
      for (const r of inserted) seqOf.set(`${r.source}\u0000${r.id}`, { seq: int(r.seq), fresh: true });
      const existing = unique.filter((e) => !seqOf.has(key(e)));
      if (existing.length > 0) {
        const rows = await query(
          `SELECT e.seq, e.source, e.id FROM events e
           JOIN unnest($1::text[], $2::text[]) AS t(source, id) ON e.source = t.source AND e.id = t.id`,
          [existing.map((e) => e.source), existing.map((e) => e.id)],
        );
        for (const r of rows) seqOf.set(`${r.source}\u0000${r.id}`, { seq: int(r.seq), fresh: false });
      }
      return events.map((e, i): AppendResult => {
        const found = seqOf.get(key(e));
        if (!found) throw new HeraldError('STORE_UNAVAILABLE', 'event vanished during append');
        return { seq: found.seq, duplicate: !found.fresh || firstIndex.get(key(e)) !== i };
      });
    },
    async get(seq) {
      const [r] = await query(`${SELECT_EVENTS} WHERE e.seq = $1`, [seq]);
      return r ? eventRow(r) : null;
    },
    async getMany(seqs) {
      if (seqs.length === 0) return [];
      return (await query(`${SELECT_EVENTS} WHERE e.seq = ANY($1::bigint[]) ORDER BY e.seq`, [seqs])).map(
        eventRow,
      );
    },
    async findById(id, source) {
      const [r] = source
        ? await query(`${SELECT_EVENTS} WHERE e.id = $1 AND e.source = $2`, [id, source])
        : await query(`${SELECT_EVENTS} WHERE e.id = $1 ORDER BY e.seq DESC LIMIT 1`, [id]);
      return r ? eventRow(r) : null;
    },
    async list(q) {
      const where: string[] = [];
      const values: unknown[] = [];
      const add = (clause: string, value: unknown) => {
        values.push(value);
        where.push(clause.replace('?', `$${values.length}`));
      };
      if (q.beforeSeq !== undefined) add('e.seq < ?', q.beforeSeq);
      if (q.type !== undefined) add('e.type = ?', q.type);
      if (q.source !== undefined) add('e.source = ?', q.source);
      if (q.subject !== undefined) add('e.subject = ?', q.subject);
      values.push(q.limit);
      const rows = await query(
        `${SELECT_EVENTS} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY e.seq DESC LIMIT $${values.length}`,
        values,
      );
      return rows.map(eventRow);
    },
    async unrouted(limit) {
      return (
        await query(
          'SELECT e.* FROM unrouted_events u JOIN events e ON e.seq = u.seq ORDER BY u.seq LIMIT $1',
          [limit],
        )
      ).map(eventRow);
    },
    async readForProjection(cursor, limit) {
      // Sequence values are taken before commit, so with several appenders seq 5 can commit
      // after seq 6: a reader following seq alone would pass 5 for good. Each row records its
      // transaction id (tx); every transaction older than the snapshot's xmin has ended and any
      // new one gets a larger id, so rows with tx < xmin are final and nothing can appear
      // behind them in (tx, seq) order. The cursor is the seq of the last event read and its
      // row gives the tx; 0, or a row that is not there, means the start (applied ids keep a
      // re-read from applying anything twice).
      //
      // Events of one row keep their order: one process appends one transaction at a time (the
      // ingest batcher), so a later append gets its transaction id after the earlier one has
      // committed — a larger tx — and within one transaction seq follows the batch order.
      // A write transaction left open anywhere on the server holds xmin back and delays
      // projections (never routing) until it ends.
      const rows = await query(
        `${SELECT_EVENTS}
         WHERE e.tx < pg_snapshot_xmin(pg_current_snapshot())
           AND (e.tx, e.seq) > (COALESCE((SELECT tx FROM events WHERE seq = $1), '0'::xid8), $1)
         ORDER BY e.tx, e.seq LIMIT $2`,
        [cursor, limit],
      );
      const events = rows.map(eventRow);
      return { events, next: events.at(-1)?.seq ?? cursor };
    },
    async count() {
      const [r] = await query('SELECT count(*) AS n FROM events');
      return int(r!.n);
    },
  };
}

/**
 * One statement is one transaction: the deliveries and the routed marks commit together, in one
 * round trip instead of four (BEGIN, INSERT, UPDATE, COMMIT). A delivery carries its status and
 * reason: `suppressed` when a notification key held it back.
 */
const COMMIT_ROUTING = `WITH planned AS (
   INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
     idempotency_key, status, attempts, max_attempts, next_attempt_at, last_error, note, created_at, updated_at)
   SELECT d."eventSeq", e.id, e.source, e.type, d.trigger, d.action, d.channel, d.recipient,
     d."idempotencyKey", COALESCE(d.status, 'pending'), 0, d."maxAttempts", d."notBefore", d.reason,
     CASE WHEN d.status = 'suppressed' THEN NULL ELSE d.note END, $2, $2
   FROM jsonb_to_recordset($1::jsonb) AS d("eventSeq" bigint, trigger text, action int, channel text,
     recipient text, "idempotencyKey" text, "maxAttempts" int, "notBefore" bigint, status text, reason text,
     note text)
   JOIN events e ON e.seq = d."eventSeq"
   ON CONFLICT (idempotency_key) DO NOTHING
   RETURNING 1
 ), routed AS (
   INSERT INTO event_routing (seq, routed_at, routing)
   SELECT t.seq, $2, t.record FROM jsonb_to_recordset($3::jsonb) AS t(seq bigint, record jsonb)
   ON CONFLICT (seq) DO UPDATE SET routed_at = EXCLUDED.routed_at, routing = EXCLUDED.routing
 ), dequeued AS (
   DELETE FROM unrouted_events WHERE seq = ANY($4::bigint[])
 )
 SELECT count(*) AS inserted FROM planned`;

type Batch = Parameters<RoutingStore['commit']>[0];
type Decided = NewDelivery & { status?: string; reason?: string | null };

const commitValues = (batch: Batch, deliveries: Decided[], routedAt: number) => [
  JSON.stringify(deliveries.map(({ gates: _gates, ...d }) => d)),
  routedAt,
  JSON.stringify(batch.map((b) => ({ seq: b.seq, record: b.record }))),
  batch.map((b) => b.seq),
];

/** Routing commits: the planned deliveries and the routed marks of a batch. */
export function postgresRouting(query: Query, tx: Tx): RoutingStore {
  return {
    async commit(batch, routedAt) {
      if (batch.length === 0) return 0;
      const deliveries: NewDelivery[] = batch.flatMap((b) => b.deliveries);
      if (deliveries.some((d) => d.gates))
        return tx((client) => commitGated(client, batch, deliveries, routedAt));
      const [r] = await query(COMMIT_ROUTING, commitValues(batch, deliveries, routedAt));
      return int(r!.inserted);
    },
  };
}

/**
 * A batch with notification keys, in one transaction: the keys' rows are created if absent and
 * locked (in one order, so routers never deadlock on them), so routers in several processes
 * decide a key one after the other; then the deliveries, keys and replacements are written.
 */
async function commitGated(
  client: pg.PoolClient,
  batch: Batch,
  deliveries: NewDelivery[],
  routedAt: number,
): Promise<number> {
  const refs = new Map<string, KeyRef>();
  for (const d of deliveries)
    for (const r of keysOf(d)) refs.set(JSON.stringify([r.scope, r.kind, r.key]), r);
  const sorted = [...refs.keys()].sort().map((k) => refs.get(k)!);
  const columns = [sorted.map((r) => r.scope), sorted.map((r) => r.kind), sorted.map((r) => r.key)];
  await client.query(
    `INSERT INTO notification_keys (scope, kind, key)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`,
    columns,
  );
  const keyRows = (
    await client.query(
      `SELECT k.* FROM notification_keys k
       JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(scope, kind, key)
         ON k.scope = t.scope AND k.kind = t.kind AND k.key = t.key
       ORDER BY k.scope, k.kind, k.key FOR UPDATE OF k`,
      columns,
    )
  ).rows as Row[];
  const keys = new Map<string, KeyRow>();
  for (const r of keyRows) {
    if (r.window_start === null) continue;
    keys.set(JSON.stringify([r.scope, r.kind, r.key]), {
      windowStart: int(r.window_start),
      count: int(r.count),
      deliveryKey: (r.delivery_key as string | null) ?? null,
      eventSeq: intOrNull(r.event_seq),
      eventId: (r.event_id as string | null) ?? null,
    });
  }
  const candidates = [...new Set([...keys.values()].map((k) => k.deliveryKey).filter((k) => k !== null))];
  const existing = new Set(
    (
      await client.query('SELECT idempotency_key FROM deliveries WHERE idempotency_key = ANY($1::text[])', [
        deliveries.map((d) => d.idempotencyKey),
      ])
    ).rows.map((r) => r.idempotency_key as string),
  );
  const held = new Map<string, HeldDelivery>();
  if (candidates.length > 0) {
    const rows = (
      await client.query(
        `SELECT idempotency_key, status, attempts, next_attempt_at, lease_until FROM deliveries
         WHERE idempotency_key = ANY($1::text[]) ORDER BY id FOR UPDATE`,
        [candidates],
      )
    ).rows as Row[];
    // A delivery a dispatcher holds (its clock ahead of this one's) is in flight: not replaceable.
    const now = Date.now();
    for (const r of rows)
      held.set(r.idempotency_key as string, {
        status: r.lease_until !== null && int(r.lease_until) >= now ? 'claimed' : String(r.status),
        attempts: int(r.attempts),
        nextAttemptAt: int(r.next_attempt_at),
      });
  }
  const ledger = new KeyLedger(
    (ref) => keys.get(JSON.stringify([ref.scope, ref.kind, ref.key])) ?? null,
    (idempotencyKey) => held.get(idempotencyKey) ?? null,
  );
  // Decisions are objects a later delivery of the batch may still change (a replacement).
  const decided: { delivery: NewDelivery; decision: Decision | null }[] = deliveries.map((d) => ({
    delivery: d,
    // Routed before (same idempotency key): the insert skips it, and its keys stay as they are.
    decision: d.gates && !existing.has(d.idempotencyKey) ? ledger.decide(d, d.eventSeq) : null,
  }));
  const rows: Decided[] = decided.map(({ delivery, decision }) =>
    decision
      ? {
          ...delivery,
          status: decision.status,
          reason: decision.reason,
          notBefore: decision.notBefore ?? delivery.notBefore,
        }
      : delivery,
  );
  const [r] = (await client.query(COMMIT_ROUTING, commitValues(batch, rows, routedAt))).rows as Row[];
  const changed = ledger.changedKeys();
  if (changed.length > 0)
    await client.query(
      `UPDATE notification_keys k SET window_start = t.window_start, count = t.count,
         delivery_key = t.delivery_key, event_seq = t.event_seq, event_id = t.event_id
       FROM jsonb_to_recordset($1::jsonb) AS t(scope text, kind text, key text, window_start bigint, count int,
         delivery_key text, event_seq bigint, event_id text)
       WHERE k.scope = t.scope AND k.kind = t.kind AND k.key = t.key`,
      [
        JSON.stringify(
          changed.map(({ ref, row }) => ({
            scope: ref.scope,
            kind: ref.kind,
            key: ref.key,
            window_start: row.windowStart,
            count: row.count,
            delivery_key: row.deliveryKey,
            event_seq: row.eventSeq,
            event_id: row.eventId,
          })),
        ),
      ],
    );
  if (ledger.replacedStored.length > 0)
    await client.query(
      `UPDATE deliveries d SET status = 'suppressed', last_error = t.reason, note = NULL, lease_until = NULL,
         updated_at = $2
       FROM jsonb_to_recordset($1::jsonb) AS t("idempotencyKey" text, reason text)
       WHERE d.idempotency_key = t."idempotencyKey" AND d.status = 'pending' AND d.attempts = 0`,
      [JSON.stringify(ledger.replacedStored), routedAt],
    );
  if (ledger.digestMembers.length > 0)
    await client.query(
      `INSERT INTO digest_events (delivery_key, event_seq, digest_key)
       SELECT t."deliveryKey", t."eventSeq", t.key
       FROM jsonb_to_recordset($1::jsonb) AS t("deliveryKey" text, "eventSeq" bigint, key text)
       ON CONFLICT DO NOTHING`,
      [JSON.stringify(ledger.digestMembers)],
    );
  if (ledger.dueStored.length > 0)
    await client.query(
      `UPDATE deliveries d SET next_attempt_at = LEAST(d.next_attempt_at, t.at), updated_at = $2
       FROM jsonb_to_recordset($1::jsonb) AS t("idempotencyKey" text, at bigint)
       WHERE d.idempotency_key = t."idempotencyKey" AND d.status = 'pending' AND d.attempts = 0`,
      [JSON.stringify(ledger.dueStored), routedAt],
    );
  return int(r!.inserted);
}
