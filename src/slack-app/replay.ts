/** Slack's window: a request is valid for 5 minutes either side of its timestamp. */
export const SLACK_WINDOW_S = 300;

/**
 * Signatures of Slack requests already handled, until their timestamp leaves the 5-minute window
 * (after which the signature check refuses them anyway). Bounded: past `capacity` entries the
 * oldest are dropped first. It lives in this process: behind a load balancer spreading Slack's
 * requests over several Herald processes, each process only knows the requests it handled.
 */
export class SeenSignatures {
  /** Signature → the epoch second its request stops being valid; insertion order is arrival. */
  private readonly expiries = new Map<string, number>();

  constructor(private readonly capacity = 50_000) {}

  /** True the first time a signature is seen within its window; false for a replay. */
  firstTime(signature: string, timestampSeconds: number, nowMs = Date.now()): boolean {
    const now = Math.floor(nowMs / 1000);
    const known = this.expiries.get(signature);
    if (known !== undefined && known >= now) return false;
    this.expiries.delete(signature);
    this.sweep(now);
    this.expiries.set(signature, timestampSeconds + SLACK_WINDOW_S);
    return true;
  }

  get size(): number {
    return this.expiries.size;
  }

  private sweep(now: number): void {
    // Arrival order is nearly expiry order (timestamps are within 5 minutes of arrival), so
    // expired entries sit at the front: stop at the first live one.
    for (const [signature, expiry] of this.expiries) {
      if (expiry >= now && this.expiries.size < this.capacity) break;
      this.expiries.delete(signature);
    }
  }
}
