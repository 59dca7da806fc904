import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Store, StoredEvent } from '../../engine/store.js';
import { errorMessage } from '../../errors.js';

/**
 * Sets aside messages no router can handle: they are terminated, once, with their stream position
 * in the log (the message stays in the stream for a look), and counted.
 */
export class BusDeadLetters {
  constructor(
    private readonly stream: string,
    private readonly store: Store,
    private readonly logger: Logger,
    /** A message was terminated (a metric counts them). */
    private readonly onDeadLetter: (() => void) | undefined,
  ) {}

  /** Terminates a message that cannot be routed: unreadable, or failing again and again. */
  setAside(msg: JsMsg, reason: string): void {
    this.logger.error(
      { stream: this.stream, streamSeq: msg.seq, reason },
      `terminated the message at ${this.stream}/${msg.seq}: ${reason}`,
    );
    // Without a reason: servers before 2.10.4 do not understand "+TERM <reason>".
    msg.term();
    this.onDeadLetter?.();
  }

  /**
   * Sets aside a message routing failed on every time JetStream handed it out, while the store
   * answered. Its events are recorded as routed, with the reason, so the recovery sweep does not
   * publish them again and the event's page says why it has no deliveries.
   */
  async giveUp(msg: JsMsg, events: StoredEvent[], reason: string): Promise<void> {
    this.setAside(msg, `routing failed ${msg.info.deliveryCount} times: ${reason}`);
    await this.store.routing
      .commit(
        events.map((e) => ({
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
          { streamSeq: msg.seq, err: errorMessage(commitErr) },
          'could not record why the events were not routed; the recovery sweep publishes them again',
        ),
      );
  }
}
