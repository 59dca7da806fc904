import { HeraldError } from '../../errors.js';
import { changeCloudEvent, type DebeziumEnvelope, keySubject, type Row } from '../../events/debezium.js';
import type { CloudEvent } from '../../events/types.js';
import {
  KV_NAMESPACE,
  lsnNumber,
  qualified,
  type SetupTarget,
  type SnapshotState,
  type TableInfo,
} from './setup.js';
import { type Converter, converterFor } from './values.js';

/** Ingest calls of a snapshot that may be in flight at once: reading the next batch overlaps storing this one. */
const SNAPSHOT_IN_FLIGHT = 4;

export interface SnapshotJob {
  target: SetupTarget;
  tables: TableInfo[];
  /** Debezium's logical server name and the database, as the envelope's `source` names them. */
  serverName: string;
  db: string;
  /** Where the slot starts: every row read here is as of this position. */
  consistentPoint: string;
  snapshotName: string;
  /** Ends the connection that exported the snapshot; it may go once the snapshot is imported. */
  releaseExporter(): Promise<void>;
  isStopping(): boolean;
  /** Resolves once the events are durable (or set aside); throws on an outage. */
  ingest(events: CloudEvent[]): Promise<void>;
}

/**
 * Reads every followed table as of the slot's consistent point (the exported snapshot) as
 * Debezium `r` events, then records the snapshot as done so a restart streams from the slot.
 */
export async function takeSnapshot(job: SnapshotJob): Promise<void> {
  const { target, consistentPoint, snapshotName } = job;
  const { link, context } = target;
  const reader = link.client();
  const started = Date.now();
  let rows = 0;
  try {
    await link.connect(reader, 'a snapshot connection');
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await reader.query(`SET TRANSACTION SNAPSHOT '${snapshotName.replaceAll("'", "''")}'`);
    // The snapshot is imported; the exporting connection may go.
    await job.releaseExporter();
    const lsn = lsnNumber(consistentPoint);
    const inFlight: Promise<unknown>[] = [];
    for (const table of job.tables) {
      if (table.key.length === 0) continue;
      await reader.query(`DECLARE herald_snapshot NO SCROLL CURSOR FOR SELECT * FROM ${qualified(table)}`);
      let converters: Converter[] | null = null;
      for (;;) {
        if (job.isStopping()) throw new HeraldError('SHUTTING_DOWN', 'stopped during the snapshot');
        const batch = await reader.query(`FETCH ${target.config.snapshotBatch} FROM herald_snapshot`);
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
              name: job.serverName,
              ts_ms: started,
              snapshot: true,
              db: job.db,
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
        const ingested = job.ingest(events);
        // Awaited below in order; the no-op handler keeps a later one's rejection from going unhandled meanwhile.
        ingested.catch(() => {});
        inFlight.push(ingested);
        if (inFlight.length >= SNAPSHOT_IN_FLIGHT) await inFlight.shift();
      }
      await reader.query('CLOSE herald_snapshot');
    }
    await Promise.all(inFlight);
    await reader.query('COMMIT');
  } finally {
    await reader.end().catch(() => {});
    await job.releaseExporter();
  }
  await context.kv.set(KV_NAMESPACE, target.name, {
    slot: target.slot,
    snapshotDone: true,
    consistentPoint,
  } satisfies SnapshotState);
  context.logger.info(
    { rows, ms: Date.now() - started, slot: target.slot },
    `snapshot of ${rows} rows done; streaming`,
  );
}
