import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import type { Claimed } from './leases.js';
import type { RateLimit } from './model.js';
import type { Delivery, Store } from './store.js';
import type { Channel } from './types.js';

/** Leased deliveries a busy channel keeps waiting for a slot, in multiples of its concurrency. */
const CLAIM_AHEAD = 3;

/** How a pump tells its dispatcher that a send it started is done with. */
export interface SendSlot {
  /** The channel is done with the send; its outcome waits to be written. */
  sent(): void;
  /** The outcome is written (or writing it failed): the send is over. */
  finished(): void;
}

/** What a pump needs from its dispatcher: the claims, the leases and the sends themselves. */
export interface PumpHost {
  /** False once the dispatcher stops: nothing more is claimed or started. */
  isRunning(): boolean;
  /** Leases up to `limit` due deliveries of the channel, leaving out those sent here already. */
  claim(channel: string, limit: number): Promise<Claimed[]>;
  /**
   * Leases deliveries routed in this process, durable now, without reading them back (see
   * DeliveryStore.leaseRouted); those it cannot are left out.
   */
  lease(deliveries: Delivery[], events: ReadonlyMap<number, CloudEvent>): Claimed[];
  /** Gives claimed but unstarted deliveries back. */
  release(claimed: Claimed[]): Promise<void>;
  isHeld(deliveryId: number): boolean;
  /** Sends one delivery, reporting through `slot`. */
  start(pump: ChannelPump, claimed: Claimed, slot: SendSlot): void;
}

export interface ChannelPumpOptions {
  name: string;
  channel: Channel;
  /** The channel's `rateLimit`; null when unlimited. */
  rateLimit: RateLimit | null;
  store: Store;
  leaseMs: number;
  logger: Logger;
  host: PumpHost;
}

/**
 * Keeps one channel busy: claims its due deliveries and starts them, at most `concurrency` at
 * once, within its rate limit, and sleeps until the next one is due when it has caught up. Each
 * channel has its own, so a slow or failing channel never holds another back.
 */
export class ChannelPump {
  readonly name: string;
  readonly channel: Channel;
  private readonly rateLimit: RateLimit | null;
  private readonly store: Store;
  private readonly leaseMs: number;
  private readonly logger: Logger;
  private readonly host: PumpHost;
  /** Sends under way: at most the channel's `concurrency`. */
  private inFlight = 0;
  /**
   * Sends finished whose outcome is waiting for its group commit. They give their slot back at
   * once, since the receiver is done with them, but at most `concurrency` of them wait, so a slow
   * store slows sending rather than piling outcomes up in memory.
   */
  private recording = 0;
  /** Claimed (leased) deliveries waiting for a free slot: claiming in batches saves a query per send. */
  private ready: Claimed[] = [];
  private claiming = false;
  /** A wake-up came during a claim whose query may have run before the new work was committed. */
  private wokenWhileClaiming = false;
  /**
   * The last claim found less than it asked for (rate-limited or not): nothing more is due until
   * something says so (a wake-up from routing or a replay, the retry timer, the poller), so
   * finished sends do not ask.
   */
  private drained = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  /** While a rate-limited channel's bucket is empty: when its next token is due (0 otherwise). */
  private tokensAt = 0;
  private tokenTimer: NodeJS.Timeout | null = null;
  /** Claims are failing (the store is down): logged once when it starts and once when it ends. */
  private claimFailing = false;

  constructor(options: ChannelPumpOptions) {
    this.name = options.name;
    this.channel = options.channel;
    this.rateLimit = options.rateLimit;
    this.store = options.store;
    this.leaseMs = options.leaseMs;
    this.logger = options.logger;
    this.host = options.host;
  }

  /** Something may be due (new deliveries, a replay): look now. */
  wake(): void {
    this.drained = false;
    void this.pump();
  }

  /**
   * Deliveries this process just routed to the channel, on disk now. A pump that has caught up
   * (its last claim found all there was) takes the due ones as they are, up to its buffer: no
   * claim query, no read of rows it already has, and nothing between the commit and the send.
   * Otherwise older deliveries may be waiting in the store, and they go first: the pump claims.
   * `events` are their events by seq, sent with them. Returns what it took.
   */
  offer(deliveries: Delivery[], events: ReadonlyMap<number, CloudEvent>): readonly Claimed[] {
    if (!this.host.isRunning()) return [];
    if (this.rateLimit || this.claiming || !this.drained) {
      this.wake();
      return [];
    }
    const now = Date.now();
    const room = (1 + CLAIM_AHEAD) * this.channel.concurrency - this.inFlight - this.ready.length;
    const due: Delivery[] = [];
    for (const d of deliveries) {
      if (due.length >= room) break;
      if (d.nextAttemptAt <= now) due.push(d);
    }
    const taken = due.length > 0 ? this.host.lease(due, events) : [];
    for (const claimed of taken) this.ready.push(claimed);
    this.startReady();
    // The rest (not due yet, no room, or taken by a claim first) is the store's to hand out.
    if (taken.length < deliveries.length) this.wake();
    return taken;
  }

  /** Stops the pump's timers and hands back what was claimed but not started, for release. */
  stop(): Claimed[] {
    if (this.timer) clearTimeout(this.timer);
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    return this.ready.splice(0);
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
  private async pump(): Promise<void> {
    if (!this.host.isRunning()) return;
    if (this.rateLimit) return this.pumpLimited(this.rateLimit);
    const limit = this.channel.concurrency;
    this.startReady();
    if (this.claiming) {
      this.wokenWhileClaiming = true;
      return;
    }
    if (this.ready.length > (CLAIM_AHEAD / 2) * limit || this.drained) return;
    const wanted = (1 + CLAIM_AHEAD) * limit - this.inFlight - this.ready.length;
    if (wanted <= 0) return;
    this.claiming = true;
    this.wokenWhileClaiming = false;
    let claimed: Claimed[] = [];
    try {
      claimed = await this.host.claim(this.name, wanted);
      this.claimSucceeded();
    } catch (err) {
      this.claimFailed(err);
    } finally {
      this.claiming = false;
    }
    if (!this.host.isRunning()) {
      await this.host.release(claimed);
      return;
    }
    this.ready.push(...claimed);
    this.startReady();
    // A claim that found only deliveries already under way here found as much as it asked for.
    if (claimed.length === wanted || this.wokenWhileClaiming) void this.pump();
    else {
      this.drained = true;
      await this.scheduleNext();
    }
  }

  /**
   * While the store is unreachable every poll fails the same way: one error when it starts and
   * one line when claims work again, rather than a line per channel every poll interval.
   */
  private claimFailed(err: unknown): void {
    if (this.claimFailing) {
      this.logger.debug({ channel: this.name, err: errorMessage(err) }, 'claiming deliveries still failing');
      return;
    }
    this.claimFailing = true;
    this.logger.error({ channel: this.name, err: errorMessage(err) }, 'claiming deliveries failed');
  }

  private claimSucceeded(): void {
    if (!this.claimFailing) return;
    this.claimFailing = false;
    this.logger.info({ channel: this.name }, 'claiming deliveries works again');
  }

  /** Sends the channel may start now: slots not sending, and room among outcomes being recorded. */
  private freeSlots(): number {
    const limit = this.channel.concurrency;
    return Math.min(limit - this.inFlight, 2 * limit - this.inFlight - this.recording);
  }

  /**
   * Starts ready deliveries while slots are free. One whose lease is mostly spent (a very busy
   * process) is left alone: another dispatcher may claim it as soon as the lease ends, and two
   * sends of one delivery at once is what leases exist to prevent.
   */
  private startReady(): void {
    const margin = this.leaseMs / 2;
    while (this.freeSlots() > 0 && this.ready.length > 0) {
      const claimed = this.ready.shift()!;
      if (claimed.leaseUntil - Date.now() < margin || this.host.isHeld(claimed.delivery.id)) continue;
      this.run(claimed);
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
  private async pumpLimited(rate: RateLimit): Promise<void> {
    if (this.claiming) {
      this.wokenWhileClaiming = true;
      return;
    }
    if (this.drained) return;
    const limit = this.channel.concurrency;
    const free = this.freeSlots();
    // Batches as the ready buffer does for unlimited channels: one take and one claim per half
    // of the slots, rather than per finished send.
    if (free <= 0 || (this.inFlight > 0 && free < Math.ceil(limit / 2))) return;
    if (Date.now() < this.tokensAt) return; // The token timer pumps then.
    this.claiming = true;
    this.wokenWhileClaiming = false;
    let taken: { granted: number; nextAt: number } | null = null;
    let claimed: Claimed[] = [];
    try {
      taken = await this.store.rateLimits.take({
        channel: this.name,
        wanted: free,
        now: Date.now(),
        ...rate,
      });
      if (taken.granted > 0 && this.host.isRunning())
        claimed = await this.host.claim(this.name, taken.granted);
      this.claimSucceeded();
    } catch (err) {
      this.claimFailed(err);
    } finally {
      this.claiming = false;
    }
    if (!this.host.isRunning()) {
      await this.host.release(claimed);
      claimed = [];
    }
    const granted = taken?.granted ?? 0;
    if (granted > claimed.length) await this.giveBack(rate, granted - claimed.length);
    if (!this.host.isRunning() || !taken) return; // On an error the poller looks again.
    for (const c of claimed) this.run(c);
    if (granted === 0) this.waitForToken(taken.nextAt);
    else if (claimed.length < granted) {
      // Fewer due than granted: the channel has caught up.
      if (this.wokenWhileClaiming) void this.pump();
      else {
        this.drained = true;
        await this.scheduleNext();
      }
    } else if (granted < free) this.waitForToken(taken.nextAt);
    else void this.pump();
  }

  private waitForToken(at: number): void {
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    this.tokensAt = at;
    this.tokenTimer = setTimeout(
      () => {
        this.tokenTimer = null;
        this.tokensAt = 0;
        void this.pump();
      },
      Math.max(1, at - Date.now()),
    );
    this.tokenTimer.unref();
  }

  /**
   * Tokens come back one claim after they were taken. Had the bucket filled up meanwhile, that
   * lets at most `perSecond ×` the claim's duration more through, once.
   */
  private async giveBack(rate: RateLimit, count: number): Promise<void> {
    try {
      await this.store.rateLimits.giveBack({ channel: this.name, count, now: Date.now(), ...rate });
    } catch (err) {
      this.logger.warn(
        { channel: this.name, tokens: count, err: errorMessage(err) },
        'could not give unused rate-limit tokens back; the channel sends below its limit until they refill',
      );
    }
  }

  /** Sets the timer for the channel's next due delivery (a retry), unless one is set sooner. */
  async scheduleNext(): Promise<void> {
    let due: number | null = null;
    try {
      due = await this.store.deliveries.nextDue(this.name);
    } catch {
      return; // The poller looks again.
    }
    if (due === null || !this.host.isRunning()) return;
    const at = Math.max(due, Date.now() + 5);
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.drained = false;
      void this.pump();
    }, at - Date.now());
    this.timer.unref();
  }

  /**
   * Takes a slot for the send. It is given back as soon as the channel is done, though the
   * outcome still waits to be written, and then only counts among those being recorded.
   */
  private run(claimed: Claimed): void {
    this.inFlight++;
    let sent = false;
    this.host.start(this, claimed, {
      sent: () => {
        sent = true;
        this.inFlight--;
        this.recording++;
        if (this.host.isRunning()) void this.pump();
      },
      finished: () => {
        if (sent) this.recording--;
        else this.inFlight--;
        if (this.host.isRunning()) void this.pump();
      },
    });
  }
}
