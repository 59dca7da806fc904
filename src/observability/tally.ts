import type { Counter } from 'prom-client';

/**
 * Counts by up to two label values, kept in plain maps until prom-client collects them (at each
 * scrape, or any read of the counter). prom-client builds a key string from the labels on every
 * `inc`; events and attempts count several times each, so the hot path does a map lookup and an
 * addition instead, and the counter gets each sum once per scrape. The label values must already
 * be bounded: every pair seen keeps its entry.
 */
export class Tally {
  private readonly counts = new Map<string, Map<string, number>>();

  /** `names`: the counter's label names, in the order `add` takes their values. */
  constructor(private readonly names: readonly [string] | readonly [string, string]) {}

  add(first: string, second = '', n = 1): void {
    let bySecond = this.counts.get(first);
    if (!bySecond) {
      bySecond = new Map();
      this.counts.set(first, bySecond);
    }
    bySecond.set(second, (bySecond.get(second) ?? 0) + n);
  }

  /** Moves the sums into `counter`: call from the counter's `collect`. */
  flushInto(counter: Counter<string>): void {
    const [firstName, secondName] = this.names;
    for (const [first, bySecond] of this.counts)
      for (const [second, n] of bySecond) {
        if (n === 0) continue;
        bySecond.set(second, 0);
        counter.inc(
          secondName === undefined ? { [firstName]: first } : { [firstName]: first, [secondName]: second },
          n,
        );
      }
  }
}
