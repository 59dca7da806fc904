import pg from 'pg';
import { LogicalReplicationService, type Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type { CheckResult, Source, SourceContext, SourceMessage } from '../../engine/types.js';
import { errorMessage, HeraldError } from '../../errors.js';
import {
  changeCloudEvent,
  type DebeziumEnvelope,
  type DebeziumOp,
  keySubject,
  type Row,
  UNAVAILABLE_VALUE,
} from '../../events/debezium.js';
import type { CloudEvent } from '../../events/types.js';
import { validateEvent } from '../../events/validate.js';
import { redactUrl } from '../../redact.js';
import { ingestIsolating } from '../isolate.js';
import type { PostgresCdcConfig } from './index.js';
import { type Converter, converterFor } from './values.js';

/** Every connection that produces values sets these, so values.ts can rely on one text form. */
const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO,MDY -c bytea_output=hex';
const KV_NAMESPACE = 'postgres-cdc';
/** Events queued behind a slow log before the replication socket is paused. */
const HIGH_WATER = 50_000;
const LOW_WATER = 10_000;
/** Events per ingest call while streaming: several transactions share one durable write. */
const STREAM_BATCH = 5_000;

interface TableInfo {
  schema: string;
  table: string;
  key: string[];
  replicaIdentity: string;
}

interface SnapshotState {
  slot: string;
  snapshotDone: boolean;
  consistentPoint?: string;
}

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

export function parseLsn(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

const lsnNumber = (lsn: string) => Number(parseLsn(lsn));
const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
const qualified = (t: { schema: string; table: string }) => `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The wal_level check, separate so it can be tested without a second server. */
export function checkWalLevel(walLevel: string): void {
  if (walLevel !== 'logical') {
    throw new HeraldError(
      'SOURCE_ERROR',
      `wal_level is '${walLevel}'; set wal_level=logical and restart PostgreSQL`,
    );
  }
}

export function defaultName(prefix: string, sourceName: string): string {
  return `${prefix}_${sourceName.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

export class PostgresCdc implements Source {
  private readonly url: string;
  private readonly where: string;
  private readonly slot: string;
  private readonly publication: string;
  private tables: TableInfo[] = [];
  private byName = new Map<string, TableInfo>();
  private db = '';
  private serverName = '';
  private stopping = false;
  private background: Promise<void> | null = null;
  private service: LogicalReplicationService | null = null;
  private replicationClient: pg.Client | null = null;
  private generation = 0;

  // Stream state (one replication connection at a time).
  private relations = new Map<number, RelationInfo>();
  private current: OpenTxn | null = null;
  private queue: { events: CloudEvent[]; ackLsn: bigint }[] = [];
  private queuedEvents = 0;
  private pumping: Promise<void> | null = null;
  private paused = false;
  private lastAcked = 0n;
  private warned = new Map<string, number>();

  constructor(
    private readonly name: string,
    private readonly config: PostgresCdcConfig,
    private readonly context: SourceContext,
  ) {
    this.url = config.url;
    this.where = redactUrl(config.url);
    this.slot = config.slot ?? defaultName('herald', name);
    this.publication = config.publication ?? defaultName('herald', name);
  }

  private client(extra: Partial<pg.ClientConfig> = {}): pg.Client {
    const client = new pg.Client({
      connectionString: this.url,
      options: SESSION_OPTIONS,
      // Every value arrives as PostgreSQL's text; values.ts maps it the way Debezium does.
      types: { getTypeParser: () => (text: string) => text } as unknown as pg.CustomTypesConfig,
      ...extra,
    });
    client.on('error', (err) =>
      this.context.logger.warn({ err: err.message }, 'PostgreSQL connection error'),
    );
    return client;
  }

  private async connect(client: pg.Client, what: string): Promise<void> {
    try {
      await client.connect();
    } catch (err) {
      throw this.explain(err, `cannot open ${what} to PostgreSQL at ${this.where}`);
    }
  }

  /** Turns PostgreSQL's errors into ones that say what to do. */
  private explain(err: unknown, doing: string): HeraldError {
    if (err instanceof HeraldError) return err;
    const message = errorMessage(err).replaceAll(this.url, this.where);
    if (
      /superuser or replication role|permission denied to start WAL sender|REPLICATION attribute/i.test(
        message,
      )
    ) {
      return new HeraldError(
        'SOURCE_ERROR',
        `${doing}: the role lacks the REPLICATION attribute logical replication needs (${message}); as a superuser run ALTER ROLE <role> WITH REPLICATION`,
        { cause: err },
      );
    }
    return new HeraldError('SOURCE_ERROR', `${doing}: ${message}`, { cause: err });
  }

  async check(): Promise<CheckResult> {
    const admin = this.client();
    try {
      await this.connect(admin, 'a connection');
      const level = (await admin.query('SHOW wal_level')).rows[0]?.wal_level as string;
      checkWalLevel(level);
      const slot = await admin.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
        this.slot,
      ]);
      return {
        ok: true,
        detail: `PostgreSQL at ${this.where}: wal_level logical, slot ${this.slot} ${slot.rowCount ? 'exists' : 'not created yet'}`,
      };
    } catch (err) {
      return { ok: false, detail: errorMessage(err), fix: 'see the message' };
    } finally {
      await admin.end().catch(() => {});
    }
  }

  async start(): Promise<void> {
    const log = this.context.logger;
    const admin = this.client();
    await this.connect(admin, 'a connection');
    let needSnapshot: boolean;
    try {
      const level = (await admin.query('SHOW wal_level')).rows[0]?.wal_level as string;
      checkWalLevel(level);
      const role = await admin.query(
        'SELECT current_user AS name, current_database() AS db, rolreplication OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user',
      );
      const { name: roleName, db, ok } = role.rows[0] as { name: string; db: string; ok: boolean | string };
      if (ok !== true && ok !== 't') {
        throw new HeraldError(
          'SOURCE_ERROR',
          `role "${roleName}" lacks the REPLICATION attribute logical replication needs; as a superuser run ALTER ROLE ${quoteIdent(roleName)} WITH REPLICATION`,
        );
      }
      this.db = db;
      this.serverName = this.config.topicPrefix ?? db;
      await this.resolveTables(admin);
      await this.ensurePublication(admin);
      const state = await this.context.kv.get<SnapshotState>(KV_NAMESPACE, this.name);
      const slot = await admin.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [
        this.slot,
      ]);
      const slotExists = (slot.rowCount ?? 0) > 0;
      needSnapshot = !(slotExists && state?.snapshotDone && state.slot === this.slot);
      if (needSnapshot && slotExists) {
        // A slot without a finished snapshot in this Herald's store: its snapshot cannot be
        // re-read (an exported snapshot dies with its connection), so start over.
        log.warn(
          { slot: this.slot },
          `slot ${this.slot} has no completed snapshot in this Herald; recreating it`,
        );
        await this.dropSlot(admin);
      }
    } catch (err) {
      throw this.explain(err, `source ${this.name}`);
    } finally {
      await admin.end().catch(() => {});
    }
    if (needSnapshot) {
      const created = await this.createSlotWithSnapshot();
      this.background = this.snapshotThenStream(created);
    } else {
      this.background = this.streamLoop();
    }
  }

  private async resolveTables(admin: pg.Client): Promise<void> {
    const log = this.context.logger;
    for (const entry of this.config.tables) {
      const [schema, table] = entry.includes('.')
        ? (entry.split('.') as [string, string])
        : ['public', entry];
      const found = await admin.query(
        `SELECT c.oid, c.relreplident,
                coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                   FROM pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                  WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS key
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
        [schema, table],
      );
      const row = found.rows[0] as { relreplident: string; key: string | string[] } | undefined;
      if (!row) {
        throw new HeraldError(
          'SOURCE_ERROR',
          `source ${this.name}: table ${schema}.${table} does not exist in ${this.where}`,
        );
      }
      const key = Array.isArray(row.key) ? row.key : parseTextArray(row.key);
      const info: TableInfo = { schema, table, key, replicaIdentity: row.relreplident };
      if (key.length === 0) {
        log.warn(
          { table: `${schema}.${table}` },
          `table ${schema}.${table} has no primary key: its changes have no key and are skipped; add one with ALTER TABLE ${qualified(info)} ADD PRIMARY KEY (…)`,
        );
      }
      if (row.relreplident !== 'f') {
        log.warn(
          { table: `${schema}.${table}`, replicaIdentity: row.relreplident },
          `table ${schema}.${table} does not have REPLICA IDENTITY FULL, so updates and deletes carry no full "before"; fix: ALTER TABLE ${qualified(info)} REPLICA IDENTITY FULL`,
        );
      }
      this.tables.push(info);
      this.byName.set(`${schema}.${table}`, info);
    }
  }

  private async ensurePublication(admin: pg.Client): Promise<void> {
    const pub = await admin.query('SELECT puballtables FROM pg_publication WHERE pubname = $1', [
      this.publication,
    ]);
    const list = this.tables.map(qualified).join(', ');
    if (pub.rowCount === 0) {
      try {
        await admin.query(`CREATE PUBLICATION ${quoteIdent(this.publication)} FOR TABLE ${list}`);
      } catch (err) {
        throw this.explain(
          err,
          `cannot create publication ${this.publication} (create it as the tables' owner: CREATE PUBLICATION ${this.publication} FOR TABLE ${list})`,
        );
      }
      this.context.logger.info({ publication: this.publication }, `created publication ${this.publication}`);
      return;
    }
    if (pub.rows[0].puballtables === true || pub.rows[0].puballtables === 't') return;
    const have = await admin.query(
      'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
      [this.publication],
    );
    const present = new Set(have.rows.map((r) => `${r.schemaname}.${r.tablename}`));
    const missing = this.tables.filter((t) => !present.has(`${t.schema}.${t.table}`));
    if (missing.length > 0) {
      await admin.query(
        `ALTER PUBLICATION ${quoteIdent(this.publication)} ADD TABLE ${missing.map(qualified).join(', ')}`,
      );
    }
  }

  private async dropSlot(admin: pg.Client): Promise<void> {
    // A killed Herald's walsender may hold the slot for a moment after the kill.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query('SELECT pg_drop_replication_slot($1)', [this.slot]);
        return;
      } catch (err) {
        if (attempt >= 40 || !/is active/i.test(errorMessage(err))) throw err;
        await sleep(250);
      }
    }
  }

  /** CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT: the snapshot and the slot's start are one instant. */
  private async createSlotWithSnapshot(): Promise<{ consistentPoint: string; snapshotName: string }> {
    const replication = this.client({ replication: 'database' } as Partial<pg.ClientConfig>);
    await this.connect(replication, 'a replication connection');
    try {
      const result = await replication.query(
        `CREATE_REPLICATION_SLOT ${quoteIdent(this.slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
      );
      const row = result.rows[0] as { consistent_point: string; snapshot_name: string };
      this.replicationClient = replication;
      this.context.logger.info(
        { slot: this.slot, consistentPoint: row.consistent_point },
        `created replication slot ${this.slot}`,
      );
      await this.context.kv.set(KV_NAMESPACE, this.name, {
        slot: this.slot,
        snapshotDone: false,
        consistentPoint: row.consistent_point,
      } satisfies SnapshotState);
      return { consistentPoint: row.consistent_point, snapshotName: row.snapshot_name };
    } catch (err) {
      await replication.end().catch(() => {});
      throw this.explain(err, `cannot create replication slot ${this.slot}`);
    }
  }

  private async snapshotThenStream(created: {
    consistentPoint: string;
    snapshotName: string;
  }): Promise<void> {
    try {
      await this.snapshot(created);
    } catch (err) {
      if (!this.stopping) {
        this.context.logger.error(
          { err: errorMessage(err).replaceAll(this.url, this.where) },
          'snapshot failed; restart Herald to take it again',
        );
      }
      return;
    }
    await this.streamLoop();
  }

  private async snapshot({
    consistentPoint,
    snapshotName,
  }: {
    consistentPoint: string;
    snapshotName: string;
  }) {
    const log = this.context.logger;
    const reader = this.client();
    const started = Date.now();
    let rows = 0;
    try {
      await this.connect(reader, 'a snapshot connection');
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await reader.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replaceAll("'", "''")}'`);
      // The snapshot is imported; the exporting connection may go.
      await this.replicationClient?.end().catch(() => {});
      this.replicationClient = null;
      const lsn = lsnNumber(consistentPoint);
      const inFlight: Promise<unknown>[] = [];
      for (const table of this.tables) {
        if (table.key.length === 0) continue;
        await reader.query(`DECLARE herald_snapshot NO SCROLL CURSOR FOR SELECT * FROM ${qualified(table)}`);
        let converters: Converter[] | null = null;
        for (;;) {
          if (this.stopping) throw new HeraldError('SHUTTING_DOWN', 'stopped during the snapshot');
          const batch = await reader.query(`FETCH ${this.config.snapshotBatch} FROM herald_snapshot`);
          if (batch.rows.length === 0) break;
          converters ??= batch.fields.map((f) => converterFor(f.dataTypeID));
          const names = batch.fields.map((f) => f.name);
          const now = Date.now();
          const events: CloudEvent[] = new Array(batch.rows.length);
          for (let i = 0; i < batch.rows.length; i++) {
            const raw = batch.rows[i] as Record<string, string | null>;
            const after: Row = {};
            for (let c = 0; c < names.length; c++) {
              const v = raw[names[c]!];
              after[names[c]!] = v === null || v === undefined ? null : converters[c]!(v);
            }
            const subject = keySubject(after, table.key)!;
            const envelope: DebeziumEnvelope = {
              before: null,
              after,
              source: {
                connector: 'postgresql',
                name: this.serverName,
                ts_ms: started,
                snapshot: true,
                db: this.db,
                schema: table.schema,
                table: table.table,
                txId: null,
                lsn,
                xmin: null,
              },
              op: 'r',
              ts_ms: now,
            };
            events[i] = changeCloudEvent(
              envelope,
              `snapshot:${consistentPoint}:${table.schema}.${table.table}:${subject}`,
              subject,
            );
          }
          rows += events.length;
          const ingested = this.ingestSettingAside(events);
          // Awaited below in order; the no-op handler keeps a later one's rejection from going unhandled meanwhile.
          ingested.catch(() => {});
          inFlight.push(ingested);
          if (inFlight.length >= 4) await inFlight.shift();
        }
        await reader.query('CLOSE herald_snapshot');
      }
      await Promise.all(inFlight);
      await reader.query('COMMIT');
    } finally {
      await reader.end().catch(() => {});
      await this.replicationClient?.end().catch(() => {});
      this.replicationClient = null;
    }
    await this.context.kv.set(KV_NAMESPACE, this.name, {
      slot: this.slot,
      snapshotDone: true,
      consistentPoint,
    } satisfies SnapshotState);
    log.info({ rows, ms: Date.now() - started, slot: this.slot }, `snapshot of ${rows} rows done; streaming`);
  }

  /* ------------------------------------------------------------ streaming */

  private async streamLoop(): Promise<void> {
    const log = this.context.logger;
    let delay = 250;
    while (!this.stopping) {
      const generation = ++this.generation;
      this.relations.clear();
      this.current = null;
      this.queue = [];
      this.queuedEvents = 0;
      this.paused = false;
      const service = new LogicalReplicationService(
        { connectionString: this.url, options: SESSION_OPTIONS },
        // Acknowledged by hand, only once the events are durable; never on a timer.
        { acknowledge: { auto: false, timeoutSeconds: 0 } },
      );
      this.service = service;
      const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.publication] });
      service.on('error', (err) => {
        if (!this.stopping) log.warn({ err: errorMessage(err) }, 'replication connection error');
      });
      service.on('start', () => {
        delay = 250;
        log.info({ slot: this.slot }, `streaming changes from slot ${this.slot}`);
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
        await service.subscribe(plugin, this.slot, '0/0');
        if (!this.stopping) log.warn('replication stream ended; reconnecting');
      } catch (err) {
        if (!this.stopping) {
          log.warn(
            { err: this.explain(err, 'replication').message, retryInMs: delay },
            'replication stream failed; reconnecting',
          );
        }
      }
      await service.stop().catch(() => {});
      if (this.stopping) break;
      await this.pumping?.catch(() => {});
      await sleep(delay);
      delay = Math.min(delay * 2, 10_000);
    }
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    const count = (this.warned.get(key) ?? 0) + 1;
    this.warned.set(key, count);
    // The first, then every 1000th: a table without a key must not flood the log.
    if (count === 1 || count % 1000 === 0) this.context.logger.warn({ ...fields, count }, message);
  }

  private onMessage(lsn: string, message: Pgoutput.Message): void {
    switch (message.tag) {
      case 'relation': {
        const info = this.byName.get(`${message.schema}.${message.name}`);
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
          this.context.logger.warn(
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
        `a change for a table not in this source's tables (publication ${this.publication} publishes more); skipped`,
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
        name: this.serverName,
        ts_ms: txn.tsMs,
        ts_us: txn.tsUs,
        snapshot: false,
        db: this.db,
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
      if (this.queue.length > 0 && !this.stopping) this.pump();
    });
  }

  /** Ingests queued transactions in order, several per call, and acknowledges each durable batch. */
  private async drain(generation: number): Promise<void> {
    // Let the current socket chunk finish so more transactions join the first batch.
    await new Promise((r) => setImmediate(r));
    try {
      while (this.queue.length > 0 && generation === this.generation && !this.stopping) {
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
        if (events.length > 0) await this.ingestSettingAside(events);
        if (generation !== this.generation) return;
        this.queue.splice(0, taken);
        this.queuedEvents -= events.length;
        this.ack(ackLsn);
        if (this.paused && this.queuedEvents < LOW_WATER) this.setPaused(false);
      }
    } catch (err) {
      if (this.stopping || generation !== this.generation) return;
      // Not durable, not acknowledged: reconnect, and PostgreSQL sends it all again.
      this.context.logger.error(
        { err: errorMessage(err) },
        'could not store changes; reconnecting to resend them',
      );
      this.generation++;
      this.queue = [];
      this.queuedEvents = 0;
      void this.service?.stop();
    }
  }

  /**
   * Ingests change events; one that ingest refuses (a 4xx: too large, invalid) is set aside in
   * the source dead-letter table, named by its id (commit LSN and index), and the rest are stored,
   * so one bad row never holds the slot back. An outage throws: nothing is confirmed.
   */
  private async ingestSettingAside(events: CloudEvent[]): Promise<void> {
    const refused = await ingestIsolating(
      events,
      (event) => [event],
      (batch) => this.context.ingest(batch),
    );
    for (const { item: event, reason } of refused) {
      await this.context.deadLetter(
        {
          position: event.id,
          subject: `${event.iodebeziumschema}.${event.iodebeziumtable}`,
          payload: JSON.stringify(event),
        },
        reason,
      );
    }
  }

  /** A change set aside earlier: its event as it was made (its data is the row as it was then). */
  replayDeadLetter(message: SourceMessage & { payload: Uint8Array }): CloudEvent[] {
    return [validateEvent(JSON.parse(Buffer.from(message.payload).toString('utf8')))];
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.service?.stop().catch(() => {});
    await this.replicationClient?.end().catch(() => {});
    await this.pumping?.catch(() => {});
    await this.background?.catch(() => {});
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

/** `{a,b}` as PostgreSQL prints a name[] when no array parser ran. */
function parseTextArray(text: string): string[] {
  const inner = text.replace(/^\{|\}$/g, '');
  if (inner === '') return [];
  return inner.split(',').map((s) => s.replace(/^"|"$/g, ''));
}
