import { HeraldError } from '../../errors.js';
import { eventJson } from '../../events/serialize.js';
import type { CloudEvent } from '../../events/types.js';
import type { AppendResult, EventLog, NewDelivery, RoutingStore } from '../types.js';
import { eventRow, int, type Query } from './rows.js';

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

/** Routing commits: the planned deliveries and the routed marks of a batch in one statement. */
export function postgresRouting(query: Query): RoutingStore {
  return {
    async commit(batch, routedAt) {
      if (batch.length === 0) return 0;
      const deliveries: NewDelivery[] = batch.flatMap((b) => b.deliveries);
      // One statement is one transaction: the deliveries and the routed marks commit together,
      // in one round trip instead of four (BEGIN, INSERT, UPDATE, COMMIT).
      const [r] = await query(
        `WITH planned AS (
           INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
             idempotency_key, status, attempts, max_attempts, next_attempt_at, created_at, updated_at)
           SELECT d."eventSeq", e.id, e.source, e.type, d.trigger, d.action, d.channel, d.recipient,
             d."idempotencyKey", 'pending', 0, d."maxAttempts", d."notBefore", $2, $2
           FROM jsonb_to_recordset($1::jsonb) AS d("eventSeq" bigint, trigger text, action int, channel text,
             recipient text, "idempotencyKey" text, "maxAttempts" int, "notBefore" bigint)
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
         SELECT count(*) AS inserted FROM planned`,
        [
          JSON.stringify(deliveries),
          routedAt,
          JSON.stringify(batch.map((b) => ({ seq: b.seq, record: b.record }))),
          batch.map((b) => b.seq),
        ],
      );
      return int(r!.inserted);
    },
  };
}
