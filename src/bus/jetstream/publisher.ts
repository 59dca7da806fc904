import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { StoredEvent } from '../../engine/store.js';
import { errorMessage } from '../../errors.js';
import { encodeMessages, messageId } from './wire.js';

/**
 * Publishes stored events to the stream, in messages of up to `maxEvents` events, each with a
 * Nats-Msg-Id so a publish repeated within the stream's duplicate window is dropped. A publish
 * that fails is only logged: the events are in the store, and the recovery sweep publishes them
 * again.
 */
export class EventPublisher {
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly subject: string,
    private readonly maxEvents: number,
    private readonly logger: Logger,
    /** A publish failed; says why, for the bus's health. */
    private readonly onFailure: (detail: string) => void,
  ) {}

  publish(js: JetStreamClient, events: StoredEvent[]): void {
    for (const message of encodeMessages(events, this.maxEvents)) {
      const sent = message.events;
      const p = js
        .publish(this.subject, message.data, {
          msgID: messageId(sent.map((stored) => stored.event)),
          timeout: 10_000,
        })
        .catch((err) => {
          this.onFailure(`publish failed: ${errorMessage(err)}`);
          // Stored but not on the stream: the sweep publishes them again after recoverAfterMs.
          this.logger.warn(
            { seqs: [sent[0]!.seq, sent[sent.length - 1]!.seq], err: errorMessage(err) },
            'could not publish events to JetStream; they will be published again',
          );
        })
        .finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
  }

  /** Waits for the publishes under way, at most `timeoutMs`. */
  async settle(timeoutMs: number): Promise<void> {
    await Promise.race([
      Promise.allSettled([...this.pending]),
      new Promise((r) => setTimeout(r, timeoutMs).unref()),
    ]);
  }
}
