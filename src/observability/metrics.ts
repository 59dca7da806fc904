import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Engine, EngineHooks } from '../engine/engine.js';
import { BoundedPairs } from './bounded.js';
import { CdcMetrics } from './cdc.js';
import { OneLabelHistogram } from './histogram.js';
import { Tally } from './tally.js';

export interface HeraldMetricsOptions {
  /** Names of the configured projections, whose lag is sampled at scrape. */
  projections?: readonly string[];
  /** A scrape-time sample failed (it is left out of that scrape). */
  onSampleError?(what: string, error: string): void;
}

/**
 * Prometheus metrics. Counters move on engine hooks (the busiest through a Tally: a map lookup
 * and an addition per count, summed into the counter when scraped), and the per-attempt
 * histograms likewise count without building a key (OneLabelHistogram); gauges that need the
 * store (queue depth, DLQ size, oldest pending) are read at scrape time.
 */
export class HeraldMetrics {
  readonly registry = new Registry();
  private engine: Engine | null = null;
  /** Sources and types come from event senders: their label values are bounded. */
  private readonly sourceTypes = new BoundedPairs();
  // Counted here per event and handed to their counters when collected (see Tally).
  private readonly ingestedCounts = new Tally(['source', 'type']);
  private readonly countIngested = (source: string, type: string) => this.ingestedCounts.add(source, type);
  private readonly matchCounts = new Tally(['trigger']);
  private readonly attemptCounts = new Tally(['channel', 'outcome']);
  private readonly finishedCounts = new Tally(['channel', 'status']);
  private plannedCount = 0;

  readonly eventsIngested: Counter<'source' | 'type'> = new Counter({
    name: 'herald_events_ingested_total',
    help: 'Events stored in the log, by source and type (the first 100 of each, 200 pairs; later ones are "other").',
    labelNames: ['source', 'type'] as const,
    registers: [this.registry],
    collect: (): void => this.ingestedCounts.flushInto(this.eventsIngested),
  });
  readonly routingMatches: Counter<'trigger'> = new Counter({
    name: 'herald_routing_matches_total',
    help: 'Trigger matches, by trigger.',
    labelNames: ['trigger'] as const,
    registers: [this.registry],
    collect: (): void => this.matchCounts.flushInto(this.routingMatches),
  });
  readonly filterErrors = new Counter({
    name: 'herald_filter_errors_total',
    help: 'Filter evaluation errors (the event did not match), by trigger and error kind.',
    labelNames: ['trigger', 'kind'] as const,
    registers: [this.registry],
  });
  readonly sourceDeadLetters = new Counter({
    name: 'herald_source_dead_letters_total',
    help: 'Messages a stream source set aside in the source dead-letter table (mapping, validation or a refused event), by source.',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly busDeadLetters = new Counter({
    name: 'herald_bus_dead_letters_total',
    help: 'Messages the JetStream bus terminated because no router could handle them (unreadable, or routing failed again and again while the store answered).',
    registers: [this.registry],
  });
  readonly deliveriesPlanned = new Counter({
    name: 'herald_deliveries_planned_total',
    help: 'Deliveries planned by the router.',
    registers: [this.registry],
    collect: (): void => {
      if (this.plannedCount === 0) return;
      this.deliveriesPlanned.inc(this.plannedCount);
      this.plannedCount = 0;
    },
  });
  readonly attempts: Counter<'channel' | 'outcome'> = new Counter({
    name: 'herald_delivery_attempts_total',
    help: 'Delivery attempts, by channel and outcome (delivered, retry, failed).',
    labelNames: ['channel', 'outcome'] as const,
    registers: [this.registry],
    collect: (): void => this.attemptCounts.flushInto(this.attempts),
  });
  readonly deliveriesFinished: Counter<'channel' | 'status'> = new Counter({
    name: 'herald_deliveries_total',
    help: 'Deliveries that reached a final state, by channel and status (delivered, dead).',
    labelNames: ['channel', 'status'] as const,
    registers: [this.registry],
    collect: (): void => this.finishedCounts.flushInto(this.deliveriesFinished),
  });
  // Observed per attempt, without prom-client's label hashing (see OneLabelHistogram).
  readonly attemptDuration = new OneLabelHistogram({
    name: 'herald_delivery_attempt_duration_seconds',
    help: 'Time a channel took for one attempt.',
    labelName: 'channel',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registry: this.registry,
  });
  readonly deliveryLatency = new OneLabelHistogram({
    name: 'herald_delivery_latency_seconds',
    help: 'From the event entering Herald to its successful delivery.',
    labelName: 'channel',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registry: this.registry,
  });

  /** Views and change-data-capture: see cdc.ts. */
  readonly cdc: CdcMetrics;

  constructor(options: HeraldMetricsOptions = {}) {
    collectDefaultMetrics({ register: this.registry, prefix: 'herald_' });
    this.cdc = new CdcMetrics(
      this.registry,
      () => this.engine,
      options.projections ?? [],
      options.onSampleError,
    );
    const metrics = this;
    new Gauge({
      name: 'herald_queue_depth',
      help: 'Deliveries waiting (pending, including scheduled retries).',
      registers: [this.registry],
      async collect() {
        if (metrics.engine) this.set((await metrics.engine.store.deliveries.counts()).pending);
      },
    });
    new Gauge({
      name: 'herald_dlq_size',
      help: 'Deliveries in the dead-letter queue.',
      registers: [this.registry],
      async collect() {
        if (metrics.engine) this.set(await metrics.engine.store.dlq.count());
      },
    });
    new Gauge({
      name: 'herald_oldest_pending_age_seconds',
      help: 'Age of the oldest pending delivery.',
      registers: [this.registry],
      async collect() {
        if (metrics.engine)
          this.set((await metrics.engine.store.deliveries.oldestPendingAge(Date.now())) / 1000);
      },
    });
    new Gauge({
      name: 'herald_deliveries_in_flight',
      help: 'Sends running right now in this process.',
      registers: [this.registry],
      collect() {
        if (metrics.engine) this.set(metrics.engine.inFlight);
      },
    });
  }

  readonly hooks: EngineHooks = {
    onIngested: (events) => {
      for (const { event } of events) this.sourceTypes.count(event.source, event.type, this.countIngested);
      this.cdc.hooks.onIngested?.(events);
    },
    onProjected: (projection, batch) => this.cdc.hooks.onProjected?.(projection, batch),
    onRouted: (_event, record) => {
      for (const trigger of record.matched) this.matchCounts.add(trigger);
      this.plannedCount += record.deliveries;
    },
    onFilterError: (trigger, error) => this.filterErrors.inc({ trigger, kind: error.kind }),
    onSourceDeadLetter: (source) => this.sourceDeadLetters.inc({ source }),
    onAttempt: (delivery, outcome, result, durationMs) => {
      this.attemptCounts.add(delivery.channel, result.outcome);
      this.attemptDuration.observe(delivery.channel, durationMs / 1000);
      if (outcome.status !== 'pending') this.finishedCounts.add(delivery.channel, outcome.status);
      if (outcome.status === 'delivered') {
        this.deliveryLatency.observe(delivery.channel, (Date.now() - delivery.createdAt) / 1000);
      }
    },
  };

  /**
   * `GET /metrics` in Prometheus text format: behind the admin token unless `server.publicMetrics`.
   * A server extension, typed here so this folder needs nothing from src/server.
   */
  readonly extension = (app: FastifyInstance, engine: Engine): void => {
    this.engine = engine;
    app.get('/metrics', { config: { access: 'metrics' } }, async (_req, reply) => {
      reply.header('content-type', this.registry.contentType);
      return this.registry.metrics();
    });
  };
}

/** Combines several hook sets into one (metrics, the live feed, tracing…). */
export function combineHooks(...sets: EngineHooks[]): EngineHooks {
  const pick = <K extends keyof EngineHooks>(key: K) =>
    sets.map((s) => s[key]).filter(Boolean) as NonNullable<EngineHooks[K]>[];
  const ingested = pick('onIngested');
  const routed = pick('onRouted');
  const filterErrors = pick('onFilterError');
  const attempts = pick('onAttempt');
  const sourceDeadLetters = pick('onSourceDeadLetter');
  const projected = pick('onProjected');
  return {
    onIngested: (e) => {
      for (const f of ingested) f(e);
    },
    onRouted: (e, r) => {
      for (const f of routed) f(e, r);
    },
    onFilterError: (t, e) => {
      for (const f of filterErrors) f(t, e);
    },
    onAttempt: (d, o, r, ms, e) => {
      for (const f of attempts) f(d, o, r, ms, e);
    },
    onSourceDeadLetter: (source) => {
      for (const f of sourceDeadLetters) f(source);
    },
    onProjected: (projection, batch) => {
      for (const f of projected) f(projection, batch);
    },
  };
}
