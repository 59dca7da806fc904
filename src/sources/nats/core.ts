import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { errorMessage } from '../../errors.js';
import { newEventId } from '../../events/ids.js';
import type { CloudEvent } from '../../events/types.js';
import { ingestIsolating } from '../isolate.js';
import { TickBatcher } from '../tick-batcher.js';
import {
  deadLetterOf,
  eventsOf,
  headerRecord,
  msgIdOf,
  type NatsMessage,
  type ReceiverContext,
} from './message.js';

/**
 * Core NATS subscriptions (in a queue group when `queue` is set). Core NATS is at-most-once: a
 * message that cannot become a stored event is set aside in the source dead-letter table; a batch
 * that cannot be stored (the store is down) is lost, and the log says so.
 */
export class CoreReceiver {
  private readonly subscriptions: Subscription[] = [];
  private readonly batcher: TickBatcher<Msg>;

  constructor(
    private readonly receiver: ReceiverContext,
    private readonly subjects: string[],
    private readonly queue: string | undefined,
  ) {
    this.batcher = new TickBatcher((batch) => this.ingest(batch));
  }

  start(nc: NatsConnection): void {
    for (const subject of this.subjects) {
      this.subscriptions.push(
        nc.subscribe(subject, {
          queue: this.queue,
          callback: (err, msg) => {
            if (err)
              this.receiver.logger.warn({ subject, err: err.message }, `NATS subscription ${subject} failed`);
            else this.batcher.push(msg);
          },
        }),
      );
    }
  }

  /** Unsubscribes, then waits for the batch being stored; what arrived meanwhile is dropped, and said. */
  async stop(): Promise<void> {
    for (const sub of this.subscriptions) sub.unsubscribe();
    const dropped = this.batcher.take().length;
    if (dropped > 0) {
      this.receiver.logger.warn(
        { dropped },
        `source ${this.receiver.name}: ${dropped} core NATS messages arrived during shutdown and were not stored (core NATS is at-most-once; use jetstream to keep them)`,
      );
    }
    await this.batcher.idle();
  }

  private async ingest(batch: Msg[]): Promise<void> {
    const mapped: { message: NatsMessage; events: CloudEvent[] }[] = [];
    for (const msg of batch) {
      const headers = headerRecord(msg.headers);
      // The position of a core message is the id its events get by default: nothing else names it.
      const message = {
        subject: msg.subject,
        data: msg.data,
        headers,
        position: msgIdOf(headers) ?? newEventId(),
      };
      try {
        mapped.push({ message, events: eventsOf(message, this.receiver) });
      } catch (err) {
        await this.setAside(message, errorMessage(err));
      }
    }
    let refused: { item: { message: NatsMessage }; reason: string }[];
    try {
      refused = await ingestIsolating(
        mapped,
        (m) => m.events,
        (events) => this.receiver.context.ingest(events),
      );
    } catch (err) {
      const lost = mapped.reduce((n, m) => n + m.events.length, 0);
      this.receiver.logger.error(
        { lost, err: errorMessage(err) },
        `source ${this.receiver.name}: ${lost} events from core NATS could not be stored and are lost: ${errorMessage(err)} (use jetstream for redelivery)`,
      );
      return;
    }
    for (const { item, reason } of refused) await this.setAside(item.message, reason);
  }

  private async setAside(message: NatsMessage, reason: string): Promise<void> {
    await this.receiver.context.deadLetter(deadLetterOf(message), reason).catch((err) => {
      this.receiver.logger.error(
        { subject: message.subject, reason, err: errorMessage(err) },
        `source ${this.receiver.name}: dropped a message on ${message.subject} (${reason}); it could not be set aside either: ${errorMessage(err)}`,
      );
    });
  }
}
