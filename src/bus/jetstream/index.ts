import { createHash } from 'node:crypto';
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  type RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { JetStreamBusConfig } from '../../config/schema.js';
import { errorMessage, HeraldError, withTimeout } from '../../errors.js';
import type { CloudEvent } from '../../events/types.js';
import { redactUrl } from '../../redact.js';
import type { Store, StoredEvent } from '../../store/types.js';
import type { Bus, BusHealth, RouteHandler } from '../types.js';

/** What travels on the stream: enough to route without reading the event back from the store. */
interface WireEvent {
  seq: number;
  receivedAt: number;
  event: CloudEvent;
}

/**
 * One message carries a run of stored events (`{events}`), so a busy ingest costs one publish and
 * one ack per batch rather than per event. A single event (`{seq, receivedAt, event}`) is read too.
 */
type WireMessage = { events: WireEvent[] } | WireEvent;

/** Encoded size a message aims to stay under: well within NATS' default 1 MB max_payload. */
const MESSAGE_BYTES = 256 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Nats-Msg-Id of a message: the identities (source, id) of the events it carries, hashed so any id
 * is a valid header value. The same events published again get the same id and are dropped.
 */
export function messageId(
  events: Pick<CloudEvent, 'source' | 'id'> | Pick<CloudEvent, 'source' | 'id'>[],
): string {
  const hash = createHash('sha256');
  for (const event of Array.isArray(events) ? events : [events]) {
    // Length-prefixed, so no two different lists of (source, id) hash the same input.
    hash.update(`${event.source.length}:${event.source}${event.id.length}:${event.id}`);
  }
  return hash.digest('base64url');
}

const nonEmpty = (value: unknown) => typeof value === 'string' && value !== '';

/**
 * The events of a message; throws, saying what is wrong, when it is not a Herald message: a
 * router must never be handed something it cannot route.
 */
export function decodeMessage(data: Uint8Array): StoredEvent[] {
  const wire = JSON.parse(decoder.decode(data)) as WireMessage;
  if (wire === null || typeof wire !== 'object') throw new Error('not a Herald message');
  const list = 'events' in wire && Array.isArray(wire.events) ? wire.events : [wire as WireEvent];
  return list.map((w, i) => {
    if (!Number.isSafeInteger(w?.seq) || w.seq <= 0) throw new Error(`event ${i}: no position in the log`);
    const event = w.event as Partial<CloudEvent> | undefined;
    if (
      event === null ||
      typeof event !== 'object' ||
      !nonEmpty(event.specversion) ||
      !nonEmpty(event.id) ||
      !nonEmpty(event.source) ||
      !nonEmpty(event.type)
    )
      throw new Error(`event ${i} (seq ${w.seq}): not a CloudEvent`);
    const receivedAt = typeof w.receivedAt === 'number' ? w.receivedAt : Date.now();
    return { seq: w.seq, receivedAt, event: event as CloudEvent, routedAt: null, routing: null };
  });
}

/** A message a router failed on, while the store answered, this many times is set aside. */
const POISON_AFTER_DELIVERIES = 3;
const STORE_PROBE_MS = 3000;

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
 */
export class JetStreamBus implements Bus {
  readonly kind = 'jetstream';
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private jsm: JetStreamManager | null = null;
  private state: 'connecting' | 'connected' | 'reconnecting' | 'closed' = 'connecting';
  private lastError: string | null = null;
  private readonly pending = new Set<Promise<unknown>>();
  private messages: ConsumerMessages | null = null;
  private consuming = false;
  private consumeLoop: Promise<void> | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping = false;
  private readonly listeners: ((channel: string) => void)[] = [];
  private readonly where: string;
  private readonly wakeSubject: string;

  constructor(private readonly options: JetStreamBusOptions) {
    this.where = redactUrl(options.config.url);
    this.wakeSubject = `herald-wake.${options.config.stream.name}`;
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
      await this.ensureStream(this.jsm);
      await this.ensureConsumer(this.jsm);
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

  private async ensureStream(jsm: JetStreamManager): Promise<void> {
    const { stream, subject } = this.config;
    const subjects = stream.subjects ?? [subject];
    try {
      await jsm.streams.info(stream.name);
      return;
    } catch (err) {
      if (!/not found/i.test(errorMessage(err))) throw this.streamError(err);
    }
    try {
      await jsm.streams.add({
        name: stream.name,
        subjects,
        retention: stream.retention as RetentionPolicy,
        num_replicas: stream.replicas,
        max_age: nanos(stream.maxAgeMs),
        duplicate_window: nanos(stream.duplicateWindowMs),
        storage: StorageType.File,
      });
      this.logger.info({ stream: stream.name, subjects }, 'created the JetStream stream');
    } catch (err) {
      // Another process may have created it a moment ago.
      if (!/already in use/i.test(errorMessage(err))) throw this.streamError(err);
    }
  }

  private streamError(err: unknown): HeraldError {
    return new HeraldError(
      'CONFIG_INVALID',
      `bus.stream: cannot create or read stream "${this.config.stream.name}": ${errorMessage(err)}`,
      { cause: err },
    );
  }

  private async ensureConsumer(jsm: JetStreamManager): Promise<void> {
    const { consumer, stream, subject } = this.config;
    const wanted = {
      durable_name: consumer.name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(consumer.ackWaitMs),
      max_ack_pending: consumer.maxAckPending,
      deliver_policy: DeliverPolicy.All,
      filter_subject: subject,
      max_deliver: consumer.maxDeliver,
    };
    try {
      await jsm.consumers.add(stream.name, wanted);
    } catch (err) {
      // An existing consumer with other settings: adopt what can change, keep it otherwise.
      try {
        await jsm.consumers.update(stream.name, consumer.name, {
          ack_wait: wanted.ack_wait,
          max_ack_pending: wanted.max_ack_pending,
          max_deliver: wanted.max_deliver,
        });
      } catch {
        throw new HeraldError(
          'CONFIG_INVALID',
          `bus.consumer: cannot create consumer "${consumer.name}" on stream "${stream.name}": ${errorMessage(err)}`,
          { cause: err },
        );
      }
    }
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
    const js = this.js;
    if (!js) return;
    // Each event is encoded once; its length keeps messages under MESSAGE_BYTES, and a message is
    // those encodings joined into `{"events":[…]}`.
    let chunk: StoredEvent[] = [];
    let encoded: string[] = [];
    let bytes = 0;
    const send = () => {
      if (chunk.length === 0) return;
      const sent = chunk;
      const p = js
        .publish(this.config.subject, encoder.encode(`{"events":[${encoded.join(',')}]}`), {
          msgID: messageId(sent.map((stored) => stored.event)),
          timeout: 10_000,
        })
        .catch((err) => {
          this.lastError = `publish failed: ${errorMessage(err)}`;
          // Stored but not on the stream: the sweep publishes them again after recoverAfterMs.
          this.logger.warn(
            { seqs: [sent[0]!.seq, sent[sent.length - 1]!.seq], err: errorMessage(err) },
            'could not publish events to JetStream; they will be published again',
          );
        })
        .finally(() => this.pending.delete(p));
      this.pending.add(p);
      chunk = [];
      encoded = [];
      bytes = 0;
    };
    for (const stored of events) {
      const wire: WireEvent = { seq: stored.seq, receivedAt: stored.receivedAt, event: stored.event };
      const json = JSON.stringify(wire);
      if (
        chunk.length > 0 &&
        (bytes + json.length > MESSAGE_BYTES || chunk.length >= this.config.consumer.batch)
      )
        send();
      chunk.push(stored);
      encoded.push(json);
      bytes += json.length + 1;
    }
    send();
  }

  consume(handler: RouteHandler): void {
    this.consuming = true;
    this.consumeLoop = this.runConsumer(handler);
    const every = Math.max(1000, Math.floor(this.config.recoverAfterMs / 3));
    this.sweeper = setInterval(() => void this.sweep(), every);
    this.sweeper.unref();
  }

  private async runConsumer(handler: RouteHandler): Promise<void> {
    const { consumer, stream } = this.config;
    while (this.consuming) {
      try {
        const c = await this.js!.consumers.get(stream.name, consumer.name);
        // Pulled by bytes, not messages, since one message may carry one event or hundreds; room
        // for at least two of the largest messages the server allows.
        const maxPayload = this.nc?.info?.max_payload ?? 1024 * 1024;
        const messages = await c.consume({
          max_bytes: Math.max(8 * 1024 * 1024, 2 * maxPayload),
          expires: 5000,
        });
        this.messages = messages;
        const batch: { msg: JsMsg; events: StoredEvent[] }[] = [];
        let queuedEvents = 0;
        let working: Promise<void> | null = null;
        const drain = async () => {
          while (batch.length > 0) {
            // Whole messages, up to about `consumer.batch` events per routing commit.
            let taken = 0;
            let count = 0;
            while (
              taken < batch.length &&
              (taken === 0 || count + batch[taken]!.events.length <= consumer.batch)
            ) {
              count += batch[taken]!.events.length;
              taken++;
            }
            const work = batch.splice(0, taken);
            queuedEvents -= count;
            await this.route(work, handler);
          }
          working = null;
        };
        for await (const m of messages) {
          let events: StoredEvent[];
          try {
            events = decodeMessage(m.data);
          } catch (err) {
            this.setAside(m, `unreadable: ${errorMessage(err)}`);
            continue;
          }
          batch.push({ msg: m, events });
          queuedEvents += events.length;
          // Messages that arrive while a batch commits form the next one (group commit).
          working ??= drain();
          if (queuedEvents >= consumer.batch * 2) await working;
        }
        await (working ?? Promise.resolve());
      } catch (err) {
        if (!this.consuming) break;
        this.lastError = `consumer: ${errorMessage(err)}`;
        this.logger.warn({ err: errorMessage(err) }, 'JetStream consumer failed; trying again');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  /**
   * Routes a batch and acks it. When routing fails while the store answers, the batch is routed
   * message by message, so one message no router can handle never holds back the others; such a
   * message goes back to JetStream a few times, then is set aside (see `routeAlone`). While the
   * store does not answer, the batch is kept and tried again: an outage holds routing back.
   */
  private async route(work: { msg: JsMsg; events: StoredEvent[] }[], handler: RouteHandler): Promise<void> {
    const events = work.flatMap((w) => w.events);
    for (;;) {
      try {
        await handler(events);
        for (const w of work) w.msg.ack();
        return;
      } catch (err) {
        if (!this.consuming) {
          for (const w of work) w.msg.nak();
          return;
        }
        if (await this.storeAnswers()) {
          for (const w of work) await this.routeAlone(w, handler);
          return;
        }
        // The store is down: keep the batch and try again (the messages stay ours, unacked).
        this.logger.error({ err: errorMessage(err), events: events.length }, 'routing failed; retrying');
        for (const w of work) w.msg.working();
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** One message whose batch failed: routed alone, given back, or (failing again and again) set aside. */
  private async routeAlone(w: { msg: JsMsg; events: StoredEvent[] }, handler: RouteHandler): Promise<void> {
    try {
      await handler(w.events);
      w.msg.ack();
      return;
    } catch (err) {
      if (!this.consuming || !(await this.storeAnswers())) {
        // An outage after all: JetStream hands it out again.
        w.msg.nak(500);
        return;
      }
      if (w.msg.info.deliveryCount < POISON_AFTER_DELIVERIES) {
        this.logger.warn(
          { streamSeq: w.msg.seq, deliveries: w.msg.info.deliveryCount, err: errorMessage(err) },
          'routing one message failed; JetStream hands it out again',
        );
        w.msg.nak(1000);
        return;
      }
      const reason = errorMessage(err);
      this.setAside(w.msg, `routing failed ${w.msg.info.deliveryCount} times: ${reason}`);
      // Recorded as routed, with the reason, so the recovery sweep does not publish it again
      // and the event's page says why it has no deliveries.
      await this.options.store.routing
        .commit(
          w.events.map((e) => ({
            seq: e.seq,
            record: {
              matched: [],
              errors: [{ trigger: '', dialect: 'router', kind: 'unroutable', message: reason }],
              deliveries: 0,
            },
            deliveries: [],
          })),
          Date.now(),
        )
        .catch((commitErr) =>
          this.logger.warn(
            { streamSeq: w.msg.seq, err: errorMessage(commitErr) },
            'could not record why the events were not routed; the recovery sweep publishes them again',
          ),
        );
    }
  }

  /** Terminates a message no router can handle, once, with its stream position in the log. */
  private setAside(msg: JsMsg, reason: string): void {
    this.logger.error(
      { stream: this.config.stream.name, streamSeq: msg.seq, reason },
      `terminated the message at ${this.config.stream.name}/${msg.seq}: ${reason}`,
    );
    // Without a reason: servers before 2.10.4 do not understand "+TERM <reason>".
    msg.term();
    this.options.onDeadLetter?.();
  }

  private storeAnswers(): Promise<boolean> {
    const ping = Promise.resolve().then(() => this.options.store.ping());
    return withTimeout(ping, STORE_PROBE_MS, 'the store').then(
      () => true,
      () => false,
    );
  }

  /** Publishes again what was stored but never routed (a crash between store and publish). */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.state !== 'connected') return;
    this.sweeping = true;
    try {
      const before = Date.now() - this.config.recoverAfterMs;
      const stale = (await this.options.store.events.unrouted(1000)).filter((e) => e.receivedAt < before);
      if (stale.length > 0) {
        this.logger.info({ events: stale.length }, 'publishing stored events that were never routed');
        this.publish(stale);
      }
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'recovery sweep failed');
    } finally {
      this.sweeping = false;
    }
  }

  async stopConsuming(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    if (!this.consuming) return;
    this.consuming = false;
    // close() ends the iterator after the batch in hand is routed and acked.
    await this.messages?.close().catch(() => undefined);
    await this.consumeLoop;
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
    await Promise.race([
      Promise.allSettled([...this.pending]),
      new Promise((r) => setTimeout(r, 5000).unref()),
    ]);
    const nc = this.nc;
    this.nc = null;
    if (nc && !nc.isClosed()) await nc.drain().catch(() => nc.close());
    this.state = 'closed';
  }
}
