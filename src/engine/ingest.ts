import type { Logger } from 'pino';
import { errorMessage, HeraldError } from '../errors.js';
import { eventJson } from '../events/serialize.js';
import type { CloudEvent } from '../events/types.js';
import type { AppendResult, Delivery, EventLog, PlannedRouting, RoutedAppend } from './store.js';
import type { IngestResult } from './types.js';

interface Pending {
  events: CloudEvent[];
  resolve(results: IngestResult[]): void;
  reject(err: unknown): void;
}

type Durable = { event: CloudEvent; append: AppendResult; routing?: PlannedRouting }[];

/** How a batch stored already routed was routed. */
export interface RoutedAtIngest {
  /** Deliveries inserted. */
  deliveries: number;
  /** Epoch ms of the routing. */
  at: number;
  /** The log's `claimable` deliveries (see RoutedAppend), durable now. */
  claimable: Delivery[];
}

/**
 * Group commit: every caller that arrives while a write is being prepared joins the same
 * transaction, and each is answered when that transaction is durable. One fsync serves many
 * requests; that is where ingest throughput comes from.
 *
 * With a log that answers at the commit (`appendCommitted`), the next batch commits while this
 * one waits for its fsync, rather than waiting a whole fsync before it even starts; batches are
 * still answered, and their deliveries handed on, in commit order and only once durable.
 */
export class IngestBatcher {
  private queue: Pending[] = [];
  private queuedEvents = 0;
  private scheduled = false;
  /** The batch being planned and committed: one at a time. */
  private writing: Promise<void> = Promise.resolve();
  /** Settles once every batch committed so far is answered. */
  private answered: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly log: EventLog,
    private readonly onDurable: (results: Durable, receivedAt: number, routed: RoutedAtIngest | null) => void,
    private readonly logger: Logger,
    private readonly maxBatch = 2000,
    /**
     * Plans the routing of a batch before it is appended, when the log can store events already
     * routed (`appendRouted`); null when routing must happen after the append this time.
     */
    private readonly planner?: (events: CloudEvent[]) => Promise<PlannedRouting[]> | null,
  ) {}

  ingest(events: CloudEvent[]): Promise<IngestResult[]> {
    if (this.closed) return Promise.reject(new HeraldError('SHUTTING_DOWN', 'Herald is shutting down'));
    if (events.length === 0) return Promise.resolve([]);
    // Serialised here, alone, so an event that cannot be never shares a transaction with others.
    for (let i = 0; i < events.length; i++) {
      try {
        eventJson(events[i]!);
      } catch (err) {
        return Promise.reject(
          new HeraldError(
            'EVENT_UNSTORABLE',
            `${events.length > 1 ? `event [${i}]` : 'the event'} cannot be stored: it does not serialise as JSON (${errorMessage(err)})`,
            { cause: err, details: events.length > 1 ? { attribute: `[${i}]` } : undefined },
          ),
        );
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.queuedEvents += events.length;
      this.schedule();
    });
  }

  /** Stops accepting; resolves when everything queued is written. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || this.scheduled) await this.flush();
    await this.writing;
    await this.answered;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    // One commit at a time; callers arriving meanwhile form the next batch.
    await this.writing;
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch: Pending[] = [];
    let size = 0;
    while (this.queue.length > 0 && (size === 0 || size + this.queue[0]!.events.length <= this.maxBatch)) {
      const next = this.queue.shift()!;
      batch.push(next);
      size += next.events.length;
    }
    this.queuedEvents -= size;
    if (this.queue.length > 0) this.schedule();
    this.writing = this.write(batch);
    await this.writing;
  }

  private async write(batch: Pending[]): Promise<void> {
    let size = 0;
    for (const p of batch) size += p.events.length;
    const events: CloudEvent[] = new Array(size);
    let i = 0;
    for (const p of batch) for (const e of p.events) events[i++] = e;
    let results: AppendResult[];
    const receivedAt = Date.now();
    let plans: PlannedRouting[] | null = null;
    let routed: RoutedAtIngest | null = null;
    if (this.log.appendRouted && this.planner) {
      try {
        plans = await this.planner(events);
      } catch (err) {
        // Routing after the append still works; only the shortcut is lost.
        this.logger.warn({ err: errorMessage(err) }, 'planning at ingest failed; routing after the append');
        plans = null;
      }
    }
    const routedAt = Date.now();
    let synced: Promise<void>;
    try {
      if (this.log.appendCommitted) {
        const committed = await this.log.appendCommitted(events, receivedAt, plans && { plans, routedAt });
        results = committed.value.results;
        if (plans) routed = asRouted(committed.value, routedAt);
        synced = committed.durable;
      } else {
        if (plans) {
          const appended = await this.log.appendRouted!(events, plans, receivedAt, routedAt);
          results = appended.results;
          routed = asRouted(appended, routedAt);
        } else {
          results = await this.log.append(events, receivedAt);
        }
        synced = Promise.resolve();
      }
    } catch (err) {
      if (err instanceof HeraldError && err.code === 'EVENT_UNSTORABLE') {
        await this.isolate(batch, err);
        return;
      }
      this.failed(batch, err);
      return;
    }
    // Answered after every batch committed before it, and only once its own commit is durable.
    const previous = this.answered;
    this.answered = synced
      .then(
        async () => {
          await previous;
          this.answer(batch, results, plans, receivedAt, routed);
        },
        async (err: unknown) => {
          await previous;
          this.failed(batch, err);
        },
      )
      .catch((err: unknown) =>
        // Only onDurable can throw here; the callers have their answers, and later batches still do.
        this.logger.error({ err: errorMessage(err) }, 'handing on durable events failed'),
      );
  }

  private answer(
    batch: Pending[],
    results: AppendResult[],
    plans: PlannedRouting[] | null,
    receivedAt: number,
    routed: RoutedAtIngest | null,
  ): void {
    const durable: Durable = [];
    let offset = 0;
    for (const p of batch) {
      const out: IngestResult[] = new Array(p.events.length);
      for (let j = 0; j < p.events.length; j++) {
        const event = p.events[j]!;
        const append = results[offset + j]!;
        out[j] = { id: event.id, source: event.source, duplicate: append.duplicate };
        if (!append.duplicate) durable.push({ event, append, routing: plans?.[offset + j] });
      }
      offset += p.events.length;
      p.resolve(out);
    }
    if (durable.length > 0) this.onDurable(durable, receivedAt, routed);
  }

  /** The store failed (the commit, or making it durable): 503 to this batch's callers. */
  private failed(batch: Pending[], err: unknown): void {
    let size = 0;
    for (const p of batch) size += p.events.length;
    this.logger.error({ err: errorMessage(err), events: size }, 'event log write failed; answering 503');
    const failure = new HeraldError(
      'STORE_UNAVAILABLE',
      'the event log could not store the event; try again',
      {
        cause: err,
      },
    );
    for (const p of batch) p.reject(failure);
  }

  /**
   * The log refused something in this batch for what it holds, not because it is down: halve the
   * batch and write each half, until the caller whose events the log refuses is alone and gets
   * the reason. Every other caller is answered as if nothing had happened; a batch of n callers
   * with one bad event costs about 2·log2(n) extra transactions.
   */
  private async isolate(batch: Pending[], err: HeraldError): Promise<void> {
    if (batch.length > 1) {
      const half = batch.length >> 1;
      await this.write(batch.slice(0, half));
      await this.write(batch.slice(half));
      return;
    }
    this.logger.warn(
      { err: err.message, events: batch[0]!.events.length },
      'the event log refused an event; answering 422',
    );
    batch[0]!.reject(
      new HeraldError('EVENT_UNSTORABLE', `the event log cannot store this event: ${err.message}`, {
        cause: err,
      }),
    );
  }

  get backlog(): number {
    return this.queuedEvents;
  }
}

function asRouted(appended: RoutedAppend, at: number): RoutedAtIngest {
  return { deliveries: appended.deliveries, at, claimable: appended.claimable ?? [] };
}
