/** How long to wait between a delivery's attempts. */
export interface BackoffPolicy {
  kind: 'exponential' | 'fixed';
  /** Delay before the second attempt. */
  initialMs: number;
  /** Longest delay between attempts. */
  maxMs: number;
  /** Growth per attempt (exponential). */
  multiplier: number;
  /** Fraction of the delay randomised away (0 = none). */
  jitter: number;
}

/**
 * The retry backoff a trigger gets when its config leaves any of it out. The only place these
 * numbers are written: the config schema's defaults, and so docs/configuration.md, read them here.
 */
export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = Object.freeze({
  kind: 'exponential',
  initialMs: 1000,
  maxMs: 300_000,
  multiplier: 2,
  jitter: 0.2,
});

/**
 * Delay before the attempt after `attempt` (1-based) under the policy: exponential or fixed,
 * capped at maxMs, with up to `jitter` of it randomised away so retries from many deliveries
 * do not arrive at the sink in lockstep.
 */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base =
    policy.kind === 'fixed'
      ? policy.initialMs
      : policy.initialMs * policy.multiplier ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxMs, base);
  return Math.round(capped * (1 - policy.jitter * random()));
}
