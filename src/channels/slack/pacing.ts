/** Slack channels remembered before those whose turn is past are dropped. */
const SWEEP_AT = 10_000;

/**
 * When each Slack channel may next get a message: one per `intervalMs` per channel, whatever the
 * other channels do. A channel whose turn is past is the same as one never seen, so once many are
 * remembered those are dropped: recipients come from event data, and a new one each time must
 * not cost memory for good. Should most still be waiting, the next sweep comes only once as many
 * again are remembered, so sweeping costs each message a constant share, not a walk of them all.
 */
export class ChannelTurns {
  private readonly next = new Map<string, number>();
  private sweepAt: number;
  /** Times the remembered channels were walked to drop past turns. */
  sweeps = 0;

  constructor(
    private readonly intervalMs: number,
    private readonly minSweepAt = SWEEP_AT,
  ) {
    this.sweepAt = minSweepAt;
  }

  /** Takes the channel's next turn: the epoch ms at which its message may go. */
  take(channel: string, now: number): number {
    if (this.next.size >= this.sweepAt) {
      for (const [c, at] of this.next) if (at <= now) this.next.delete(c);
      this.sweepAt = Math.max(this.minSweepAt, 2 * this.next.size);
      this.sweeps++;
    }
    const at = Math.max(now, this.next.get(channel) ?? 0);
    this.next.set(channel, at + this.intervalMs);
    return at;
  }

  /** Channels remembered. */
  get size(): number {
    return this.next.size;
  }
}
