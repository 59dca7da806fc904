/** A pending delivery's place in a channel's claim order (the deliveries_due index). */
export interface DueKey {
  nextAttemptAt: number;
  id: number;
}

const before = (a: DueKey, b: DueKey): boolean =>
  a.nextAttemptAt < b.nextAttemptAt || (a.nextAttemptAt === b.nextAttemptAt && a.id < b.id);

/**
 * Where each channel's next claim resumes in due order. Every pending, due delivery of the channel
 * that sorts before its cursor is leased here, so a claim starts at the cursor instead of walking
 * past every delivery already being sent (under load, hundreds per claim: the buffer of claimed
 * deliveries, the sends in flight and the outcomes waiting for their commit).
 *
 * Anything that may put a claimable delivery before a cursor forgets that cursor, and the next
 * claim walks the channel from the start again: a delivery inserted or rescheduled there, a lease
 * released, and a lease running out (checked against a lower bound of every lease's end, so an
 * expired lease is found within one walk of expiring).
 */
export class ClaimCursors {
  private readonly cursors = new Map<string, DueKey>();
  /** No lease ends before this. */
  private leaseFloor = Number.POSITIVE_INFINITY;

  /** Where the channel's claim starts; null means from the beginning. */
  from(channel: string, now: number, leases: ReadonlyMap<number, number>): DueKey | null {
    if (now >= this.leaseFloor) {
      this.cursors.clear();
      this.leaseFloor = Number.POSITIVE_INFINITY;
      for (const until of leases.values()) if (until < this.leaseFloor) this.leaseFloor = until;
    }
    return this.cursors.get(channel) ?? null;
  }

  /** Everything up to `key` is leased here (or gone from the pending deliveries). */
  advance(channel: string, key: DueKey | null): void {
    if (key) this.cursors.set(channel, key);
  }

  /** A lease was taken or renewed until `until`. */
  leased(until: number): void {
    if (until < this.leaseFloor) this.leaseFloor = until;
  }

  /** A pending delivery of `channel` now sorts at `key`. */
  placed(channel: string, key: DueKey): void {
    const cursor = this.cursors.get(channel);
    if (cursor && before(key, cursor)) this.cursors.delete(channel);
  }

  /** A pending delivery of some channel now sorts at `key`. */
  placedSomewhere(key: DueKey): void {
    for (const [channel, cursor] of this.cursors) if (before(key, cursor)) this.cursors.delete(channel);
  }

  /** Leases were given up or deliveries made pending again where the channel is not known. */
  forgetAll(): void {
    this.cursors.clear();
  }
}
