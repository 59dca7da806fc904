import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { RouteHandler } from '../../engine/bus.js';
import type { Store, StoredEvent } from '../../engine/store.js';
import { errorMessage, withTimeout } from '../../errors.js';
import type { JetStreamBusConfig } from '../config.js';
import type { BusDeadLetters } from './dead-letters.js';
import { decodeMessage } from './wire.js';

/** A message a router failed on, while the store answered, this many times is set aside. */
const POISON_AFTER_DELIVERIES = 3;
const STORE_PROBE_MS = 3000;

/** A message pulled from the stream and the events it carries. */
interface Pulled {
  msg: JsMsg;
  events: StoredEvent[];
}

export interface RouterConsumerOptions {
  config: JetStreamBusConfig;
  store: Store;
  logger: Logger;
  deadLetters: BusDeadLetters;
  /** The bus's client and its server's max_payload, as they are when the consumer (re)starts. */
  connection(): { js: JetStreamClient | null; maxPayload: number | undefined };
  /** The consumer failed and is restarting; says why, for the bus's health. */
  onFailure(detail: string): void;
}

/**
 * Pulls from the shared durable consumer and hands the events to the router in batches, acking
 * each message once its plan is committed. A consumer that fails (NATS away, the consumer
 * deleted) is started again after a second.
 */
export class RouterConsumer {
  private consuming = true;
  private messages: ConsumerMessages | null = null;
  private readonly loop: Promise<void>;

  constructor(
    private readonly options: RouterConsumerOptions,
    handler: RouteHandler,
  ) {
    this.loop = this.run(handler);
  }

  /** Ends the pull once the batch in hand is routed and acked. */
  async stop(): Promise<void> {
    this.consuming = false;
    // close() ends the iterator after the batch in hand is routed and acked.
    await this.messages?.close().catch(() => undefined);
    await this.loop;
  }

  private async run(handler: RouteHandler): Promise<void> {
    const { consumer, stream } = this.options.config;
    while (this.consuming) {
      try {
        const { js, maxPayload } = this.options.connection();
        const c = await js!.consumers.get(stream.name, consumer.name);
        // Pulled by bytes, not messages, since one message may carry one event or hundreds; room
        // for at least two of the largest messages the server allows.
        const messages = await c.consume({
          max_bytes: Math.max(8 * 1024 * 1024, 2 * (maxPayload ?? 1024 * 1024)),
          expires: 5000,
        });
        this.messages = messages;
        const batch: Pulled[] = [];
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
            this.options.deadLetters.setAside(m, `unreadable: ${errorMessage(err)}`);
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
        this.options.onFailure(`consumer: ${errorMessage(err)}`);
        this.options.logger.warn({ err: errorMessage(err) }, 'JetStream consumer failed; trying again');
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
  private async route(work: Pulled[], handler: RouteHandler): Promise<void> {
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
        this.options.logger.error(
          { err: errorMessage(err), events: events.length },
          'routing failed; retrying',
        );
        for (const w of work) w.msg.working();
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** One message whose batch failed: routed alone, given back, or (failing again and again) set aside. */
  private async routeAlone(w: Pulled, handler: RouteHandler): Promise<void> {
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
        this.options.logger.warn(
          { streamSeq: w.msg.seq, deliveries: w.msg.info.deliveryCount, err: errorMessage(err) },
          'routing one message failed; JetStream hands it out again',
        );
        w.msg.nak(1000);
        return;
      }
      await this.options.deadLetters.giveUp(w.msg, w.events, errorMessage(err));
    }
  }

  private storeAnswers(): Promise<boolean> {
    const ping = Promise.resolve().then(() => this.options.store.ping());
    return withTimeout(ping, STORE_PROBE_MS, 'the store').then(
      () => true,
      () => false,
    );
  }
}
