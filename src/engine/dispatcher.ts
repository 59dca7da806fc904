import type { Logger } from 'pino';
import type { CompiledTrigger } from '../config/load.js';
import type { RateLimit } from '../config/schema.js';
import { errorMessage, HeraldError } from '../errors.js';
import { followUpDraft, nextHop } from '../events/hops.js';
import { validateEvent } from '../events/index.js';
import type { CloudEvent } from '../events/types.js';
import type { AttemptOutcome, Delivery, Store } from '../store/types.js';
import { renderTree, type TemplateTree } from '../templates/index.js';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff.js';
import {
  type Channel,
  type ChannelResult,
  type DeliveryRequest,
  failed,
  retry,
  SendTimeoutError,
} from './types.js';

/** Same limit as the emit channel's default: a chain of follow-ups longer than this is a loop. */
const MAX_FOLLOW_UP_HOPS = 16;
/** Leased deliveries a busy channel keeps waiting for a slot, in multiples of its concurrency. */
const CLAIM_AHEAD = 3;
/**
 * How long a channel has to answer once its send's signal is aborted. One that honours the signal
 * answers within moments, with its own account of what was cut short; one that ignores it gives
 * its slot back anyway when this has passed.
 */
const ABORT_GRACE_MS = 1000;

/** A claimed delivery and the lease this dispatcher holds on it. */
interface Claimed {
  delivery: Delivery;
  leaseUntil: number;
}

/**
 * A delivery this dispatcher is sending, or whose outcome waits to be written. The lease is
 * renewed meanwhile, and claims skip the delivery, so it is never in flight twice.
 */
interface Held {
  /** The lease as this dispatcher last set it: what a renewal must find in the store. */
  leaseUntil: number;
  /** Aborts the send (its deadline, a lost lease, shutdown); null once the channel is done. */
  abort: ((reason: Error) => void) | null;
  /** The lease went to another dispatcher: the outcome of this send is not ours to write. */
  lost: boolean;
}

export interface DispatcherHooks {
  onAttempt?(
    delivery: Delivery,
    outcome: AttemptOutcome,
    result: ChannelResult,
    durationMs: number,
    event?: CloudEvent,
  ): void;
}

interface ChannelState {
  name: string;
  channel: Channel;
  /** Sends under way: at most the channel's `concurrency`. */
  inFlight: number;
  /**
   * Sends finished whose outcome is waiting for its group commit. They give their slot back at
   * once, since the receiver is done with them, but at most `concurrency` of them wait, so a slow
   * store slows sending rather than piling outcomes up in memory.
   */
  recording: number;
  /** Claimed (leased) deliveries waiting for a free slot: claiming in batches saves a query per send. */
  ready: Claimed[];
  claiming: boolean;
  /** A wake-up came during a claim whose query may have run before the new work was committed. */
  wokenWhileClaiming: boolean;
  /**
   * The last claim found less than it asked for (rate-limited or not): nothing more is due until
   * something says so (a wake-up from routing or a replay, the retry timer, the poller), so
   * finished sends do not ask.
   */
  drained: boolean;
  timer: NodeJS.Timeout | null;
  timerAt: number;
  /** The channel's `rateLimit`; null when unlimited. */
  rateLimit: RateLimit | null;
  /** While a rate-limited channel's bucket is empty: when its next token is due (0 otherwise). */
  tokensAt: number;
  tokenTimer: NodeJS.Timeout | null;
  /** Claims are failing (the store is down): logged once when it starts and once when it ends. */
  claimFailing: boolean;
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
 */
export class Dispatcher {
  private readonly states = new Map<string, ChannelState>();
  private readonly triggers: Map<string, CompiledTrigger>;
  private readonly inFlight = new Set<Promise<void>>();
  /** Deliveries sent or being recorded by this dispatcher, by id. */
  private readonly held = new Map<number, Held>();
  private running = false;
  private poller: NodeJS.Timeout | null = null;
  private renewer: NodeJS.Timeout | null = null;
  private renewing = false;
  /** Renewals are failing (the store is down): logged once when it starts and once when it ends. */
  private renewFailing = false;
  private pendingOutcomes: { outcome: AttemptOutcome; done: () => void; fail: (e: unknown) => void }[] = [];
  private flushScheduled = false;
  private writingOutcomes: Promise<void> | null = null;
  /** Recently ingested events by seq, so a delivery rarely needs to read its event back. */
  /**
   * Two generations instead of evicting the oldest entry of one Map: dropping from the front of a
   * Map that is also growing at the back makes V8 skip ever more deleted slots on each lookup of
   * the first key, which cost more than routing itself under load.
   */
  private recentEvents = new Map<number, CloudEvent>();
  private olderEvents = new Map<number, CloudEvent>();

  constructor(
    private readonly store: Store,
    channels: Map<string, Channel>,
    triggers: CompiledTrigger[],
    private readonly options: DispatcherOptions,
    private readonly logger: Logger,
    private readonly hooks: DispatcherHooks = {},
  ) {
    for (const [name, channel] of channels) {
      this.states.set(name, {
        name,
        channel,
        inFlight: 0,
        recording: 0,
        ready: [],
        claiming: false,
        wokenWhileClaiming: false,
        drained: false,
        timer: null,
        timerAt: 0,
        rateLimit: options.rateLimits?.get(name) ?? null,
        tokensAt: 0,
        tokenTimer: null,
        claimFailing: false,
      });
    }
    this.triggers = new Map(triggers.map((t) => [t.name, t]));
  }

  start(): void {
    this.running = true;
    for (const name of this.states.keys()) this.wake(name);
    this.poller = setInterval(() => {
      for (const name of this.states.keys()) this.wake(name);
    }, this.options.pollIntervalMs);
    this.poller.unref();
    this.renewer = setInterval(() => void this.renewLeases(), this.options.leaseMs / 3);
    this.renewer.unref();
  }

  rememberEvent(seq: number, event: CloudEvent): void {
    if (this.recentEvents.size >= 20_000) {
      this.olderEvents = this.recentEvents;
      this.recentEvents = new Map();
    }
    this.recentEvents.set(seq, event);
  }

  /**
   * Leases up to `limit` due deliveries, and reads the events of those this process did not route
   * (another process did, or this one restarted) in one query rather than one per send. A failed
   * read is not a failed claim: each send then reads its own event.
   */
  private async claim(state: ChannelState, limit: number): Promise<Claimed[]> {
    const now = Date.now();
    const leaseUntil = now + this.options.leaseMs;
    const claimed = await this.store.deliveries.claim({
      channel: state.name,
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
    const startable: Claimed[] = [];
    for (const delivery of claimed) {
      const held = this.held.get(delivery.id);
      // Still being sent here: its lease ran out (renewals failed), and this claim took it again
      // for the send under way, which must not get a twin.
      if (held) held.leaseUntil = leaseUntil;
      else startable.push({ delivery, leaseUntil });
    }
    return startable;
  }

  private cachedEvent(seq: number): CloudEvent | undefined {
    return this.recentEvents.get(seq) ?? this.olderEvents.get(seq);
  }

  /** Something may be due on this channel (new deliveries, a replay): look now. */
  wake(name: string): void {
    const state = this.states.get(name);
    if (!state || !this.running) return;
    state.drained = false;
    void this.pump(state);
  }

  wakeAll(): void {
    for (const name of this.states.keys()) this.wake(name);
  }

  /**
   * Stops claiming, lets in-flight sends finish until the deadline, then aborts them (channels
   * answer retry) and writes every outcome. Whatever is not sent stays pending in the store.
   */
  async stop(deadlineMs: number): Promise<void> {
    this.running = false;
    if (this.poller) clearInterval(this.poller);
    for (const s of this.states.values()) {
      if (s.timer) clearTimeout(s.timer);
      if (s.tokenTimer) clearTimeout(s.tokenTimer);
    }
    await this.release([...this.states.values()].flatMap((s) => s.ready.splice(0)));
    const all = Promise.allSettled([...this.inFlight]);
    const timedOut = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), deadlineMs).unref()),
    ]);
    if (timedOut) {
      const reason = new HeraldError('SHUTTING_DOWN', 'shutdown deadline passed');
      for (const held of this.held.values()) held.abort?.(reason);
      await Promise.race([all, new Promise((r) => setTimeout(r, 2 * ABORT_GRACE_MS).unref())]);
    }
    await this.flushOutcomes();
    // Leases stay renewed until every outcome is written.
    if (this.renewer) clearInterval(this.renewer);
    for (const s of this.states.values()) await s.channel.close?.().catch(() => undefined);
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /**
   * Starts claimed deliveries while the channel has free slots, and claims more before the
   * buffer runs dry, so a busy channel asks the store once per batch instead of once per finished
   * send. The buffer holds up to three `concurrency` of leased deliveries and is refilled once
   * half of it is left: a claim's round trip under load takes about as long as a concurrency's
   * worth of sends, so with one `concurrency` ahead (refilled at half) slots stood empty for a
   * third of a busy run, waiting for the claim, and a claim was under way 85 % of the time. At
   * the default 120 s lease even a slow channel starts a buffered delivery long before its lease
   * is half spent (see startReady).
   */
  private async pump(state: ChannelState): Promise<void> {
    if (!this.running) return;
    if (state.rateLimit) return this.pumpLimited(state, state.rateLimit);
    const limit = state.channel.concurrency;
    this.startReady(state);
    if (state.claiming) {
      state.wokenWhileClaiming = true;
      return;
    }
    if (state.ready.length > (CLAIM_AHEAD / 2) * limit || state.drained) return;
    const wanted = (1 + CLAIM_AHEAD) * limit - state.inFlight - state.ready.length;
    if (wanted <= 0) return;
    state.claiming = true;
    state.wokenWhileClaiming = false;
    let claimed: Claimed[] = [];
    try {
      claimed = await this.claim(state, wanted);
      this.claimSucceeded(state);
    } catch (err) {
      this.claimFailed(state, err);
    } finally {
      state.claiming = false;
    }
    if (!this.running) {
      await this.release(claimed);
      return;
    }
    state.ready.push(...claimed);
    this.startReady(state);
    // A claim that found only deliveries already under way here found as much as it asked for.
    if (claimed.length === wanted || state.wokenWhileClaiming) void this.pump(state);
    else {
      state.drained = true;
      await this.scheduleNext(state);
    }
  }

  /**
   * While the store is unreachable every poll fails the same way: one error when it starts and
   * one line when claims work again, rather than a line per channel every poll interval.
   */
  private claimFailed(state: ChannelState, err: unknown): void {
    if (state.claimFailing) {
      this.logger.debug({ channel: state.name, err: errorMessage(err) }, 'claiming deliveries still failing');
      return;
    }
    state.claimFailing = true;
    this.logger.error({ channel: state.name, err: errorMessage(err) }, 'claiming deliveries failed');
  }

  private claimSucceeded(state: ChannelState): void {
    if (!state.claimFailing) return;
    state.claimFailing = false;
    this.logger.info({ channel: state.name }, 'claiming deliveries works again');
  }

  /**
   * Starts ready deliveries while slots are free. One whose lease is mostly spent (a very busy
   * process) is left alone: another dispatcher may claim it as soon as the lease ends, and two
   * sends of one delivery at once is what leases exist to prevent.
   */
  private startReady(state: ChannelState): void {
    const margin = this.options.leaseMs / 2;
    while (freeSlots(state) > 0 && state.ready.length > 0) {
      const claimed = state.ready.shift()!;
      if (claimed.leaseUntil - Date.now() < margin || this.held.has(claimed.delivery.id)) continue;
      this.run(state, claimed);
    }
  }

  /**
   * A rate-limited channel claims only what it may send now: it takes tokens from the channel's
   * bucket in the store (one statement per batch, shared by every process), claims at most that
   * many deliveries and starts them at once. Nothing waits claimed: a delivery kept ready with
   * its token while other processes spend theirs would be sent in a burst larger than allowed.
   * Tokens no due delivery needed go back to the bucket. With the bucket empty, the channel sleeps
   * until the next token is due instead of asking again.
   */
  private async pumpLimited(state: ChannelState, rate: RateLimit): Promise<void> {
    if (state.claiming) {
      state.wokenWhileClaiming = true;
      return;
    }
    if (state.drained) return;
    const limit = state.channel.concurrency;
    const free = freeSlots(state);
    // Batches as the ready buffer does for unlimited channels: one take and one claim per half
    // of the slots, rather than per finished send.
    if (free <= 0 || (state.inFlight > 0 && free < Math.ceil(limit / 2))) return;
    if (Date.now() < state.tokensAt) return; // The token timer pumps then.
    state.claiming = true;
    state.wokenWhileClaiming = false;
    let taken: { granted: number; nextAt: number } | null = null;
    let claimed: Claimed[] = [];
    try {
      taken = await this.store.rateLimits.take({
        channel: state.name,
        wanted: free,
        now: Date.now(),
        ...rate,
      });
      if (taken.granted > 0 && this.running) claimed = await this.claim(state, taken.granted);
      this.claimSucceeded(state);
    } catch (err) {
      this.claimFailed(state, err);
    } finally {
      state.claiming = false;
    }
    if (!this.running) {
      await this.release(claimed);
      claimed = [];
    }
    const granted = taken?.granted ?? 0;
    if (granted > claimed.length) await this.giveBack(state, rate, granted - claimed.length);
    if (!this.running || !taken) return; // On an error the poller looks again.
    for (const c of claimed) this.run(state, c);
    if (granted === 0) this.waitForToken(state, taken.nextAt);
    else if (claimed.length < granted) {
      // Fewer due than granted: the channel has caught up.
      if (state.wokenWhileClaiming) void this.pump(state);
      else {
        state.drained = true;
        await this.scheduleNext(state);
      }
    } else if (granted < free) this.waitForToken(state, taken.nextAt);
    else void this.pump(state);
  }

  private waitForToken(state: ChannelState, at: number): void {
    if (state.tokenTimer) clearTimeout(state.tokenTimer);
    state.tokensAt = at;
    state.tokenTimer = setTimeout(
      () => {
        state.tokenTimer = null;
        state.tokensAt = 0;
        void this.pump(state);
      },
      Math.max(1, at - Date.now()),
    );
    state.tokenTimer.unref();
  }

  /**
   * Tokens come back one claim after they were taken. Had the bucket filled up meanwhile, that
   * lets at most `perSecond ×` the claim's duration more through, once.
   */
  private async giveBack(state: ChannelState, rate: RateLimit, count: number): Promise<void> {
    try {
      await this.store.rateLimits.giveBack({ channel: state.name, count, now: Date.now(), ...rate });
    } catch (err) {
      this.logger.warn(
        { channel: state.name, tokens: count, err: errorMessage(err) },
        'could not give unused rate-limit tokens back; the channel sends below its limit until they refill',
      );
    }
  }

  /** Gives claimed but unstarted deliveries back, so another dispatcher need not wait for the lease. */
  private async release(deliveries: Claimed[]): Promise<void> {
    if (deliveries.length === 0) return;
    try {
      await this.store.deliveries.release(deliveries.map((c) => c.delivery.id));
    } catch (err) {
      this.logger.warn(
        { deliveries: deliveries.length, err: errorMessage(err) },
        'could not release claimed deliveries; their leases expire instead',
      );
    }
  }

  private async scheduleNext(state: ChannelState): Promise<void> {
    let due: number | null = null;
    try {
      due = await this.store.deliveries.nextDue(state.name);
    } catch {
      return; // The poller looks again.
    }
    if (due === null || !this.running) return;
    const at = Math.max(due, Date.now() + 5);
    if (state.timer && state.timerAt <= at) return;
    if (state.timer) clearTimeout(state.timer);
    state.timerAt = at;
    state.timer = setTimeout(() => {
      state.timer = null;
      state.drained = false;
      void this.pump(state);
    }, at - Date.now());
    state.timer.unref();
  }

  private run(state: ChannelState, { delivery, leaseUntil }: Claimed): void {
    const held: Held = { leaseUntil, abort: null, lost: false };
    this.held.set(delivery.id, held);
    state.inFlight++;
    let sent = false;
    const onSent = () => {
      sent = true;
      state.inFlight--;
      state.recording++;
      if (this.running) void this.pump(state);
    };
    const task = this.attempt(state, delivery, held, onSent)
      .catch((err) =>
        this.logger.error({ deliveryId: delivery.id, err: errorMessage(err) }, 'recording an attempt failed'),
      )
      .finally(() => {
        if (sent) state.recording--;
        else state.inFlight--;
        this.held.delete(delivery.id);
        this.inFlight.delete(task);
        if (this.running) void this.pump(state);
      });
    this.inFlight.add(task);
  }

  /** Sends one delivery, calls `onSent` when the channel is done with it, then records the outcome. */
  private async attempt(
    state: ChannelState,
    delivery: Delivery,
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
      event = this.cachedEvent(delivery.eventSeq) ?? (await this.store.events.get(delivery.eventSeq))?.event;
      if (!event) {
        result = { outcome: 'failed', reason: `event #${delivery.eventSeq} is not in the log` };
      } else {
        result = await this.send(
          state.channel,
          {
            deliveryId: delivery.id,
            idempotencyKey: delivery.idempotencyKey,
            attempt: attemptNo,
            event,
            trigger: delivery.trigger,
            action: action.params,
            recipient: delivery.recipient,
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
          result = await this.followUp(action.followUp, delivery, event, result);
        }
      }
    }
    const finishedAt = Date.now();
    const outcome = this.outcomeOf(delivery, trigger, result, attemptNo, startedAt, finishedAt);
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
    await this.recordOutcome(outcome);
    if (outcome.status === 'pending') await this.scheduleNext(state);
  }

  /**
   * One send within the channel's deadline: at `timeoutMs` its signal is aborted, and whatever
   * aborted it (the deadline, a lost lease, shutdown), the channel gets ABORT_GRACE_MS more to
   * answer before the send is taken as a retry with that reason. The slot is then free even if
   * the channel ignores its signal.
   */
  private send(
    channel: Channel,
    request: Omit<DeliveryRequest, 'signal'>,
    held: Held,
  ): Promise<ChannelResult> {
    const controller = new AbortController();
    return new Promise<ChannelResult>((resolve) => {
      let grace: NodeJS.Timeout | undefined;
      const finish = (result: ChannelResult) => {
        if (held.abort === null) return;
        held.abort = null;
        clearTimeout(deadline);
        clearTimeout(grace);
        resolve(result);
      };
      held.abort = (reason) => {
        if (controller.signal.aborted) return;
        controller.abort(reason);
        grace = setTimeout(() => finish(retry(reason.message)), ABORT_GRACE_MS);
      };
      const deadline = setTimeout(
        () => held.abort?.(new SendTimeoutError(channel.timeoutMs)),
        channel.timeoutMs,
      );
      let sending: Promise<ChannelResult>;
      try {
        sending = channel.send({ ...request, signal: controller.signal });
      } catch (err) {
        sending = Promise.reject(err);
      }
      sending.then(finish, (err: unknown) =>
        // A render error is the config's fault and will not get better by retrying.
        finish(
          err instanceof HeraldError && err.code === 'TEMPLATE_ERROR'
            ? failed(err.message)
            : retry(`channel threw: ${errorMessage(err)}`),
        ),
      );
    });
  }

  /**
   * Renews, in one statement, the leases of held deliveries that have spent a third of theirs, so
   * a send shorter than that costs no renewal. Runs every third of a lease, so a lease still has a
   * third left when it is renewed. A renewal the store refuses means another dispatcher took the
   * delivery (its lease had run out): the send is stopped. A store that cannot be reached is
   * asked again next time.
   */
  private async renewLeases(): Promise<void> {
    if (this.renewing || this.held.size === 0) return;
    const now = Date.now();
    const leaseMs = this.options.leaseMs;
    const due: { id: number; leaseUntil: number }[] = [];
    for (const [id, held] of this.held)
      if (held.leaseUntil - now < (2 * leaseMs) / 3) due.push({ id, leaseUntil: held.leaseUntil });
    if (due.length === 0) return;
    this.renewing = true;
    const until = now + leaseMs;
    try {
      const renewed = new Set(await this.store.deliveries.renewLeases(due, until));
      if (this.renewFailing) {
        this.renewFailing = false;
        this.logger.info('renewing leases works again');
      }
      for (const { id, leaseUntil } of due) {
        const held = this.held.get(id);
        // Done with meanwhile, or claimed again by this dispatcher with a lease of its own.
        if (!held || held.leaseUntil !== leaseUntil) continue;
        if (renewed.has(id)) held.leaseUntil = until;
        else if (held.abort) {
          held.lost = true;
          held.abort(
            new HeraldError('CHANNEL_ERROR', 'the lease on this delivery went to another dispatcher'),
          );
        }
      }
    } catch (err) {
      if (!this.renewFailing)
        this.logger.warn(
          { deliveries: due.length, err: errorMessage(err) },
          'renewing leases failed; trying again, and stopping any send whose lease is taken meanwhile',
        );
      this.renewFailing = true;
    } finally {
      this.renewing = false;
    }
  }

  /**
   * Emits the action's `followUp` event before the delivery is recorded as delivered. Its id comes
   * from the delivery, so a crash in between (the action is redone) cannot emit it twice.
   */
  private async followUp(
    template: TemplateTree,
    delivery: Delivery,
    event: CloudEvent,
    result: ChannelResult & { outcome: 'delivered' },
  ): Promise<ChannelResult> {
    if (nextHop(event) > MAX_FOLLOW_UP_HOPS) {
      return failed(
        `followUp: hop limit of ${MAX_FOLLOW_UP_HOPS} reached after event ${event.id} (${event.type})`,
      );
    }
    let next: CloudEvent;
    try {
      const rendered = renderTree(template, {
        event,
        recipient: delivery.recipient,
        result: result.rendered,
      });
      next = validateEvent(
        followUpDraft(event, rendered as Record<string, unknown>, {
          id: `${delivery.idempotencyKey}-next`,
          source: `herald://follow-up/${delivery.trigger}`,
          inheritData: true,
        }),
      );
    } catch (err) {
      return failed(`followUp: the follow-up event is invalid: ${errorMessage(err)}`, result.rendered);
    }
    if (!this.options.emit) return failed('followUp: events are not available here', result.rendered);
    try {
      await this.options.emit([next]);
    } catch (err) {
      return retry(
        `followUp: could not append the follow-up event: ${errorMessage(err)}`,
        undefined,
        result.rendered,
      );
    }
    return result;
  }

  private outcomeOf(
    delivery: Delivery,
    trigger: CompiledTrigger | undefined,
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
    const policy = trigger?.policy.backoff ?? DEFAULT_BACKOFF;
    // Whole milliseconds: a store may keep times as integers (PostgreSQL's BIGINT refuses 1000.5 and
    // with it the whole batch of outcomes), and a receiver's Retry-After can be any number.
    const notBefore = Number.isFinite(result.notBefore) ? Math.ceil(result.notBefore!) : 0;
    const next = Math.max(finishedAt + backoffDelay(policy, attemptNo), notBefore);
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
   * Outcomes are written in batches (group commit), one write at a time: outcomes that arrive
   * while a batch is being written form the next one. Each send waits for its own to be durable.
   */
  private recordOutcome(outcome: AttemptOutcome): Promise<void> {
    return new Promise((done, fail) => {
      this.pendingOutcomes.push({ outcome, done, fail });
      if (!this.flushScheduled && !this.writingOutcomes) {
        this.flushScheduled = true;
        setImmediate(() => void this.flushOutcomes());
      }
    });
  }

  private async flushOutcomes(): Promise<void> {
    this.flushScheduled = false;
    while (this.writingOutcomes) await this.writingOutcomes;
    const batch = this.pendingOutcomes;
    if (batch.length === 0) return;
    this.pendingOutcomes = [];
    this.writingOutcomes = this.store.deliveries.record(batch.map((b) => b.outcome)).then(
      () => {
        for (const b of batch) b.done();
      },
      (err) => {
        for (const b of batch) b.fail(err);
      },
    );
    await this.writingOutcomes;
    this.writingOutcomes = null;
    if (this.pendingOutcomes.length > 0 && !this.flushScheduled) await this.flushOutcomes();
  }
}

/** Sends the channel may start now: slots not sending, and room among outcomes being recorded. */
function freeSlots(state: ChannelState): number {
  const limit = state.channel.concurrency;
  return Math.min(limit - state.inFlight, 2 * limit - state.inFlight - state.recording);
}
