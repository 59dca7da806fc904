import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import type { RetryPolicy } from './model.js';
import type { AttemptOutcome, Delivery, Store } from './store.js';
import type { ChannelResult } from './types.js';

/**
 * What an attempt's result makes of its delivery: delivered, dead (a permanent failure, or the
 * last attempt) or pending until the next attempt (backoff with jitter, but never before the
 * channel's earliest time).
 */
export function outcomeOf(
  delivery: Delivery,
  backoff: RetryPolicy['backoff'] | undefined,
  result: ChannelResult,
  attemptNo: number,
  startedAt: number,
  finishedAt: number,
): AttemptOutcome {
  const base = {
    deliveryId: delivery.id,
    number: attemptNo,
    startedAt,
    durationMs: finishedAt - startedAt,
  };
  if (result.outcome === 'delivered') {
    return {
      deliveryId: delivery.id,
      attempt: { ...base, outcome: 'delivered', error: null, nextAttemptAt: null },
      status: 'delivered',
      error: null,
      remoteId: result.remoteId ?? null,
      rendered: result.rendered,
    };
  }
  if (result.outcome === 'failed') {
    return {
      deliveryId: delivery.id,
      attempt: { ...base, outcome: 'failed', error: result.reason, nextAttemptAt: null },
      status: 'dead',
      error: result.reason,
      rendered: result.rendered,
    };
  }
  if (attemptNo >= delivery.maxAttempts) {
    const reason = `gave up after ${attemptNo} attempt${attemptNo === 1 ? '' : 's'}: ${result.reason}`;
    return {
      deliveryId: delivery.id,
      attempt: { ...base, outcome: 'retry', error: result.reason, nextAttemptAt: null },
      status: 'dead',
      error: reason,
      rendered: result.rendered,
    };
  }
  // Whole milliseconds: a store may keep times as integers (PostgreSQL's BIGINT refuses 1000.5 and
  // with it the whole batch of outcomes), and a receiver's Retry-After can be any number.
  const notBefore = Number.isFinite(result.notBefore) ? Math.ceil(result.notBefore!) : 0;
  const next = Math.max(finishedAt + backoffDelay(backoff ?? DEFAULT_BACKOFF, attemptNo), notBefore);
  return {
    deliveryId: delivery.id,
    attempt: { ...base, outcome: 'retry', error: result.reason, nextAttemptAt: next },
    status: 'pending',
    nextAttemptAt: next,
    error: result.reason,
    rendered: result.rendered,
  };
}

/**
 * Writes outcomes in batches (group commit), one commit at a time: outcomes that arrive while a
 * batch is being committed form the next one. Each send waits for its own to be durable, and a
 * busy dispatcher costs one write per batch rather than one per send. With a store that answers
 * at the commit (`recordCommitted`), the next batch commits while this one waits for its fsync,
 * so an outcome never waits for an earlier batch's fsync before its own commit.
 */
export class OutcomeWriter {
  private pending: { outcome: AttemptOutcome; done: () => void; fail: (e: unknown) => void }[] = [];
  private flushScheduled = false;
  private writing: Promise<void> | null = null;
  /** Settles once every batch committed so far is answered. */
  private answered: Promise<void> = Promise.resolve();

  constructor(private readonly store: Store) {}

  /** Resolves once the outcome is durable; rejects with the store's error when its batch fails. */
  record(outcome: AttemptOutcome): Promise<void> {
    return new Promise((done, fail) => {
      this.pending.push({ outcome, done, fail });
      if (!this.flushScheduled && !this.writing) {
        this.flushScheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Writes every outcome waiting, now; resolves when none is left and all are answered. */
  async flush(): Promise<void> {
    this.flushScheduled = false;
    while (this.writing) await this.writing;
    const batch = this.pending;
    if (batch.length > 0) {
      this.pending = [];
      this.writing = this.commit(batch);
      await this.writing;
      this.writing = null;
      if (this.pending.length > 0 && !this.flushScheduled) await this.flush();
    }
    await this.answered;
  }

  /** Resolves once the batch is committed; its senders are answered when it is durable. */
  private async commit(batch: OutcomeWriter['pending']): Promise<void> {
    const outcomes = batch.map((b) => b.outcome);
    let durable: Promise<void>;
    try {
      if (this.store.deliveries.recordCommitted)
        durable = (await this.store.deliveries.recordCommitted(outcomes)).durable;
      else {
        await this.store.deliveries.record(outcomes);
        durable = Promise.resolve();
      }
    } catch (err) {
      for (const b of batch) b.fail(err);
      return;
    }
    const previous = this.answered;
    this.answered = durable.then(
      async () => {
        await previous;
        for (const b of batch) b.done();
      },
      async (err: unknown) => {
        await previous;
        for (const b of batch) b.fail(err);
      },
    );
  }
}
