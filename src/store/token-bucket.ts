/**
 * Token bucket arithmetic shared by the stores (PostgreSQL does the same in SQL, see its
 * `rateLimits`). Tokens are fractional; a send takes one whole token.
 */

/**
 * Slack when flooring tokens into grants: the refill time `nextTokenAt` reports is rounded up to a
 * whole ms, but the refill computed at that time may still land a hair under 1 in floating point.
 */
export const TOKEN_SLACK = 1e-9;

export interface Bucket {
  tokens: number;
  /** Epoch ms the tokens were computed for. */
  refilledAt: number;
}

/** The bucket at `now`: refilled for the time since, capped at `burst`. Never runs backwards. */
export function refilled(bucket: Bucket | undefined, now: number, perSecond: number, burst: number): Bucket {
  if (!bucket) return { tokens: burst, refilledAt: now };
  const elapsed = Math.max(0, now - bucket.refilledAt);
  return {
    tokens: Math.min(burst, bucket.tokens + (elapsed * perSecond) / 1000),
    refilledAt: Math.max(bucket.refilledAt, now),
  };
}

export const grantable = (tokens: number, wanted: number): number =>
  Math.max(0, Math.min(Math.floor(wanted), Math.floor(tokens + TOKEN_SLACK)));

/** When the bucket next holds a whole token (its `refilledAt` when it holds one now). */
export function nextTokenAt(bucket: Bucket, perSecond: number): number {
  if (bucket.tokens + TOKEN_SLACK >= 1) return bucket.refilledAt;
  return bucket.refilledAt + Math.ceil(((1 - bucket.tokens) * 1000) / perSecond);
}
