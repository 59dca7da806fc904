import type { Logger } from 'pino';
import type { Store, StoredEvent } from '../../engine/store.js';
import { errorMessage } from '../../errors.js';

/**
 * Publishes again what was stored but never routed (a crash between store and publish, a publish
 * that failed): events still unrouted `recoverAfterMs` after they were stored. Looks every third
 * of that, and at most once a second.
 */
export class RecoverySweep {
  private timer: NodeJS.Timeout | null = null;
  private sweeping = false;

  constructor(
    private readonly store: Store,
    private readonly recoverAfterMs: number,
    private readonly logger: Logger,
    /** Whether publishing can work now (NATS connected). */
    private readonly canPublish: () => boolean,
    private readonly publish: (events: StoredEvent[]) => void,
  ) {}

  start(): void {
    const every = Math.max(1000, Math.floor(this.recoverAfterMs / 3));
    this.timer = setInterval(() => void this.sweep(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async sweep(): Promise<void> {
    if (this.sweeping || !this.canPublish()) return;
    this.sweeping = true;
    try {
      const before = Date.now() - this.recoverAfterMs;
      const stale = (await this.store.events.unrouted(1000)).filter((e) => e.receivedAt < before);
      if (stale.length > 0) {
        this.logger.info({ events: stale.length }, 'publishing stored events that were never routed');
        this.publish(stale);
      }
    } catch (err) {
      this.logger.debug({ err: errorMessage(err) }, 'recovery sweep failed');
    } finally {
      this.sweeping = false;
    }
  }
}
