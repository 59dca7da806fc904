import type { ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { errorMessage, HeraldError } from '../../errors.js';
import type { CloudEvent } from '../../events/types.js';
import { nats, within } from '../../nats/index.js';
import { ingestIsolating } from '../isolate.js';
import { TickBatcher } from '../tick-batcher.js';
import type { NatsJetStreamConfig } from './config.js';
import { deadLetterOf, eventsOf, headerRecord, type NatsMessage, type ReceiverContext } from './message.js';

/** A pulled message, as read, and why it cannot become a stored event. */
interface Unstorable {
  msg: JsMsg;
  message: NatsMessage;
  reason: string;
}

/**
 * A JetStream durable pull consumer: messages are acknowledged once their events are stored, so
 * none is lost. A message that cannot become a stored event (its mapping or validation fails, or
 * ingest refuses its event) is set aside in the source dead-letter table and terminated, alone:
 * its companions are acknowledged. Only an outage (the store cannot take the batch, or cannot keep
 * a dead letter) naks, for JetStream to redeliver after `nakDelayMs`.
 */
export class JetStreamReceiver {
  private readonly subscriptions: Subscription[] = [];
  private consumeMessages: ConsumerMessages | null = null;
  private readonly batcher: TickBatcher<JsMsg>;

  constructor(
    private readonly receiver: ReceiverContext,
    private readonly subjects: string[],
    private readonly js: NatsJetStreamConfig,
    /** Where NATS is, credentials removed, for errors. */
    private readonly server: string,
  ) {
    this.batcher = new TickBatcher((batch) => this.ingest(batch), js.batch);
  }

  /** Checks the stream, creates the consumer when missing, and starts pulling. */
  async start(nc: NatsConnection): Promise<void> {
    const js = this.js;
    const [{ nanos }, { AckPolicy, DeliverPolicy, jetstream, jetstreamManager }] = await nats();
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(js.stream);
    } catch (err) {
      throw new HeraldError(
        'SOURCE_ERROR',
        `JetStream stream ${js.stream} is not available on ${this.server}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    const exists = await jsm.consumers.info(js.stream, js.consumer).then(
      () => true,
      () => false,
    );
    if (!exists) {
      const subjects = this.subjects;
      await jsm.consumers
        .add(js.stream, {
          durable_name: js.consumer,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(js.ackWaitMs),
          max_deliver: js.maxDeliver,
          ...(subjects.length === 1 ? { filter_subject: subjects[0] } : { filter_subjects: subjects }),
        })
        .catch((err) => {
          throw new HeraldError(
            'SOURCE_ERROR',
            `cannot create JetStream consumer ${js.consumer} on stream ${js.stream}: ${errorMessage(err)}`,
            { cause: err },
          );
        });
      this.receiver.logger.info(
        { stream: js.stream, consumer: js.consumer },
        'created the JetStream consumer',
      );
    }
    this.watchMaxDeliveries(nc, jsm);
    const consumer = await jetstream(nc).consumers.get(js.stream, js.consumer);
    this.consumeMessages = await consumer.consume({
      max_messages: js.batch,
      callback: (msg) => this.batcher.push(msg),
    });
  }

  /** Stops pulling; what was pulled but not yet handed to ingest goes straight back for another process. */
  async stop(): Promise<void> {
    for (const sub of this.subscriptions) sub.unsubscribe();
    if (this.consumeMessages) await within(this.consumeMessages.close(), 5000);
    for (const msg of this.batcher.take()) msg.nak();
    await this.batcher.idle();
  }

  /**
   * With a `maxDeliver` limit, JetStream gives up on a message silently; its advisory names it, and
   * the message (still in the stream) is set aside here so it is not lost from sight. One process
   * of those sharing the consumer handles each advisory (a queue group).
   */
  private watchMaxDeliveries(nc: NatsConnection, jsm: JetStreamManager): void {
    const js = this.js;
    this.subscriptions.push(
      nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${js.stream}.${js.consumer}`, {
        queue: `herald-max-deliveries-${js.consumer}`,
        callback: (err, advisory) => {
          if (err) return;
          void this.setAsideGivenUp(jsm, js.stream, advisory.data);
        },
      }),
    );
  }

  private async setAsideGivenUp(jsm: JetStreamManager, stream: string, advisory: Uint8Array): Promise<void> {
    let seq = 0;
    let deliveries = 0;
    try {
      const parsed = JSON.parse(Buffer.from(advisory).toString('utf8')) as {
        stream_seq?: unknown;
        deliveries?: unknown;
      };
      seq = Number(parsed.stream_seq);
      deliveries = Number(parsed.deliveries);
      if (!Number.isSafeInteger(seq) || seq <= 0) return;
      const stored = await jsm.streams.getMessage(stream, { seq });
      if (!stored) return;
      await this.receiver.context.deadLetter(
        {
          position: `${stream}/${seq}`,
          subject: stored.subject,
          headers: headerRecord(stored.header),
          payload: stored.data,
        },
        `JetStream gave up on it after ${deliveries} deliveries (maxDeliver)`,
      );
    } catch (err) {
      this.receiver.logger.error(
        { position: `${stream}/${seq}`, err: errorMessage(err) },
        `source ${this.receiver.name}: JetStream gave up on the message at ${stream}/${seq} after ${deliveries} deliveries and it could not be set aside: ${errorMessage(err)}`,
      );
    }
  }

  /** Acknowledged once stored; see the class comment for what is set aside and what is given back. */
  private async ingest(batch: JsMsg[]): Promise<void> {
    const js = this.js;
    const mapped: { msg: JsMsg; message: NatsMessage; events: CloudEvent[] }[] = [];
    const failed: Unstorable[] = [];
    for (const msg of batch) {
      const message: NatsMessage = {
        subject: msg.subject,
        data: msg.data,
        headers: headerRecord(msg.headers),
        position: `${msg.info.stream}/${msg.info.streamSequence}`,
      };
      try {
        mapped.push({ msg, message, events: eventsOf(message, this.receiver) });
      } catch (err) {
        failed.push({ msg, message, reason: errorMessage(err) });
      }
    }
    let refused: Unstorable[];
    try {
      refused = (
        await ingestIsolating(
          mapped,
          (m) => m.events,
          (events) => this.receiver.context.ingest(events),
        )
      ).map(({ item, reason }) => ({ ...item, reason }));
    } catch (err) {
      const count = mapped.reduce((n, m) => n + m.events.length, 0);
      this.receiver.logger.warn(
        { count, err: errorMessage(err) },
        `source ${this.receiver.name}: could not store ${count} events (${errorMessage(err)}); JetStream redelivers them`,
      );
      for (const { msg } of mapped) msg.nak(js.nakDelayMs);
      await this.setAside(failed);
      return;
    }
    const set = new Set(refused.map((r) => r.msg));
    for (const { msg } of mapped) if (!set.has(msg)) msg.ack();
    await this.setAside([...failed, ...refused]);
  }

  private async setAside(messages: Unstorable[]) {
    for (const { msg, message, reason } of messages) {
      try {
        await this.receiver.context.deadLetter(deadLetterOf(message), reason);
      } catch (err) {
        // Not kept anywhere yet: it must come back rather than be terminated.
        this.receiver.logger.warn(
          { position: message.position, err: errorMessage(err) },
          `source ${this.receiver.name}: could not set aside the message at ${message.position} (${errorMessage(err)}); JetStream redelivers it`,
        );
        msg.nak(this.js.nakDelayMs);
        continue;
      }
      // Without a reason: servers before 2.10.4 do not understand "+TERM <reason>".
      msg.term();
    }
  }
}
