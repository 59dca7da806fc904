import type { Logger } from 'pino';
import { appliedKey, type ProjectionChange, type Store, type StoredEvent } from '../engine/store.js';
import {
  type Channel,
  delivered,
  type EngineProjector,
  failed,
  type ProjectedBatch,
  type ProjectorHooks,
  retry,
} from '../engine/types.js';
import { errorMessage } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import { applyOps, type CompiledProjection, type Op, ProjectionError, planEvent } from './compile.js';

/** A replayed event is applied in one store transaction: a minute means the store is in trouble. */
const PROJECTION_REPLAY_TIMEOUT_MS = 60_000;

type Fields = Record<string, unknown>;
type Planned = { stored: StoredEvent; ops: Op[] | null; error?: string };

/** The name of the internal channel whose dead deliveries are a projection's failed events. */
export const projectionChannel = (name: string): string => `projection:${name}`;

/**
 * Keeps each projection's view from the log: reads the events after its cursor, applies a batch
 * in one store transaction together with the applied ids and the new cursor (so a crash or a
 * redelivery never applies an event twice), then publishes the alerts the batch raised.
 */
export class Projector implements EngineProjector {
  private running = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private requested = false;

  constructor(
    private readonly store: Store,
    readonly projections: CompiledProjection[],
    private readonly ingest: (events: CloudEvent[]) => Promise<unknown>,
    private readonly logger: Logger,
    private readonly hooks: ProjectorHooks = {},
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  wake(): void {
    this.requested = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }

  /** Internal channels: a DLQ replay of a projection's failed event applies it (once). */
  channels(): Map<string, Channel> {
    const out = new Map<string, Channel>();
    for (const projection of this.projections) {
      out.set(projectionChannel(projection.name), {
        concurrency: 1,
        timeoutMs: PROJECTION_REPLAY_TIMEOUT_MS,
        send: async (req) => {
          try {
            const reason = await this.applyOne(projection, req.event);
            return reason ? failed(reason) : delivered();
          } catch (err) {
            return retry(`projection ${projection.name}: ${errorMessage(err)}`);
          }
        },
      });
    }
    return out;
  }

  /** Applies up to one batch of every projection; returns how many log events were handled. */
  async step(now = Date.now()): Promise<number> {
    let handled = 0;
    for (const projection of this.projections) handled += await this.stepOne(projection, now);
    await this.flushOutbox();
    return handled;
  }

  async flushOutbox(): Promise<void> {
    for (;;) {
      const pending = await this.store.projections.outbox(500);
      if (pending.length === 0) return;
      // Alert ids are derived from the crossing, so publishing again after a crash is harmless.
      await this.ingest(pending.map((p) => p.event));
      await this.store.projections.ackOutbox(pending.map((p) => p.id));
    }
  }

  private async stepOne(projection: CompiledProjection, now: number): Promise<number> {
    const from = await this.store.projections.cursor(projection.name);
    const { events, next } = await this.store.events.readForProjection(from, projection.batchSize);
    if (events.length === 0) return 0;
    const planned: Planned[] = events.map((stored) => {
      try {
        return { stored, ops: planEvent(projection, stored.event) };
      } catch (err) {
        if (err instanceof ProjectionError) return { stored, ops: null, error: err.message };
        throw err;
      }
    });
    const relevant = planned.filter((p) => p.ops);
    let outcome: ProjectedBatch = { applied: 0, failed: 0, deadLettered: 0, alerts: 0 };
    const result = await this.store.projections.apply({
      projection: projection.name,
      keys: relevant.flatMap((p) => p.ops!.map((op) => op.key)),
      events: relevant.map((p) => ({ source: p.stored.event.source, id: p.stored.event.id })),
      cursor: { from, to: next },
      now,
      compute: (loaded, applied) => {
        const change = this.compute(projection, planned, loaded, applied);
        outcome = summarise(change, change.failures.length, planned);
        return change;
      },
    });
    if (!result.ok) {
      // Another process moved this projection on meanwhile; read again from where it is.
      this.logger.debug({ projection: projection.name, cursor: result.cursor }, 'projection cursor moved');
      return events.length;
    }
    if (outcome.failed > 0)
      this.logger.warn(
        { projection: projection.name, failures: outcome.failed },
        'projection events could not be applied; they are in the dead-letter queue',
      );
    this.hooks.onProjected?.(projection.name, outcome);
    return events.length;
  }

  private compute(
    projection: CompiledProjection,
    planned: Planned[],
    loaded: Map<string, Fields>,
    applied: Set<string>,
  ): ProjectionChange {
    const rows = new Map<string, Fields | null>(loaded);
    const changed = new Set<string>();
    const change: ProjectionChange = { rows: new Map(), applied: [], failures: [], outbox: [] };
    for (const p of planned) {
      const { event, seq } = p.stored;
      if (p.error !== undefined) {
        change.failures.push({ eventSeq: seq, reason: p.error });
        continue;
      }
      if (!p.ops || applied.has(appliedKey(event.source, event.id))) continue;
      try {
        change.outbox.push(...applyOps(projection, event, p.ops, rows));
      } catch (err) {
        if (!(err instanceof ProjectionError)) throw err;
        change.failures.push({ eventSeq: seq, reason: err.message });
        continue;
      }
      for (const op of p.ops) changed.add(op.key);
      change.applied.push({ eventSeq: seq, source: event.source, id: event.id });
    }
    for (const key of changed) change.rows.set(key, rows.get(key) ?? null);
    return change;
  }

  /** Applies one event outside the log order (a DLQ replay). Returns why it failed, or null. */
  private async applyOne(projection: CompiledProjection, event: CloudEvent): Promise<string | null> {
    let ops: Op[] | null;
    try {
      ops = planEvent(projection, event);
    } catch (err) {
      if (err instanceof ProjectionError) return err.message;
      throw err;
    }
    if (!ops) return null;
    const stored = await this.store.events.findById(event.id, event.source);
    let reason: string | null = null;
    let outcome: ProjectedBatch | null = null;
    await this.store.projections.apply({
      projection: projection.name,
      keys: ops.map((op) => op.key),
      events: [{ source: event.source, id: event.id }],
      now: Date.now(),
      compute: (loaded, applied) => {
        const planned: Planned[] = [
          { stored: stored ?? { seq: 0, event, receivedAt: 0, routedAt: null, routing: null }, ops },
        ];
        const change = this.compute(projection, planned, loaded, applied);
        // The dispatcher records the failure on the delivery itself.
        reason = change.failures[0]?.reason ?? null;
        outcome = summarise(change, 0, planned);
        change.failures = [];
        return change;
      },
    });
    if (outcome) this.hooks.onProjected?.(projection.name, outcome);
    await this.flushOutbox();
    return reason;
  }

  private async run(): Promise<void> {
    try {
      await this.flushOutbox();
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'publishing projection alerts failed; retrying later');
    }
    while (this.running) {
      this.requested = false;
      try {
        if ((await this.step()) > 0) continue;
      } catch (err) {
        this.logger.error({ err: errorMessage(err) }, 'projection failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!this.running) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 1000);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wakeUp = () => {
          this.wakeUp = null;
          done();
        };
        if (this.requested || !this.running) this.wakeUp();
      });
    }
  }
}

function summarise(change: ProjectionChange, deadLettered: number, planned: Planned[]): ProjectedBatch {
  const applied = new Set(change.applied.map((a) => a.eventSeq));
  let newestChangeAt: number | undefined;
  for (const p of planned) {
    if (!applied.has(p.stored.seq) || !p.stored.event.time) continue;
    const at = Date.parse(p.stored.event.time);
    if (Number.isFinite(at) && (newestChangeAt === undefined || at > newestChangeAt)) newestChangeAt = at;
  }
  return {
    applied: change.applied.length,
    failed: change.failures.length,
    deadLettered,
    alerts: change.outbox.length,
    newestChangeAt,
  };
}
