/** The label value that every value past the bound is counted under. */
export const OTHER = 'other';

/**
 * Values chosen by whoever sends an event (its `type`, its CloudEvent `source`) bounded for use
 * as metric labels or counter keys: the first `limit` distinct values keep their name, later
 * ones, and any longer than `maxLength`, become `other`. Without a bound, a sender inventing a
 * new type per event grows every scrape and Herald's memory without end.
 */
export class BoundedValues {
  private readonly seen = new Set<string>();

  constructor(
    readonly limit = 100,
    readonly maxLength = 120,
  ) {}

  of(value: string): string {
    if (this.seen.has(value)) return value;
    if (this.seen.size >= this.limit || value.length > this.maxLength) return OTHER;
    this.seen.add(value);
    return value;
  }
}

/**
 * Two sender-chosen labels together (source × type): each bounded, and their combinations too,
 * since 100 sources × 100 types would still be 10,000 series.
 */
export class BoundedPairs {
  private readonly firsts: BoundedValues;
  private readonly seconds: BoundedValues;
  /** The pairs seen, by first value: looked up without building a key per event. */
  private readonly pairs = new Map<string, Set<string>>();
  private pairCount = 0;

  constructor(
    limitEach = 100,
    private readonly limitPairs = 200,
  ) {
    this.firsts = new BoundedValues(limitEach);
    this.seconds = new BoundedValues(limitEach);
  }

  /** Calls `count` with the pair as counted, allocating nothing once the pair is known. */
  count(first: string, second: string, count: (a: string, b: string) => void): void {
    const a = this.firsts.of(first);
    const b = this.seconds.of(second);
    if (this.admits(a, b)) count(a, b);
    else count(OTHER, OTHER);
  }

  private admits(a: string, b: string): boolean {
    const seen = this.pairs.get(a);
    if (seen?.has(b)) return true;
    if (this.pairCount >= this.limitPairs) return false;
    if (seen) seen.add(b);
    else this.pairs.set(a, new Set([b]));
    this.pairCount++;
    return true;
  }
}
