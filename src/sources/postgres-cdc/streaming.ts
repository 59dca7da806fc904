import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type { SourceContext } from '../../engine/types.js';
import { errorMessage } from '../../errors.js';
import {
  changeCloudEvent,
  type DebeziumEnvelope,
  type DebeziumOp,
  keySubject,
  type Row,
  UNAVAILABLE_VALUE,
} from '../../events/debezium.js';
import type { CloudEvent } from '../../events/types.js';
import { formatLsn, lsnNumber, type PostgresLink, parseLsn, sleep, type TableInfo } from './setup.js';
import { type Converter, converterFor } from './values.js';

/** Events queued behind a slow log before the replication socket is paused. */
const HIGH_WATER = 50_000;
const LOW_WATER = 10_000;
/** Events per ingest call while streaming: several transactions share one durable write. */
const STREAM_BATCH = 5_000;

interface OpenTxn {
  xid: number;
  commitLsn: string;
  tsMs: number;
  tsUs: number;
  events: CloudEvent[];
  index: number;
}

interface RelationInfo {
  info: TableInfo | undefined;
  columns: { name: string; convert: Converter }[];
}

export interface ChangeStreamOptions {
  slot: string;
  publication: string;
  link: PostgresLink;
  logger: SourceContext['logger'];
  /** The followed tables by "schema.table". */
  byName: Map<string, TableInfo>;
  /** Debezium's logical server name and the database, as the envelope's `source` names them. */
  serverName: string;
  db: string;
  isStopping(): boolean;
  /** Resolves once the events are durable (or set aside); throws on an outage. */
  ingest(events: CloudEvent[]): Promise<void>;
}

/**
 * The slot's changes as events, one replication connection at a time. Transactions queue in
 * commit order and are ingested several per call; the slot is acknowledged only past what is
 * durable, so a crash or a failed ingest resends from there.
 */
export class ChangeStream {
  private service: LogicalReplicationService | null = null;
  private generation = 0;
  private relations = new Map<number, RelationInfo>();
  private current: OpenTxn | null = null;
  private queue: { events: CloudEvent[]; ackLsn: bigint }[] = [];
  private queuedEvents = 0;
  private pumping: Promise<void> | null = null;
  private paused = false;
  private lastAcked = 0n;
  private warned = new Map<string, number>();

  constructor(private readonly options: ChangeStreamOptions) {}

  /** Ends the replication connection; `run` then returns once the owner reports stopping. */
  async stopService(): Promise<void> {
    await this.service?.stop().catch(() => {});
  }

  /** Resolves when no ingest of queued changes is running. */
  async settled(): Promise<void> {
    await this.pumping?.catch(() => {});
  }

  /** Streams from the slot until stopped, reconnecting with a growing delay (up to 10 s) after a failure. */
  async run(): Promise<void> {
    const log = this.options.logger;
    let delay = 250;
    while (!this.options.isStopping()) {
      const generation = ++this.generation;
      this.relations.clear();
      this.current = null;
      this.queue = [];
      this.queuedEvents = 0;
      this.paused = false;
      const service = new LogicalReplicationService(
        this.options.link.replicationOptions(),
        // Acknowledged by hand, only once the events are durable; never on a timer.
        { acknowledge: { auto: false, timeoutSeconds: 0 } },
      );
      this.service = service;
      const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.options.publication] });
      service.on('error', (err) => {
        if (!this.options.isStopping()) log.warn({ err: errorMessage(err) }, 'replication connection error');
      });
      service.on('start', () => {
        delay = 250;
        log.info({ slot: this.options.slot }, `streaming changes from slot ${this.options.slot}`);
      });
      service.on('data', (lsn: string, message: Pgoutput.Message) => {
        if (generation !== this.generation) return;
        try {
          this.onMessage(lsn, message);
        } catch (err) {
          // Nothing of this connection was confirmed past the failing message: start over from the slot.
          log.error({ err: errorMessage(err), lsn }, 'could not read a change; reconnecting');
          this.generation++;
          void service.stop();
        }
      });
      service.on('heartbeat', (lsn: string, _ts: number, shouldRespond: boolean) => {
        if (generation === this.generation) this.onHeartbeat(lsn, shouldRespond);
      });
      try {
        // Starting at 0/0 makes PostgreSQL resume at the slot's confirmed position.
        await service.subscribe(plugin, this.options.slot, '0/0');
        if (!this.options.isStopping()) log.warn('replication stream ended; reconnecting');
      } catch (err) {
        if (!this.options.isStopping()) {
          log.warn(
            { err: this.options.link.explain(err, 'replication').message, retryInMs: delay },
            'replication stream failed; reconnecting',
          );
        }
      }
      await service.stop().catch(() => {});
      if (this.options.isStopping()) break;
      await this.pumping?.catch(() => {});
      await sleep(delay);
      delay = Math.min(delay * 2, 10_000);
    }
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    const count = (this.warned.get(key) ?? 0) + 1;
    this.warned.set(key, count);
    // The first, then every 1000th: a table without a key must not flood the log.
    if (count === 1 || count % 1000 === 0) this.options.logger.warn({ ...fields, count }, message);
  }

  private onMessage(lsn: string, message: Pgoutput.Message): void {
    switch (message.tag) {
      case 'relation': {
        const info = this.options.byName.get(`${message.schema}.${message.name}`);
        const columns = message.columns.map((c) => {
          const convert = converterFor(c.typeOid);
          // Values come out of the parser already in Debezium's JSON form.
          c.parser = convert;
          return { name: c.name, convert };
        });
        this.relations.set(message.relationOid, { info, columns });
        return;
      }
      case 'begin': {
        const commitUs = Number(message.commitTime as bigint);
        this.current = {
          xid: message.xid,
          commitLsn: formatLsn(parseLsn(message.commitLsn ?? lsn)),
          tsMs: Math.floor(commitUs / 1000),
          tsUs: commitUs,
          events: [],
          index: 0,
        };
        return;
      }
      case 'insert':
        this.onChange(lsn, message.relation.relationOid, 'c', null, message.new);
        return;
      case 'update':
        this.onChange(lsn, message.relation.relationOid, 'u', message.old ?? message.key, message.new);
        return;
      case 'delete':
        this.onChange(lsn, message.relation.relationOid, 'd', message.old ?? message.key, null);
        return;
      case 'truncate':
        for (const r of message.relations) {
          this.options.logger.warn(
            { table: r ? `${r.schema}.${r.name}` : 'unknown' },
            'TRUNCATE is not turned into events (as Debezium by default); views fed by this table need a resync',
          );
        }
        return;
      case 'commit': {
        const txn = this.current;
        this.current = null;
        if (!txn) return;
        const ackLsn = parseLsn(message.commitEndLsn ?? lsn);
        this.queue.push({ events: txn.events, ackLsn });
        this.queuedEvents += txn.events.length;
        if (this.queuedEvents > HIGH_WATER && !this.paused) this.setPaused(true);
        this.pump();
        return;
      }
      default:
        return;
    }
  }

  private onChange(lsn: string, relationOid: number, op: DebeziumOp, oldRow: Row | null, newRow: Row | null) {
    const txn = this.current;
    const relation = this.relations.get(relationOid);
    if (!txn || !relation) return;
    const index = txn.index++;
    const info = relation.info;
    if (!info) {
      this.warnOnce(
        `unknown:${relationOid}`,
        { lsn, relationOid },
        `a change for a table not in this source's tables (publication ${this.options.publication} publishes more); skipped`,
      );
      return;
    }
    const before = oldRow ? plain(oldRow, relation) : null;
    const after = newRow ? plain(newRow, relation) : null;
    const subject = keySubject(after ?? before, info.key);
    if (subject === undefined) {
      this.warnOnce(
        `nokey:${info.schema}.${info.table}`,
        { lsn, table: `${info.schema}.${info.table}`, op },
        `a change of ${info.schema}.${info.table} without its key (${info.key.join(', ') || 'no primary key'}); skipped`,
      );
      return;
    }
    const envelope: DebeziumEnvelope = {
      before,
      after,
      source: {
        connector: 'postgresql',
        name: this.options.serverName,
        ts_ms: txn.tsMs,
        ts_us: txn.tsUs,
        snapshot: false,
        db: this.options.db,
        schema: info.schema,
        table: info.table,
        txId: txn.xid,
        lsn: lsnNumber(lsn),
        xmin: null,
      },
      op,
      ts_ms: Date.now(),
    };
    txn.events.push(changeCloudEvent(envelope, `${txn.commitLsn}:${index}`, subject));
  }

  private onHeartbeat(lsn: string, shouldRespond: boolean): void {
    // Everything before a keepalive's position has been sent; when none of it is waiting to be
    // made durable, the slot may move there (otherwise WAL of unrelated tables piles up).
    const idle = !this.current && this.queue.length === 0 && !this.pumping;
    const position = parseLsn(lsn);
    if (idle && position > this.lastAcked) this.ack(position);
    else if (shouldRespond) this.ack(this.lastAcked);
  }

  /**
   * Confirms `lsn` as flushed. The library reports its argument + 1, so it is given lsn − 1: a
   * commit whose record starts exactly at the confirmed position must not be skipped on restart.
   */
  private ack(lsn: bigint): void {
    if (lsn <= 0n) return;
    if (lsn > this.lastAcked) this.lastAcked = lsn;
    void this.service?.acknowledge(formatLsn(lsn - 1n)).catch(() => {});
  }

  private setPaused(paused: boolean): void {
    // The library has no pause of its own without awaiting every message; pause its socket.
    const stream = (
      this.service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } }
    )?._connection?.stream;
    if (!stream) return;
    this.paused = paused;
    if (paused) stream.pause();
    else stream.resume();
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = this.drain(this.generation).finally(() => {
      this.pumping = null;
      if (this.queue.length > 0 && !this.options.isStopping()) this.pump();
    });
  }

  /** Ingests queued transactions in order, several per call, and acknowledges each durable batch. */
  private async drain(generation: number): Promise<void> {
    // Let the current socket chunk finish so more transactions join the first batch.
    await new Promise((r) => setImmediate(r));
    try {
      while (this.queue.length > 0 && generation === this.generation && !this.options.isStopping()) {
        const events: CloudEvent[] = [];
        let ackLsn = 0n;
        let taken = 0;
        while (
          taken < this.queue.length &&
          (events.length === 0 || events.length + this.queue[taken]!.events.length <= STREAM_BATCH)
        ) {
          const txn = this.queue[taken++]!;
          for (const e of txn.events) events.push(e);
          ackLsn = txn.ackLsn;
        }
        if (events.length > 0) await this.options.ingest(events);
        if (generation !== this.generation) return;
        this.queue.splice(0, taken);
        this.queuedEvents -= events.length;
        this.ack(ackLsn);
        if (this.paused && this.queuedEvents < LOW_WATER) this.setPaused(false);
      }
    } catch (err) {
      if (this.options.isStopping() || generation !== this.generation) return;
      // Not durable, not acknowledged: reconnect, and PostgreSQL sends it all again.
      this.options.logger.error(
        { err: errorMessage(err) },
        'could not store changes; reconnecting to resend them',
      );
      this.generation++;
      this.queue = [];
      this.queuedEvents = 0;
      void this.service?.stop();
    }
  }
}

/** A plain object (the parser's tuples have no prototype) with TOASTed-and-unchanged values marked as Debezium marks them. */
function plain(tuple: Row, relation: RelationInfo): Row {
  const row: Row = {};
  for (const { name } of relation.columns) {
    if (!(name in tuple)) continue;
    const value = tuple[name];
    row[name] = value === undefined ? UNAVAILABLE_VALUE : value;
  }
  return row;
}
