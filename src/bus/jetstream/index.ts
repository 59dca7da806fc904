import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Bus, BusHealth, RouteHandler } from '../../engine/bus.js';
import type { Store, StoredEvent } from '../../engine/store.js';
import { errorMessage, HeraldError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import type { JetStreamBusConfig } from '../config.js';
import { RouterConsumer } from './consumer.js';
import { BusDeadLetters } from './dead-letters.js';
import { EventPublisher } from './publisher.js';
import { RecoverySweep } from './recovery.js';
import { ensureConsumer, ensureStream } from './stream.js';

export { decodeMessage, messageId } from './wire.js';

export interface JetStreamBusOptions {
  config: JetStreamBusConfig;
  store: Store;
  logger: Logger;
  /** A message no router can handle was terminated (a metric counts them). */
  onDeadLetter?: () => void;
}

/**
 * Events on a JetStream stream, routed through one durable pull consumer that every router
 * process shares: JetStream hands each event to one router, which acks only after its plan is
 * committed to the store. A router that dies leaves its events unacked; after `ackWaitMs` they go
 * to another router, which plans them again — delivery idempotency keys make that harmless.
 * See src/bus/README.md for why the store stays the event of record.
 *
 * The parts: stream.ts sets the stream and consumer up, publisher.ts publishes, consumer.ts
 * routes what is pulled, dead-letters.ts sets aside what cannot be routed and recovery.ts
 * publishes again what was stored but never routed. The wire format is in wire.ts.
 */
export class JetStreamBus implements Bus {
  readonly kind = 'jetstream';
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private jsm: JetStreamManager | null = null;
  private state: 'connecting' | 'connected' | 'reconnecting' | 'closed' = 'connecting';
  private lastError: string | null = null;
  private readonly publisher: EventPublisher;
  private readonly deadLetters: BusDeadLetters;
  private readonly recovery: RecoverySweep;
  private consumer: RouterConsumer | null = null;
  private readonly listeners: ((channel: string) => void)[] = [];
  private readonly where: string;
  private readonly wakeSubject: string;

  constructor(private readonly options: JetStreamBusOptions) {
    const { config, store, logger } = options;
    this.where = redactUrl(config.url);
    this.wakeSubject = `herald-wake.${config.stream.name}`;
    this.publisher = new EventPublisher(config.subject, config.consumer.batch, logger, (detail) => {
      this.lastError = detail;
    });
    this.deadLetters = new BusDeadLetters(config.stream.name, store, logger, options.onDeadLetter);
    this.recovery = new RecoverySweep(
      store,
      config.recoverAfterMs,
      logger,
      () => this.state === 'connected',
      (events) => this.publish(events),
    );
  }

  private get config(): JetStreamBusConfig {
    return this.options.config;
  }

  private get logger(): Logger {
    return this.options.logger;
  }

  async start(): Promise<void> {
    try {
      this.nc = await connect({
        servers: this.config.url.split(',').map((s) => s.trim()),
        name: 'herald',
        // Outages are waited out, however long: events stay in the store meanwhile.
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        waitOnFirstConnect: false,
      });
    } catch (err) {
      throw new HeraldError(
        'CONFIG_INVALID',
        `bus.url: cannot reach NATS at ${this.where}: ${errorMessage(err)}`,
        {
          cause: err,
          status: 503,
        },
      );
    }
    this.state = 'connected';
    void this.watchStatus(this.nc);
    try {
      this.jsm = await jetstreamManager(this.nc);
    } catch (err) {
      await this.nc.close().catch(() => undefined);
      throw new HeraldError(
        'CONFIG_INVALID',
        `bus: the NATS server at ${this.where} has no JetStream (start nats-server with -js, or enable it for this account): ${errorMessage(err)}`,
        { cause: err },
      );
    }
    this.js = jetstream(this.nc);
    try {
      await ensureStream(this.jsm, this.config, this.logger);
      await ensureConsumer(this.jsm, this.config);
    } catch (err) {
      await this.nc.close().catch(() => undefined);
      throw err;
    }
    this.nc.subscribe(this.wakeSubject, {
      callback: (_err, msg) => {
        const channel = msg.string();
        for (const l of this.listeners) l(channel);
      },
    });
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting') {
        if (this.state !== 'reconnecting')
          this.logger.warn({ nats: this.where }, 'NATS connection lost; reconnecting');
        this.state = 'reconnecting';
      } else if (s.type === 'reconnect') {
        this.logger.info({ nats: this.where }, 'NATS connection back');
        this.state = 'connected';
        this.lastError = null;
      } else if (s.type === 'error') {
        this.lastError = errorMessage(s.error);
      } else if (s.type === 'close') {
        this.state = 'closed';
      }
    }
  }

  publish(events: StoredEvent[]): void {
    if (this.js) this.publisher.publish(this.js, events);
  }

  consume(handler: RouteHandler): void {
    this.consumer = new RouterConsumer(
      {
        config: this.config,
        store: this.options.store,
        logger: this.logger,
        deadLetters: this.deadLetters,
        connection: () => ({ js: this.js, maxPayload: this.nc?.info?.max_payload }),
        onFailure: (detail) => {
          this.lastError = detail;
        },
      },
      handler,
    );
    this.recovery.start();
  }

  async stopConsuming(): Promise<void> {
    this.recovery.stop();
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.stop();
  }

  announce(channels: Iterable<string>): void {
    if (!this.nc || this.state !== 'connected') return;
    for (const channel of channels) {
      try {
        this.nc.publish(this.wakeSubject, channel);
      } catch {
        // A wake-up is an optimisation; dispatchers poll anyway.
      }
    }
  }

  onAnnounce(listener: (channel: string) => void): void {
    this.listeners.push(listener);
  }

  health(): BusHealth {
    const base = `NATS ${this.where}, stream ${this.config.stream.name}`;
    if (this.state === 'connected') return { ok: true, state: 'connected', detail: base };
    return {
      ok: false,
      state: this.state,
      detail: `${base}: ${this.state}${this.lastError ? ` (${this.lastError})` : ''}`,
    };
  }

  async close(): Promise<void> {
    await this.stopConsuming();
    await this.publisher.settle(5000);
    const nc = this.nc;
    this.nc = null;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    this.state = 'closed';
  }
}
