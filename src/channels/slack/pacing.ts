/** Slack channels remembered before those whose turn is past are dropped. */
const SWEEP_AT = 10_000;

/**
 * When each Slack channel may next get a message: one per `intervalMs` per channel, whatever the
 * other channels do. A channel whose turn is past is the same as one never seen, so once many are
 * remembered those are dropped: recipients come from event data, and a new one each time must
 * not cost memory for good.
 */
export class ChannelTurns {
  private readonly next = new Map<string, number>();

  constructor(
    private readonly intervalMs: number,
    private readonly sweepAt = SWEEP_AT,
  ) {}

  /** Takes the channel's next turn: the epoch ms at which its message may go. */
  take(channel: string, now: number): number {
    if (this.next.size >= this.sweepAt) for (const [c, at] of this.next) if (at <= now) this.next.delete(c);
    const at = Math.max(now, this.next.get(channel) ?? 0);
    this.next.set(channel, at + this.intervalMs);
    return at;
  }

  /** Channels remembered. */
  get size(): number {
    return this.next.size;
  }
}
