import type { Logger } from 'pino';
import type { Bus, BusHealth, RouteHandler } from '../engine/bus.js';
import type { Store } from '../engine/store.js';
import { errorMessage } from '../errors.js';

/**
 * The single-process bus: the store's log is the queue. Ingest wakes the router loop, which reads
 * unrouted events in order; a timer looks again now and then for events appended by anyone else
 * (e.g. an ingest-only process on the same PostgreSQL).
 */
export class EmbeddedBus implements Bus {
  readonly kind = 'embedded';
  private wake: (() => void) | null = null;
  private requested = false;
  private running = false;
  private loop: Promise<void> | null = null;
  /** The last look found nothing unrouted (so ingest may route new events itself). */
  caughtUp = false;

  constructor(
    private readonly store: Store,
    private readonly logger: Logger,
    private readonly batch = 500,
    private readonly idleMs = 1000,
  ) {}

  async start(): Promise<void> {}

  publish(): void {
    // Stored unrouted: ingest must not route newer events ahead of these.
    this.caughtUp = false;
    this.requested = true;
    this.wake?.();
  }

  consume(handler: RouteHandler): void {
    this.running = true;
    this.loop = this.run(handler);
  }

  async stopConsuming(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  /**
   * Nobody to tell: the only dispatcher it could reach is this process's, which the engine hands
   * its deliveries to (or wakes) itself where it routes them. Waking it again here made it claim
   * what it had just been handed, and find nothing.
   */
  announce(): void {}

  onAnnounce(): void {}

  health(): BusHealth {
    return { ok: true, state: 'connected', detail: 'in this process, on the store' };
  }

  async close(): Promise<void> {
    await this.stopConsuming();
  }

  private async run(handler: RouteHandler): Promise<void> {
    // After a stop, events already requested are still routed: nothing stored is left behind.
    while (this.running || this.requested) {
      this.requested = false;
      try {
        const events = await this.store.events.unrouted(this.batch);
        this.caughtUp = events.length === 0;
        if (events.length > 0) {
          await handler(events);
          this.requested = true;
          continue;
        }
      } catch (err) {
        this.logger.error({ err: errorMessage(err) }, 'routing failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
        if (!this.running) return;
        continue;
      }
      if (!this.running) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.idleMs);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = () => {
          this.wake = null;
          done();
        };
        if (this.requested) this.wake();
      });
    }
  }
}
