/**
 * Gathers items that arrive close together (in the same tick, or while the previous batch is
 * still being handled) and hands them to `handle` one batch at a time, in arrival order. Under
 * load batches grow by themselves, which is what makes group commit pay off for message sources.
 */
export class TickBatcher<T> {
  private pending: T[] = [];
  private running: Promise<void> | null = null;
  private scheduled = false;

  constructor(
    private readonly handle: (items: T[]) => Promise<void>,
    private readonly maxBatch = 1000,
  ) {}

  push(item: T): void {
    this.pending.push(item);
    this.schedule();
  }

  get size(): number {
    return this.pending.length;
  }

  /** Resolves once every item pushed so far has been handled. */
  async idle(): Promise<void> {
    while (this.running || this.scheduled || this.pending.length > 0) {
      await (this.running ?? new Promise((resolve) => setImmediate(resolve)));
    }
  }

  /** Removes and returns the items not yet handed over. */
  take(): T[] {
    return this.pending.splice(0);
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.run();
    });
  }

  private run(): void {
    if (this.running || this.pending.length === 0) return;
    this.running = (async () => {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, this.maxBatch);
        // `handle` reports its own failures; one bad batch must not stop the next.
        await this.handle(batch).catch(() => undefined);
      }
    })().finally(() => {
      this.running = null;
      if (this.pending.length > 0) this.schedule();
    });
  }
}
