import type { Logger } from 'pino';
import { errorMessage, HeraldError } from '../errors.js';
import { eventJsonLength } from '../events/serialize.js';
import type { CloudEvent } from '../events/types.js';
import { ChannelPump, type PumpHost, type SendSlot } from './channel-pump.js';
import { emitFollowUp } from './follow-up.js';
import { type Claimed, type Held, Leases } from './leases.js';
import type { CompiledTrigger, RateLimit } from './model.js';
import { OutcomeWriter, outcomeOf } from './outcomes.js';
import { ABORT_GRACE_MS, sendWithDeadline } from './send-deadline.js';
import type { AttemptOutcome, Delivery, Store } from './store.js';
import type { Channel, ChannelResult, DeliveryRequest } from './types.js';

/** Most bytes of events (as JSON) one digest's send reads; the oldest beyond are left out. */
export const DIGEST_READ_BYTES = 8 * 1024 * 1024;
/** Events read from the log per query while a digest is gathered, so other work runs between. */
const DIGEST_READ_CHUNK = 25;

/**
 * Events kept per generation for the deliveries about to be sent. A routed delivery is usually
 * claimed within milliseconds, so a few seconds' worth at a high rate is plenty; a backlog reads
 * its events back in one query per claim instead. Bigger held tens of MB under load for nothing.
 */
const RECENT_EVENTS = 5_000;
/**
 * And at most this many characters of events (as JSON) per generation, so large events cannot
 * make the two generations hold more than about 2 × this (the objects take a few times their text).
 */
export const RECENT_EVENT_CHARS = 4 * 1024 * 1024;
/**
 * The largest event (as JSON) handed to a pump with its deliveries. A pump keeps up to
 * (1 + CLAIM_AHEAD) × concurrency deliveries ready to start, behind a slow receiver for as long as
 * it is slow: their events stay within that many times this. A larger event goes the way of a
 * claimed delivery's, through the bounded cache above or read back when sent.
 */
const HANDED_OVER_EVENT_CHARS = 16 * 1024;

export interface DispatcherHooks {
  onAttempt?(
    delivery: Delivery,
    outcome: AttemptOutcome,
    result: ChannelResult,
    durationMs: number,
    event?: CloudEvent,
  ): void;
}

export interface DispatcherOptions {
  leaseMs: number;
  pollIntervalMs: number;
  /** Appends follow-up events (`followUp`) to the log; resolves when they are durable. */
  emit?: (events: CloudEvent[]) => Promise<void>;
  /** Channels with a `rateLimit`, by name; their tokens come from the store's shared buckets. */
  rateLimits?: ReadonlyMap<string, RateLimit>;
}

/**
 * Sends due deliveries through their channels, at most `concurrency` at once per channel, and
 * records each attempt's outcome: delivered, retry later (backoff with jitter, honouring the
 * channel's earliest time) or dead (the DLQ, with the reason).
 *
 * The parts: a ChannelPump per channel claims and starts its deliveries (channel-pump.ts); Leases
 * keeps what is being sent leased to this process (leases.ts); each send runs within its
 * channel's deadline (send-deadline.ts); outcomes are written in batches (outcomes.ts); a
 * delivered action's follow-up event is emitted first (follow-up.ts).
 */
export class Dispatcher {
  private readonly pumps = new Map<string, ChannelPump>();
  private readonly triggers: Map<string, CompiledTrigger>;
  private readonly inFlight = new Set<Promise<void>>();
  private sending = 0;
  private readonly leases: Leases;
  private readonly outcomes: OutcomeWriter;
  private running = false;
  private poller: NodeJS.Timeout | null = null;
  /**
   * Recently ingested events by seq, so a delivery rarely needs to read its event back. Two generations instead of evicting the oldest entry of one Map: dropping from the front of a
   * Map that is also growing at the back makes V8 skip ever more deleted slots on each lookup of
   * the first key, which cost more than routing itself under load.
   */
  private recentEvents = new Map<number, CloudEvent>();
  private olderEvents = new Map<number, CloudEvent>();
  /** Characters of JSON of the events in `recentEvents`. */
  private recentChars = 0;

  constructor(
    private readonly store: Store,
    channels: Map<string, Channel>,
    triggers: CompiledTrigger[],
    private readonly options: DispatcherOptions,
    private readonly logger: Logger,
    private readonly hooks: DispatcherHooks = {},
  ) {
    this.leases = new Leases(store, options.leaseMs, logger);
    this.outcomes = new OutcomeWriter(store);
    const host: PumpHost = {
      isRunning: () => this.running,
      claim: (channel, limit) => this.claim(channel, limit),
      lease: (deliveries, events) => this.leaseRouted(deliveries, events),
      release: (claimed) => this.leases.release(claimed),
      isHeld: (deliveryId) => this.leases.isHeld(deliveryId),
      start: (pump, claimed, slot) => this.run(pump, claimed, slot),
    };
    for (const [name, channel] of channels) {
      this.pumps.set(
        name,
        new ChannelPump({
          name,
          channel,
          rateLimit: options.rateLimits?.get(name) ?? null,
          store,
          leaseMs: options.leaseMs,
          logger,
          host,
        }),
      );
    }
    this.triggers = new Map(triggers.map((t) => [t.name, t]));
  }

  start(): void {
    this.running = true;
    this.wakeAll();
    this.poller = setInterval(() => this.wakeAll(), this.options.pollIntervalMs);
    this.poller.unref();
    this.leases.startRenewing();
  }

  rememberEvent(seq: number, event: CloudEvent): void {
    const chars = eventJsonLength(event);
    // One event larger than a whole generation is not kept: its deliveries read it back.
    if (chars > RECENT_EVENT_CHARS) return;
    if (this.recentEvents.size >= RECENT_EVENTS || this.recentChars + chars > RECENT_EVENT_CHARS) {
      this.olderEvents = this.recentEvents;
      this.recentEvents = new Map();
      this.recentChars = 0;
    }
    this.recentEvents.set(seq, event);
    this.recentChars += chars;
  }

  /**
   * Leases up to `limit` due deliveries, and reads the events of those this process did not route
   * (another process did, or this one restarted) in one query rather than one per send. A failed
   * read is not a failed claim: each send then reads its own event.
   */
  private async claim(channel: string, limit: number): Promise<Claimed[]> {
    const now = Date.now();
    const leaseUntil = now + this.options.leaseMs;
    const claimed = await this.store.deliveries.claim({
      channel,
      limit,
      now,
      leaseMs: this.options.leaseMs,
    });
    const missing = new Set<number>();
    for (const d of claimed) if (!this.cachedEvent(d.eventSeq)) missing.add(d.eventSeq);
    if (missing.size > 0) {
      try {
        for (const stored of await this.store.events.getMany([...missing]))
          this.rememberEvent(stored.seq, stored.event);
      } catch (err) {
        this.logger.debug({ err: errorMessage(err) }, "reading claimed deliveries' events failed");
      }
    }
    const { startable, giveBack } = this.leases.startable(claimed, leaseUntil);
    await this.leases.release(giveBack);
    return startable;
  }

  private leaseRouted(deliveries: Delivery[], events: ReadonlyMap<number, CloudEvent>): Claimed[] {
    const deliveryStore = this.store.deliveries;
    if (!deliveryStore.leaseRouted) return [];
    const now = Date.now();
    let ids: number[];
    try {
      ids = deliveryStore.leaseRouted(
        deliveries.map((d) => d.id),
        now,
        this.options.leaseMs,
      );
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'leasing routed deliveries failed; claiming them');
      return [];
    }
    const leaseUntil = now + this.options.leaseMs;
    const claimed = (delivery: Delivery): Claimed => {
      const event = events.get(delivery.eventSeq);
      return event && eventJsonLength(event) <= HANDED_OVER_EVENT_CHARS
        ? { delivery, leaseUntil, event }
        : { delivery, leaseUntil };
    };
    if (ids.length === deliveries.length) return deliveries.map(claimed);
    const leased = new Set(ids);
    return deliveries.filter((d) => leased.has(d.id)).map(claimed);
  }

  /**
   * Deliveries routed in this process whose commit is on disk: each channel's pump takes its own
   * as they are when it can (ChannelPump.offer), each with its event from `events` unless that is
   * large, and claims them otherwise. Only the events of deliveries that go without theirs are
   * kept for them (rememberEvent): one sent as handed over needs none, and is not kept alive past
   * its send. Returns the deliveries by channel.
   */
  handOff(
    deliveries: Delivery[],
    events: ReadonlyMap<number, CloudEvent>,
  ): ReadonlyMap<string, readonly Delivery[]> {
    const byChannel = new Map<string, Delivery[]>();
    for (const d of deliveries) {
      const list = byChannel.get(d.channel);
      if (list) list.push(d);
      else byChannel.set(d.channel, [d]);
    }
    const carried = new Set<number>();
    if (this.running)
      for (const [channel, list] of byChannel)
        for (const c of this.pumps.get(channel)?.offer(list, events) ?? [])
          if (c.event) carried.add(c.delivery.id);
    for (const d of deliveries) {
      if (carried.has(d.id)) continue;
      const event = events.get(d.eventSeq);
      if (event && !this.cachedEvent(d.eventSeq)) this.rememberEvent(d.eventSeq, event);
    }
    return byChannel;
  }

  private cachedEvent(seq: number): CloudEvent | undefined {
    return this.recentEvents.get(seq) ?? this.olderEvents.get(seq);
  }

  /** Something may be due on this channel (new deliveries, a replay): look now. */
  wake(name: string): void {
    const pump = this.pumps.get(name);
    if (!pump || !this.running) return;
    pump.wake();
  }

  wakeAll(): void {
    for (const name of this.pumps.keys()) this.wake(name);
  }

  /**
   * Stops claiming, lets in-flight sends finish until the deadline, then aborts them (channels
   * answer retry) and writes every outcome. Whatever is not sent stays pending in the store.
   */
  async stop(deadlineMs: number): Promise<void> {
    this.running = false;
    if (this.poller) clearInterval(this.poller);
    const unstarted = [...this.pumps.values()].flatMap((pump) => pump.stop());
    await this.leases.release(unstarted);
    const all = Promise.allSettled([...this.inFlight]);
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), deadlineMs).unref()),
    ]);
    if (timedOut) {
      this.leases.abortAll(new HeraldError('SHUTTING_DOWN', 'shutdown deadline passed'));
      await Promise.race([all, new Promise((r) => setTimeout(r, 2 * ABORT_GRACE_MS).unref())]);
    }
    await this.outcomes.flush();
    // Leases stay renewed until every outcome is written.
    this.leases.stopRenewing();
    for (const pump of this.pumps.values()) await pump.channel.close?.().catch(() => undefined);
  }

  /** Sends to a channel running now; attempts whose outcome waits to be written are not counted. */
  get inFlightCount(): number {
    return this.sending;
  }

  /** Holds the delivery's lease while it is sent and its outcome written. */
  private run(pump: ChannelPump, { delivery, leaseUntil, event }: Claimed, slot: SendSlot): void {
    const held = this.leases.hold(delivery.id, leaseUntil);
    this.sending++;
    const task = this.attempt(pump, delivery, event, held, () => {
      held.sent = true;
      this.sending--;
      slot.sent();
    })
      .catch((err) =>
        this.logger.error({ deliveryId: delivery.id, err: errorMessage(err) }, 'recording an attempt failed'),
      )
      .finally(() => {
        if (!held.sent) this.sending--;
        this.leases.forget(delivery.id);
        this.inFlight.delete(task);
        slot.finished();
      });
    this.inFlight.add(task);
  }

  /**
   * The events a digest delivery carries, oldest first, read when it is sent (a retry or a replay
   * reads the same ones). A delivery stored without a digest (its key did not render) carries its
   * own event. Read newest first, a chunk at a time, up to DIGEST_READ_BYTES of events: a digest
   * of many large events keeps its newest that fit, rather than parsing up to `max` × the body
   * limit in one go while every other send waits.
   */
  private async digestOf(
    delivery: Delivery,
    opener: CloudEvent,
    update: boolean,
  ): Promise<Pick<DeliveryRequest, 'events' | 'digest'>> {
    const found = await this.store.deliveries.digest(delivery.idempotencyKey);
    if (!found) return { events: [opener] };
    const seqs = found.eventSeqs;
    const newestFirst: CloudEvent[] = [];
    let bytes = 0;
    reading: for (let end = seqs.length; end > 0; end -= DIGEST_READ_CHUNK) {
      const chunk = seqs.slice(Math.max(0, end - DIGEST_READ_CHUNK), end);
      const missing = chunk.filter((seq) => seq !== delivery.eventSeq && !this.cachedEvent(seq));
      const read = new Map<number, CloudEvent>();
      if (missing.length > 0)
        for (const stored of await this.store.events.getMany(missing)) read.set(stored.seq, stored.event);
      for (let i = chunk.length - 1; i >= 0; i--) {
        const seq = chunk[i]!;
        const e = seq === delivery.eventSeq ? opener : (this.cachedEvent(seq) ?? read.get(seq));
        if (!e) continue;
        // Known without serialising: from ingest's text, or from the text the store read.
        bytes += eventJsonLength(e);
        if (bytes > DIGEST_READ_BYTES && newestFirst.length > 0) {
          this.logger.warn(
            { deliveryId: delivery.id, events: seqs.length, sent: newestFirst.length },
            `digest: the oldest ${seqs.length - newestFirst.length} events are left out, over ${DIGEST_READ_BYTES} bytes`,
          );
          break reading;
        }
        newestFirst.push(e);
      }
    }
    if (newestFirst.length === 0) newestFirst.push(opener);
    return { events: newestFirst.reverse(), digest: { key: found.key, update, action: delivery.action } };
  }

  /** Sends one delivery, calls `onSent` when the channel is done with it, then records the outcome. */
  private async attempt(
    pump: ChannelPump,
    delivery: Delivery,
    handedOver: CloudEvent | undefined,
    held: Held,
    onSent: () => void,
  ): Promise<void> {
    const trigger = this.triggers.get(delivery.trigger);
    const action = trigger?.actions.find((a) => a.index === delivery.action);
    const attemptNo = delivery.attempts + 1;
    const startedAt = Date.now();
    let result: ChannelResult;
    let event: CloudEvent | undefined;
    if (!trigger || !action) {
      // The config changed since the delivery was planned: keep it for replay after a fix.
      result = {
        outcome: 'failed',
        reason: `trigger "${delivery.trigger}" action ${delivery.action} is no longer in the config`,
      };
    } else {
      event =
        handedOver ??
        this.cachedEvent(delivery.eventSeq) ??
        (await this.store.events.get(delivery.eventSeq))?.event;
      let digest: Pick<DeliveryRequest, 'events' | 'digest'> | string = {};
      if (event && action.notify?.digest) {
        digest = await this.digestOf(delivery, event, action.notify.digest.update).catch(
          (err) => `reading the digest's events failed: ${errorMessage(err)}`,
        );
        if (typeof digest !== 'string' && digest.events) event = digest.events.at(-1)!;
      }
      if (!event) {
        result = { outcome: 'failed', reason: `event #${delivery.eventSeq} is not in the log` };
      } else if (typeof digest === 'string') {
        result = { outcome: 'retry', reason: digest };
      } else {
        result = await sendWithDeadline(
          pump.channel,
          {
            deliveryId: delivery.id,
            idempotencyKey: delivery.idempotencyKey,
            attempt: attemptNo,
            event,
            trigger: delivery.trigger,
            action: action.params,
            recipient: delivery.recipient,
            ...digest,
          },
          held,
        );
        if (held.lost) {
          // Another dispatcher has the delivery now and makes this attempt itself: writing this
          // one too would count it twice and drop that dispatcher's lease.
          onSent();
          this.logger.warn(
            { deliveryId: delivery.id, channel: delivery.channel, attempt: attemptNo },
            'the lease on a delivery was lost while sending it; the send was stopped and its outcome left to the dispatcher that holds it',
          );
          return;
        }
        if (result.outcome === 'delivered' && action.followUp !== undefined) {
          result = await emitFollowUp(action.followUp, delivery, event, result, this.options.emit);
        }
      }
    }
    const finishedAt = Date.now();
    const outcome = outcomeOf(delivery, trigger?.policy.backoff, result, attemptNo, startedAt, finishedAt);
    this.hooks.onAttempt?.(delivery, outcome, result, finishedAt - startedAt, event);
    const fields = {
      eventId: delivery.eventId,
      trigger: delivery.trigger,
      channel: delivery.channel,
      deliveryId: delivery.id,
      attempt: attemptNo,
    };
    if (outcome.status === 'dead')
      this.logger.warn({ ...fields, reason: outcome.error }, 'delivery moved to the dead-letter queue');
    else if (outcome.status === 'pending')
      this.logger.debug(
        { ...fields, reason: outcome.error, nextAttemptAt: outcome.nextAttemptAt },
        'delivery will be retried',
      );
    else this.logger.debug(fields, 'delivered');
    onSent();
    await this.outcomes.record(outcome);
    if (outcome.status === 'pending') await pump.scheduleNext();
  }
}
