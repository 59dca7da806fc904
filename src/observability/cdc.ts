import { Counter, Gauge, type Registry } from 'prom-client';
import type { Engine, EngineHooks } from '../engine/engine.js';
import { errorMessage, withTimeout } from '../errors.js';
import { BoundedValues } from './bounded.js';

/** Scrape-time samples that cost a query are reused for this long, however often Prometheus asks. */
const SAMPLE_REUSE_MS = 10_000;
/** A sample that takes longer is skipped for this scrape rather than holding it up. */
const SAMPLE_TIMEOUT_MS = 3_000;

/** The result of `load` at most once per `reuseMs`; concurrent callers share one load. */
function sampled<T>(load: () => Promise<T>, reuseMs = SAMPLE_REUSE_MS): () => Promise<T> {
  let last: { at: number; value: Promise<T> } | null = null;
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= reuseMs) {
      const value = load();
      last = { at: now, value };
      // A failed sample is not kept: the next scrape tries again.
      value.catch(() => {
        if (last?.value === value) last = null;
      });
    }
    return last.value;
  };
}

/**
 * Metrics of the materialized views and of change-data-capture (what an inventory service built
 * on Debezium is watched by): per projection, events applied and failed, dead letters, alerts and
 * lag; per CDC source, how far behind the database its changes arrive and its replication slot.
 */
export class CdcMetrics {
  /** CloudEvent `source`s of changes are chosen by whoever posts to /debezium: bounded. */
  private readonly changeSources = new BoundedValues(50);

  readonly projectionApplied: Counter<'projection'>;
  readonly projectionFailed: Counter<'projection'>;
  readonly projectionDeadLetters: Counter<'projection'>;
  readonly projectionAlerts: Counter<'projection'>;
  readonly projectionLagSeconds: Gauge<'projection'>;
  readonly changeLagSeconds: Gauge<'source'>;
  readonly changeLsn: Gauge<'source'>;

  constructor(
    registry: Registry,
    private readonly engine: () => Engine | null,
    /** The configured projections (their names are the config's: a bounded set). */
    private readonly projections: readonly string[],
    private readonly onSampleError: (what: string, err: string) => void = () => {},
  ) {
    const registers = [registry];
    this.projectionApplied = new Counter({
      name: 'herald_projection_events_applied_total',
      help: 'Log events applied to a view, by projection (stream and replays).',
      labelNames: ['projection'],
      registers,
    });
    this.projectionFailed = new Counter({
      name: 'herald_projection_events_failed_total',
      help: 'Events a projection could not apply, by projection (in the stream, or again on a replay).',
      labelNames: ['projection'],
      registers,
    });
    this.projectionDeadLetters = new Counter({
      name: 'herald_projection_dead_letters_total',
      help: 'Dead letters a projection wrote (its failed stream events, in the DLQ as channel projection:<name>).',
      labelNames: ['projection'],
      registers,
    });
    this.projectionAlerts = new Counter({
      name: 'herald_projection_alerts_total',
      help: 'Threshold alerts a projection raised, by projection.',
      labelNames: ['projection'],
      registers,
    });
    this.projectionLagSeconds = new Gauge({
      name: 'herald_projection_lag_seconds',
      help: 'At the last applied batch: now − the newest applied event’s time (a change’s commit time in its database), by projection.',
      labelNames: ['projection'],
      registers,
    });
    const metrics = this;
    const logPosition = sampled(() => this.logPositions());
    new Gauge({
      name: 'herald_projection_lag_events',
      help: 'Log sequence numbers between the newest event in the log and a projection’s cursor, by projection (sampled at scrape, reused for 10 s).',
      labelNames: ['projection'] as const,
      registers,
      async collect() {
        const positions = await logPosition().catch((err) => {
          metrics.onSampleError('projection cursors', errorMessage(err));
          return null;
        });
        this.reset();
        if (!positions) return;
        for (const [projection, cursor] of positions.cursors)
          this.set({ projection }, Math.max(0, positions.head - cursor));
      },
    });
    this.changeLagSeconds = new Gauge({
      name: 'herald_cdc_lag_seconds',
      help: 'For the newest change stored: when Herald stored it − its commit time in the database (source.ts_ms), by CloudEvent source.',
      labelNames: ['source'],
      registers,
    });
    this.changeLsn = new Gauge({
      name: 'herald_cdc_lsn',
      help: 'Source position (source.lsn, e.g. the PostgreSQL WAL LSN as a number) of the newest change stored, by CloudEvent source.',
      labelNames: ['source'],
      registers,
    });
    const slotLag = sampled(() => this.slotLags());
    new Gauge({
      name: 'herald_replication_slot_lag_bytes',
      help: 'WAL a source’s replication slot holds that Herald has not confirmed (pg_current_wal_lsn − confirmed_flush_lsn), by configured source (sampled at scrape, reused for 10 s).',
      labelNames: ['source'] as const,
      registers,
      async collect() {
        const lags = await slotLag();
        this.reset();
        for (const [source, bytes] of lags) this.set({ source }, bytes);
      },
    });
  }

  readonly hooks: EngineHooks = {
    onIngested: (events) => {
      const now = Date.now();
      for (const { event } of events) {
        if (typeof event.iodebeziumtsms !== 'string' && typeof event.iodebeziumlsn !== 'string') continue;
        const source = this.changeSources.of(event.source);
        const committedAt = Number(event.iodebeziumtsms);
        if (committedAt > 0) this.changeLagSeconds.set({ source }, Math.max(0, now - committedAt) / 1000);
        const lsn = Number(event.iodebeziumlsn);
        if (event.iodebeziumlsn !== undefined && Number.isFinite(lsn)) this.changeLsn.set({ source }, lsn);
      }
    },
    onProjected: (projection, batch) => {
      if (batch.applied > 0) this.projectionApplied.inc({ projection }, batch.applied);
      if (batch.failed > 0) this.projectionFailed.inc({ projection }, batch.failed);
      if (batch.deadLettered > 0) this.projectionDeadLetters.inc({ projection }, batch.deadLettered);
      if (batch.alerts > 0) this.projectionAlerts.inc({ projection }, batch.alerts);
      if (batch.newestChangeAt !== undefined)
        this.projectionLagSeconds.set({ projection }, Math.max(0, Date.now() - batch.newestChangeAt) / 1000);
    },
  };

  private async logPositions(): Promise<{ head: number; cursors: [string, number][] } | null> {
    const engine = this.engine();
    const projections = engine?.projector ? this.projections : [];
    if (!engine || projections.length === 0) return null;
    return withTimeout(
      (async () => {
        const [newest] = await engine.store.events.list({ limit: 1 });
        const cursors = await Promise.all(
          projections.map(
            async (name) => [name, await engine.store.projections.cursor(name)] as [string, number],
          ),
        );
        return { head: newest?.seq ?? 0, cursors };
      })(),
      SAMPLE_TIMEOUT_MS,
      'reading the projection cursors',
    );
  }

  private async slotLags(): Promise<[string, number][]> {
    const engine = this.engine();
    if (!engine) return [];
    const out: [string, number][] = [];
    await Promise.all(
      [...engine.sources].map(async ([name, source]) => {
        if (!source.lag) return;
        try {
          const lag = await withTimeout(
            source.lag(),
            SAMPLE_TIMEOUT_MS,
            `sampling the lag of source ${name}`,
          );
          if (lag.replicationSlotLagBytes !== undefined) out.push([name, lag.replicationSlotLagBytes]);
        } catch (err) {
          this.onSampleError(`source ${name}`, errorMessage(err));
        }
      }),
    );
    return out;
  }
}
