import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Engine, EngineHooks } from '../engine/engine.js';
import type { DeliveryStatus } from '../engine/store.js';
import type { CheckResult } from '../engine/types.js';
import { errorMessage, withTimeout } from '../errors.js';
import { parseQuery } from '../http-input.js';
import { BoundedValues } from '../observability/bounded.js';
import { eventFilterQuery } from './admin.js';
import type { Health, LiveDelivery, LiveEvent, LiveReady } from './api-types.js';
import { compileEventFilter, type EventPredicate } from './event-filter.js';
import type { ServerExtension } from './index.js';

const WINDOW_S = 60;

/** Counts per key over the last minute, in one-second buckets (constant memory per key). */
class MinuteCounter {
  private readonly buckets = new Map<string, { stamp: Float64Array; count: Float64Array; total: number }>();

  add(key: string, n = 1, now = Date.now()): void {
    let b = this.buckets.get(key);
    if (!b) {
      b = { stamp: new Float64Array(WINDOW_S), count: new Float64Array(WINDOW_S), total: 0 };
      this.buckets.set(key, b);
    }
    const sec = Math.floor(now / 1000);
    const slot = sec % WINDOW_S;
    if (b.stamp[slot] !== sec) {
      b.stamp[slot] = sec;
      b.count[slot] = 0;
    }
    b.count[slot]! += n;
    b.total += n;
  }

  lastMinute(key: string, now = Date.now()): number {
    const b = this.buckets.get(key);
    if (!b) return 0;
    const oldest = Math.floor(now / 1000) - WINDOW_S + 1;
    let sum = 0;
    for (let i = 0; i < WINDOW_S; i++) if (b.stamp[i]! >= oldest) sum += b.count[i]!;
    return sum;
  }

  total(key: string): number {
    return this.buckets.get(key)?.total ?? 0;
  }

  keys(): string[] {
    return [...this.buckets.keys()];
  }
}

interface Subscriber {
  res: ServerResponse;
  matches: EventPredicate;
  /** Seqs of events this subscriber was sent, so it only gets delivery updates for those. */
  sent: Set<number>;
}

export interface LiveFeedOptions {
  /** Interval of the SSE comment line that keeps proxies from closing an idle stream. */
  heartbeatMs?: number;
}

/** A slow client past this many unsent bytes is disconnected (it reconnects and re-reads the log). */
const MAX_BUFFERED = 1 << 20;
/** How many event seqs per subscriber are remembered for delivery updates. */
const MAX_REMEMBERED = 2000;

/**
 * The dashboard's view of what happens now: a feed of routed events and delivery outcomes for
 * `GET /api/stream` (Server-Sent Events), and last-minute throughput per source and channel for
 * `GET /api/health`. Fed by engine hooks, so it costs nothing when no one is watching.
 */
export class LiveFeed {
  private readonly subscribers = new Set<Subscriber>();
  private readonly ingested = new MinuteCounter();
  private readonly attempts = new MinuteCounter();
  private readonly lastAttempt = new Map<string, { outcome: string; error: string | null; at: number }>();
  private readonly lastEventAt = new Map<string, number>();
  /** Event sources are chosen by senders: the first 100 keep their name, the rest count as `other`. */
  private readonly sources = new BoundedValues(100);
  private readonly startedAt = Date.now();
  private readonly heartbeatMs: number;

  constructor(options: LiveFeedOptions = {}) {
    this.heartbeatMs = options.heartbeatMs ?? 15_000;
  }

  get watchers(): number {
    return this.subscribers.size;
  }

  readonly hooks: EngineHooks = {
    onIngested: (events) => {
      const now = Date.now();
      for (const { event } of events) {
        const source = this.sources.of(event.source);
        this.ingested.add(source, 1, now);
        this.lastEventAt.set(source, now);
      }
    },
    onRouted: (stored, record) => {
      if (this.subscribers.size === 0) return;
      const message: LiveEvent = {
        seq: stored.seq,
        receivedAt: stored.receivedAt,
        routedAt: Date.now(),
        event: stored.event,
        routing: record,
      };
      let payload: string | null = null;
      for (const sub of this.subscribers) {
        if (!sub.matches(stored.event)) continue;
        payload ??= frame('event', message);
        sub.sent.add(stored.seq);
        if (sub.sent.size > MAX_REMEMBERED) sub.sent.delete(sub.sent.values().next().value!);
        this.write(sub, payload);
      }
    },
    onAttempt: (delivery, outcome, result) => {
      const now = Date.now();
      this.attempts.add(`${delivery.channel}\0${result.outcome}`, 1, now);
      this.lastAttempt.set(delivery.channel, {
        outcome: result.outcome,
        error: result.outcome === 'delivered' ? null : result.reason,
        at: now,
      });
      if (this.subscribers.size === 0) return;
      const message: LiveDelivery = {
        id: delivery.id,
        eventSeq: delivery.eventSeq,
        trigger: delivery.trigger,
        channel: delivery.channel,
        status: outcome.status,
        attempts: outcome.attempt.number,
        outcome: result.outcome,
        error: outcome.error ?? null,
      };
      let payload: string | null = null;
      for (const sub of this.subscribers) {
        if (!sub.sent.has(delivery.eventSeq)) continue;
        payload ??= frame('delivery', message);
        this.write(sub, payload);
      }
    },
  };

  private write(sub: Subscriber, payload: string): void {
    if (sub.res.writableLength > MAX_BUFFERED) {
      sub.res.end();
      this.subscribers.delete(sub);
      return;
    }
    sub.res.write(payload);
  }

  readonly extension: ServerExtension = (app: FastifyInstance, engine: Engine) => {
    app.get('/api/stream', async (req, reply) => {
      const q = parseQuery(eventFilterQuery, req.query);
      const matches = compileEventFilter({
        type: q.type || undefined,
        source: q.source || undefined,
        subject: q.subject || undefined,
        sql: q.sql || undefined,
      });
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // Reverse proxies (nginx) would otherwise buffer the stream.
        'x-accel-buffering': 'no',
      });
      res.write(
        `retry: 2000\n${frame('ready', { watchers: this.subscribers.size + 1 } satisfies LiveReady)}`,
      );
      const sub: Subscriber = { res, matches, sent: new Set() };
      this.subscribers.add(sub);
      const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), this.heartbeatMs);
      heartbeat.unref();
      res.on('close', () => {
        clearInterval(heartbeat);
        this.subscribers.delete(sub);
      });
    });

    // Open streams never go idle: end them so a graceful stop does not wait for the clients.
    app.addHook('preClose', (done) => {
      for (const sub of this.subscribers) sub.res.end();
      this.subscribers.clear();
      done();
    });

    const checks = new Map<string, { at: number; result: Promise<CheckResult | null> }>();
    const sourceCheck = (name: string): Promise<CheckResult | null> => {
      const cached = checks.get(name);
      if (cached && Date.now() - cached.at < 15_000) return cached.result;
      const source = engine.sources.get(name);
      const result = source?.check
        ? withTimeout(source.check(), 2000, `source ${name}`).catch(
            (err): CheckResult => ({ ok: false, detail: errorMessage(err) }),
          )
        : Promise.resolve(null);
      checks.set(name, { at: Date.now(), result });
      return result;
    };

    app.get('/api/health', async (): Promise<Health> => {
      const now = Date.now();
      const store = engine.store;
      // With the store down, say so and leave out what only it knows, rather than fail the page.
      let storeHealth = await engine.storeHealth();
      let counts: [Record<DeliveryStatus, number>, number, number] | null = null;
      if (storeHealth.ok) {
        try {
          counts = await Promise.all([
            store.deliveries.counts(),
            store.dlq.count(),
            store.deliveries.oldestPendingAge(now),
          ]);
        } catch (err) {
          storeHealth = { ok: false, detail: errorMessage(err) };
        }
      }
      const sources = await Promise.all(
        engine.config.sources.map(async (s) => {
          const check = await sourceCheck(s.name);
          return {
            name: s.name,
            kind: s.kind.kind,
            status: engine.status !== 'running' ? engine.status : check && !check.ok ? 'failing' : 'running',
            detail: check?.detail ?? null,
          };
        }),
      );
      const channels = engine.config.channels.map((c): Health['channels'][number] => {
        const last = this.lastAttempt.get(c.name) ?? null;
        const perMinute = {
          delivered: this.attempts.lastMinute(`${c.name}\0delivered`, now),
          retry: this.attempts.lastMinute(`${c.name}\0retry`, now),
          failed: this.attempts.lastMinute(`${c.name}\0failed`, now),
        };
        return {
          name: c.name,
          kind: c.kind.kind,
          fallback: c.fallbackReason ?? null,
          status: !last ? 'idle' : last.outcome === 'delivered' ? 'ok' : 'failing',
          lastMinute: perMinute,
          total: {
            delivered: this.attempts.total(`${c.name}\0delivered`),
            retry: this.attempts.total(`${c.name}\0retry`),
            failed: this.attempts.total(`${c.name}\0failed`),
          },
          lastAttempt: last,
        };
      });
      const eventSources = this.ingested
        .keys()
        .map((source) => ({
          source,
          lastMinute: this.ingested.lastMinute(source, now),
          total: this.ingested.total(source),
          lastEventAt: this.lastEventAt.get(source) ?? null,
        }))
        .sort((a, b) => b.lastMinute - a.lastMinute || b.total - a.total)
        .slice(0, 50);
      return {
        state: engine.status,
        store: { kind: store.kind, ...storeHealth },
        bus: { kind: engine.bus.kind, ...engine.bus.health() },
        uptimeMs: now - this.startedAt,
        ingestBacklog: engine.ingestBacklog,
        inFlight: engine.inFlight,
        watchers: this.subscribers.size,
        deliveries: counts?.[0] ?? null,
        deadLetters: counts?.[1] ?? null,
        lagMs: counts?.[2] ?? null,
        eventsLastMinute: eventSources.reduce((n, s) => n + s.lastMinute, 0),
        sources,
        channels,
        eventSources,
      };
    });
  };
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
