import type pg from 'pg';
import type { CheckResult, Source, SourceContext, SourceLag, SourceMessage } from '../../engine/types.js';
import { errorMessage } from '../../errors.js';
import type { CloudEvent } from '../../events/types.js';
import { validateEvent } from '../../events/validate.js';
import { ingestIsolating } from '../isolate.js';
import type { PostgresCdcConfig } from './config.js';
import {
  type CreatedSlot,
  checkSetup,
  createSlotWithSnapshot,
  defaultName,
  PostgresLink,
  type SetupTarget,
  setUp,
  type TableInfo,
} from './setup.js';
import { takeSnapshot } from './snapshot.js';
import { ChangeStream } from './streaming.js';

const LAG_SAMPLE_TIMEOUT_MS = 2_000;

/**
 * One postgres-cdc source: sets up its slot and publication (setup.ts), reads the first snapshot
 * (snapshot.ts), then follows the slot (streaming.ts).
 */
export class PostgresCdc implements Source {
  private readonly link: PostgresLink;
  private readonly target: SetupTarget;
  private stopping = false;
  private background: Promise<void> | null = null;
  /** The connection that exported the snapshot, open until the snapshot is imported. */
  private replicationClient: pg.Client | null = null;
  private stream: ChangeStream | null = null;

  constructor(
    name: string,
    private readonly config: PostgresCdcConfig,
    private readonly context: SourceContext,
  ) {
    this.link = new PostgresLink(config.url, context.logger);
    this.target = {
      name,
      slot: config.slot ?? defaultName('herald', name),
      publication: config.publication ?? defaultName('herald', name),
      config,
      link: this.link,
      context,
    };
  }

  check(): Promise<CheckResult> {
    return checkSetup(this.target);
  }

  async start(): Promise<void> {
    const { db, tables, needSnapshot } = await setUp(this.target);
    const serverName = this.config.topicPrefix ?? db;
    this.stream = new ChangeStream({
      slot: this.target.slot,
      publication: this.target.publication,
      link: this.link,
      logger: this.context.logger,
      byName: new Map(tables.map((t) => [`${t.schema}.${t.table}`, t])),
      serverName,
      db,
      isStopping: () => this.stopping,
      ingest: (events) => this.ingestSettingAside(events),
    });
    if (needSnapshot) {
      const created = await createSlotWithSnapshot(this.target);
      this.replicationClient = created.exporter;
      this.background = this.snapshotThenStream(created, tables, serverName, db);
    } else {
      this.background = this.stream.run();
    }
  }

  private async snapshotThenStream(
    created: CreatedSlot,
    tables: TableInfo[],
    serverName: string,
    db: string,
  ): Promise<void> {
    try {
      await takeSnapshot({
        target: this.target,
        tables,
        serverName,
        db,
        consistentPoint: created.consistentPoint,
        snapshotName: created.snapshotName,
        releaseExporter: () => this.releaseExporter(),
        isStopping: () => this.stopping,
        ingest: (events) => this.ingestSettingAside(events),
      });
    } catch (err) {
      if (!this.stopping) {
        this.context.logger.error(
          { err: this.link.redact(errorMessage(err)) },
          'snapshot failed; restart Herald to take it again',
        );
      }
      return;
    }
    await this.stream?.run();
  }

  private async releaseExporter(): Promise<void> {
    await this.replicationClient?.end().catch(() => {});
    this.replicationClient = null;
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

  /**
   * The slot's lag: WAL written since the position Herald last confirmed. A short-lived
   * connection per sample (metrics reuse a sample for seconds), bounded by a statement timeout.
   */
  async lag(): Promise<SourceLag> {
    const client = this.link.client({
      connectionTimeoutMillis: LAG_SAMPLE_TIMEOUT_MS,
      statement_timeout: LAG_SAMPLE_TIMEOUT_MS,
    });
    try {
      await this.link.connect(client, 'a connection for the slot lag');
      const result = await client.query<{ lag: string | null }>(
        // On a standby pg_current_wal_lsn() fails; the last replayed position stands in for it there.
        `SELECT pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,
           confirmed_flush_lsn)::text AS lag
         FROM pg_replication_slots WHERE slot_name = $1`,
        [this.target.slot],
      );
      const lag = result.rows[0]?.lag;
      return lag === undefined || lag === null ? {} : { replicationSlotLagBytes: Math.max(0, Number(lag)) };
    } catch (err) {
      throw this.link.explain(err, `reading the lag of slot ${this.target.slot}`);
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** A change set aside earlier: its event as it was made (its data is the row as it was then). */
  replayDeadLetter(message: SourceMessage & { payload: Uint8Array }): CloudEvent[] {
    return [validateEvent(JSON.parse(Buffer.from(message.payload).toString('utf8')))];
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.stream?.stopService();
    await this.releaseExporter();
    await this.stream?.settled();
    await this.background?.catch(() => {});
  }
}
