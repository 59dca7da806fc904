import type { StoredEvent } from './store.js';

/** What /readyz and `herald doctor` say about the bus. */
export interface BusHealth {
  ok: boolean;
  /** `connected`, `reconnecting`, `closed`… */
  state: string;
  detail: string;
}

/** Routes a batch; resolves once the plan is durable in the store (then the bus may forget it). */
export type RouteHandler = (batch: StoredEvent[]) => Promise<void>;

/**
 * Carries stored events from ingest to the routers. The store stays the event of record (dedup,
 * history, replay); the bus decides which router routes which event and wakes it. `embedded`
 * does this in one process by reading the store; `jetstream` through a shared durable consumer,
 * so any number of processes route each event once.
 */
export interface Bus {
  readonly kind: string;
  /**
   * Set only by a bus that routes in this process from the store's log: its last look found
   * nothing unrouted, so ingest may plan new events itself without overtaking older ones.
   */
  readonly caughtUp?: boolean;
  /** Connects and prepares what the bus needs (stream, consumer). Throws a clear error when it cannot. */
  start(): Promise<void>;
  /** Events just made durable in the store. Never throws: what is not published is recovered later. */
  publish(events: StoredEvent[]): void;
  /** Starts routing: `handler` gets batches until `stopConsuming`. */
  consume(handler: RouteHandler): void;
  /** Finishes the batch in hand (and, for `embedded`, everything already stored), then stops. */
  stopConsuming(): Promise<void>;
  /** Tells the dispatchers of every process that new deliveries wait on these channels. */
  announce(channels: Iterable<string>): void;
  /** Called with a channel name when some process announced work on it. */
  onAnnounce(listener: (channel: string) => void): void;
  health(): BusHealth;
  /** Waits for pending publishes, then disconnects. */
  close(): Promise<void>;
}
