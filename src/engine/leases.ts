import type { Logger } from 'pino';
import { errorMessage, HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import type { Delivery, Store } from './store.js';

/** A claimed delivery and the lease this dispatcher holds on it. */
export interface Claimed {
  delivery: Delivery;
  leaseUntil: number;
  /** The delivery's event, when ingest handed it over with the delivery (no read, no cache; small events only). */
  event?: CloudEvent;
}

/**
 * A delivery this dispatcher is sending, or whose outcome waits to be written. The lease is
 * renewed meanwhile, and claims skip the delivery, so it is never in flight twice.
 */
export interface Held {
  /** The lease as this dispatcher last set it: what a renewal must find in the store. */
  leaseUntil: number;
  /** Aborts the send (its deadline, a lost lease, shutdown); null once the channel is done. */
  abort: ((reason: Error) => void) | null;
  /** The lease went to another dispatcher: the outcome of this send is not ours to write. */
  lost: boolean;
  /** The channel is done with the send; only its outcome is left to write. */
  sent: boolean;
}

/**
 * The deliveries this dispatcher holds, by id, and the timer that keeps their leases: a send that
 * outlasts its lease would otherwise be claimed and sent again by another dispatcher.
 */
export class Leases {
  private readonly held = new Map<number, Held>();
  private renewer: NodeJS.Timeout | null = null;
  private renewing = false;
  /** Renewals are failing (the store is down): logged once when it starts and once when it ends. */
  private renewFailing = false;

  constructor(
    private readonly store: Store,
    private readonly leaseMs: number,
    private readonly logger: Logger,
  ) {}

  /** Renews every third of a lease, so a lease still has a third left when it is renewed. */
  startRenewing(): void {
    this.renewer = setInterval(() => void this.renew(), this.leaseMs / 3);
    this.renewer.unref();
  }

  stopRenewing(): void {
    if (this.renewer) clearInterval(this.renewer);
  }

  hold(id: number, leaseUntil: number): Held {
    const held: Held = { leaseUntil, abort: null, lost: false, sent: false };
    this.held.set(id, held);
    return held;
  }

  /** The delivery's outcome is written (or given up on): its lease is no longer kept. */
  forget(id: number): void {
    this.held.delete(id);
  }

  isHeld(id: number): boolean {
    return this.held.has(id);
  }

  /**
   * The claimed deliveries that may start, and those to give back at once. One still being sent
   * here had its lease run out (renewals failed), and the claim took it again for the send under
   * way, which must not get a twin: it keeps the new lease and is left out. One whose send is over
   * was claimed because its outcome is already written (a retry due soon) while that write waits for
   * the disk: the lease the claim just took is given back, or it would sit unused until it expires
   * and hold the retry back that long.
   */
  startable(claimed: Delivery[], leaseUntil: number): { startable: Claimed[]; giveBack: Claimed[] } {
    const startable: Claimed[] = [];
    const giveBack: Claimed[] = [];
    for (const delivery of claimed) {
      const held = this.held.get(delivery.id);
      if (!held) startable.push({ delivery, leaseUntil });
      else if (held.sent) giveBack.push({ delivery, leaseUntil });
      else held.leaseUntil = leaseUntil;
    }
    return { startable, giveBack };
  }

  /** Gives claimed but unstarted deliveries back, so another dispatcher need not wait for the lease. */
  async release(deliveries: Claimed[]): Promise<void> {
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

  /** Cuts every send still under way short (the shutdown deadline passed). */
  abortAll(reason: Error): void {
    for (const held of this.held.values()) held.abort?.(reason);
  }

  /**
   * Renews, in one statement, the leases of held deliveries that have spent a third of theirs, so
   * a send shorter than that costs no renewal. A renewal the store refuses means another
   * dispatcher took the delivery (its lease had run out): the send is stopped. A store that cannot
   * be reached is asked again next time.
   */
  private async renew(): Promise<void> {
    if (this.renewing || this.held.size === 0) return;
    const now = Date.now();
    const leaseMs = this.leaseMs;
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
}
