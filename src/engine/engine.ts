import type { Logger } from 'pino';
import { errorMessage, HeraldError, withTimeout } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import type { Bus } from './bus.js';
import { Dispatcher, type DispatcherHooks } from './dispatcher.js';
import { explainEvent } from './explain.js';
import type { EventExplanation } from './explain-types.js';
import { IngestBatcher, type RoutedAtIngest } from './ingest.js';
import type { EngineModel } from './model.js';
import { type DeadLetterReplayResult, replayDeadDelivery } from './replay.js';
import { Router, type RouterHooks, type SubscriberDirectory } from './router.js';
import { SourceDeadLetters } from './source-dead-letters.js';
import type { Delivery, PlannedRouting, Store, StoredEvent } from './store.js';
import type {
  Channel,
  ChannelContext,
  EngineProjector,
  HttpRoute,
  IngestResult,
  ProjectorHooks,
  Source,
} from './types.js';

export interface EngineHooks extends RouterHooks, DispatcherHooks, ProjectorHooks {
  onIngested?(events: { event: CloudEvent; seq: number }[]): void;
  /** A stream source set a message aside in the source dead-letter table. */
  onSourceDeadLetter?(source: string): void;
}

export interface EngineOptions {
  config: EngineModel;
  store: Store;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  hooks?: EngineHooks;
  subscribers?: SubscriberDirectory;
  /** Where HTTP-based sources add their routes (the server). */
  http?: { addRoute(route: HttpRoute): void };
  /** Carries stored events to the routers (src/bus). */
  bus: Bus;
  /**
   * Builds the views' projector (src/projections) around the engine's internal ingest; absent
   * when the config has no projections.
   */
  projector?: (ingest: (events: CloudEvent[]) => Promise<IngestResult[]>) => EngineProjector;
  /** Run only some stages (scale-out roles). Default: all. */
  roles?: { ingest: boolean; router: boolean; dispatcher: boolean };
}

export type EngineState = 'created' | 'running' | 'stopping' | 'stopped';

/** What /readyz and /api/health say about the store. */
export interface StoreHealth {
  ok: boolean;
  /** Why the store is failing (null when it answers). */
  detail: string | null;
}

const STORE_CHECK_MS = 1000;
const STORE_PING_TIMEOUT_MS = 3000;

/**
 * The pipeline in one process: ingest (group commit into the log) → router (triggers →
 * deliveries) → dispatcher (channels, retries, DLQ). Everything between stages is in the store,
 * so a restart resumes where the last process stopped.
 */
export class Engine {
  readonly store: Store;
  readonly config: EngineModel;
  readonly channels = new Map<string, Channel>();
  /** The projections' channels: no recipients, no messages; a replay applies the event again. */
  private readonly internalChannels: ReadonlySet<string>;
  readonly sources = new Map<string, Source>();
  private readonly logger: Logger;
  private readonly batcher: IngestBatcher;
  private readonly router: Router;
  private readonly dispatcher: Dispatcher;
  /** Present when the config has projections; runs with the router role. */
  readonly projector: EngineProjector | null;
  private readonly hooks: EngineHooks;
  private readonly sourceDeadLetters: SourceDeadLetters;
  private readonly roles: NonNullable<EngineOptions['roles']>;
  readonly bus: Bus;
  private state: EngineState = 'created';
  private storeCheck: { at: number; result: Promise<StoreHealth> } | null = null;

  constructor(readonly options: EngineOptions) {
    this.store = options.store;
    this.config = options.config;
    this.logger = options.logger;
    this.hooks = options.hooks ?? {};
    this.roles = options.roles ?? { ingest: true, router: true, dispatcher: true };
    const env = options.env ?? process.env;
    this.bus = options.bus;
    this.batcher = new IngestBatcher(
      this.store.events,
      (durable, receivedAt, routed) => {
        // With a shared bus, whichever process routes an event remembers it (see route()). One
        // routed here is kept only for its deliveries left to a claim (routedAtIngest).
        if (this.bus.kind === 'embedded' && !routed)
          for (const { event, append } of durable) this.dispatcher.rememberEvent(append.seq, event);
        this.hooks.onIngested?.(durable.map((d) => ({ event: d.event, seq: d.append.seq })));
        if (routed) this.routedAtIngest(durable, receivedAt, routed);
        else {
          this.bus.publish(
            durable.map(({ event, append }) => ({
              seq: append.seq,
              event,
              receivedAt,
              routedAt: null,
              routing: null,
            })),
          );
        }
        this.projector?.wake();
      },
      this.logger,
      undefined,
      (events) => (this.routesAtIngest() ? this.router.planBeforeAppend(events) : null),
    );
    const channelContext = (name: string): ChannelContext => ({
      logger: this.logger.child({ channel: name }),
      kv: this.store.kv,
      inbox: this.store.inbox,
      emit: async (events) => {
        await this.ingest(events, { internal: true });
      },
      env,
    });
    for (const plugin of this.config.channels) {
      this.channels.set(
        plugin.name,
        plugin.kind.create(plugin.name, plugin.config, channelContext(plugin.name)),
      );
    }
    this.projector = options.projector?.((events) => this.ingest(events, { internal: true })) ?? null;
    // Each projection's failed events are dead deliveries of an internal channel: the DLQ lists
    // them and a replay applies them through that channel.
    const projectionChannels = this.projector?.channels() ?? new Map<string, Channel>();
    this.internalChannels = new Set(projectionChannels.keys());
    this.router = new Router(this.store, this.config.triggers, this.logger, this.hooks, options.subscribers);
    this.dispatcher = new Dispatcher(
      this.store,
      new Map([...this.channels, ...projectionChannels]),
      [
        ...this.config.triggers,
        ...[...projectionChannels.keys()].map((name) => ({
          name,
          matcher: () => false,
          actions: [{ index: 0, channel: name, to: { kind: 'none' as const }, params: null }],
          policy: { maxAttempts: 3, backoff: DEFAULT_BACKOFF },
        })),
      ],
      {
        leaseMs: this.config.dispatcher.leaseMs,
        pollIntervalMs: this.config.dispatcher.pollIntervalMs,
        rateLimits: new Map(
          this.config.channels.flatMap((c) => (c.rateLimit ? [[c.name, c.rateLimit]] : [])),
        ),
        emit: async (events) => {
          await this.ingest(events, { internal: true });
        },
      },
      this.logger,
      this.hooks,
    );
    this.sourceDeadLetters = new SourceDeadLetters(this.store, this.logger, (source) =>
      this.hooks.onSourceDeadLetter?.(source),
    );
    for (const plugin of this.config.sources) {
      const source = plugin.kind.create(plugin.name, plugin.config, {
        logger: this.logger.child({ source: plugin.name }),
        ingest: (events) => this.ingest(events),
        deadLetter: (message, reason) => this.sourceDeadLetters.record(plugin.name, message, reason),
        http: options.http,
        kv: this.store.kv,
        env,
      });
      this.sources.set(plugin.name, source);
    }
  }

  get status(): EngineState {
    return this.state;
  }

  /** Appends events to the log; resolves when they are durable. Rejects with 503-coded errors. */
  ingest(events: CloudEvent[], options: { internal?: boolean } = {}): Promise<IngestResult[]> {
    if (this.state !== 'running' && !(options.internal && this.state === 'stopping')) {
      return Promise.reject(new HeraldError('SHUTTING_DOWN', 'Herald is not accepting events right now'));
    }
    return this.batcher.ingest(events);
  }

  async start(): Promise<void> {
    if (this.state !== 'created') throw new HeraldError('INTERNAL', `engine already ${this.state}`);
    await this.store.migrate();
    try {
      await this.bus.start();
    } catch (err) {
      await this.store.close().catch(() => undefined);
      throw err;
    }
    if (this.roles.dispatcher && this.store.kind === 'sqlite') {
      // One process owns an embedded store: nothing can be in flight from before.
      const released = await this.store.deliveries.releaseAllLeases();
      if (released > 0)
        this.logger.info({ released }, 'resuming deliveries that were in flight at the last stop');
    }
    this.state = 'running';
    if (this.roles.router) this.bus.consume((batch) => this.route(batch));
    if (this.roles.router) this.projector?.start();
    if (this.roles.dispatcher) {
      this.bus.onAnnounce((channel) => this.dispatcher.wake(channel));
      this.dispatcher.start();
    }
    if (this.roles.ingest) {
      for (const [name, source] of this.sources) {
        await source.start().catch(async (err) => {
          // Nothing may keep running (router, dispatcher, store) behind a failed start.
          await this.stop(0).catch(() => {});
          throw new HeraldError('SOURCE_ERROR', `source ${name} failed to start: ${errorMessage(err)}`, {
            cause: err,
          });
        });
      }
    }
  }

  /** Graceful stop: intake first, then routing, then in-flight sends up to the deadline. */
  async stop(deadlineMs = this.config.server.shutdownTimeoutMs): Promise<void> {
    if (this.state !== 'running') return;
    this.state = 'stopping';
    for (const [name, source] of this.sources) {
      await source
        .stop()
        .catch((err) => this.logger.warn({ source: name, err: errorMessage(err) }, 'source stop failed'));
    }
    // Before intake closes, so the alerts of its last batch still reach the log.
    await this.projector?.stop();
    await this.batcher.close();
    await this.bus.stopConsuming();
    await this.dispatcher.stop(deadlineMs);
    this.state = 'stopped';
    await this.bus.close().catch((err) => this.logger.warn({ err: errorMessage(err) }, 'bus close failed'));
    await this.store.close();
  }

  /**
   * Replays a message from the source dead-letter table: its source maps it again with the
   * current config and its events are ingested; then it leaves the table.
   */
  replaySourceDeadLetter(id: number): Promise<{ replayed: number; events: IngestResult[] }> {
    return this.sourceDeadLetters.replay(id, this.sources, (events) => this.ingest(events));
  }

  /**
   * Why an event did or did not notify, under the current config: every trigger, whom each
   * matching action plans to notify, and what became of each delivery (see explain.ts).
   */
  explain(stored: StoredEvent, options: { recipient?: string } = {}): Promise<EventExplanation> {
    return explainEvent(
      {
        store: this.store,
        triggers: this.config.triggers,
        router: this.router,
        subscribers: this.options.subscribers,
      },
      stored,
      options,
    );
  }

  /**
   * Replays a dead delivery, planned again from the current config unless `asRecorded` (see
   * replay.ts), and wakes the channels that now have it due.
   */
  async replayDeadLetter(
    delivery: Delivery,
    options: { asRecorded?: boolean },
  ): Promise<DeadLetterReplayResult> {
    const result = await replayDeadDelivery(
      {
        store: this.store,
        triggers: this.config.triggers,
        router: this.router,
        internalChannels: this.internalChannels,
      },
      delivery,
      options,
      Date.now(),
    );
    this.wakeDispatcher(result.to?.[0]?.channel ?? delivery.channel);
    return result;
  }

  /** New deliveries may be due (e.g. after a DLQ replay). */
  wakeDispatcher(channel?: string): void {
    if (channel) this.dispatcher.wake(channel);
    else this.dispatcher.wakeAll();
  }

  /**
   * Whether the store answers, from a ping at most a second old: /readyz and /api/health may be
   * polled often by several watchers, and they share one query. Bounded by a timeout, because a
   * connection attempt to an unreachable host can hang far longer than a probe may.
   */
  storeHealth(): Promise<StoreHealth> {
    const cached = this.storeCheck;
    if (cached && Date.now() - cached.at < STORE_CHECK_MS) return cached.result;
    const result = withTimeout(this.store.ping(), STORE_PING_TIMEOUT_MS, 'the store').then(
      (): StoreHealth => ({ ok: true, detail: null }),
      (err): StoreHealth => ({ ok: false, detail: errorMessage(err) }),
    );
    this.storeCheck = { at: Date.now(), result };
    return result;
  }

  get inFlight(): number {
    return this.dispatcher.inFlightCount;
  }

  get ingestBacklog(): number {
    return this.batcher.backlog;
  }

  /**
   * Whether this process may plan events before appending them and store them routed: it routes,
   * the log is this process's (embedded bus) and can do it, and no older event waits to be routed
   * (they go first, to keep the order of deliveries).
   */
  private routesAtIngest(): boolean {
    return this.roles.router && this.bus.caughtUp === true && this.store.events.appendRouted !== undefined;
  }

  private routedAtIngest(
    durable: { event: CloudEvent; append: { seq: number }; routing?: PlannedRouting }[],
    receivedAt: number,
    routed: RoutedAtIngest,
  ): void {
    const channels = new Set<string>();
    /** Channels with a delivery the store did not hand back (notification keys decide it there). */
    const toClaim = new Set<string>();
    const events = new Map<number, CloudEvent>();
    for (const { event, append, routing } of durable) {
      if (!routing) continue;
      if (routing.deliveries.length > 0) events.set(append.seq, event);
      let gated = false;
      for (const d of routing.deliveries) {
        channels.add(d.channel);
        if (d.gates) {
          toClaim.add(d.channel);
          gated = true;
        }
      }
      // Its deliveries with notification keys are always claimed: their event is kept for them.
      // handOff keeps the events of the rest that no pump took. An event routed to no delivery
      // has nothing to send and is not kept.
      if (gated && this.bus.kind === 'embedded') this.dispatcher.rememberEvent(append.seq, event);
      this.hooks.onRouted?.(
        { seq: append.seq, event, receivedAt, routedAt: routed.at, routing: routing.record },
        routing.record,
      );
    }
    const handedOff = this.dispatcher.handOff(routed.claimable, events);
    for (const channel of channels)
      if (toClaim.has(channel) || !handedOff.has(channel)) this.dispatcher.wake(channel);
    if (routed.deliveries > 0) this.bus.announce(channels);
  }

  /** Plans a batch, commits it, then wakes the dispatchers of this and every other process. */
  private async route(batch: StoredEvent[]): Promise<void> {
    const planned = await this.router.routeEvents(batch);
    // Events routed here but ingested elsewhere: spare each delivery a read of its event.
    if (this.bus.kind !== 'embedded') for (const e of batch) this.dispatcher.rememberEvent(e.seq, e.event);
    for (const channel of planned.channels) this.dispatcher.wake(channel);
    if (planned.deliveries > 0) this.bus.announce(planned.channels);
  }
}
