import { createRequire } from 'node:module';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import type { Logger } from 'pino';

/**
 * The checkpointing thread's code. Evaluated as CommonJS so that it runs the same whether the
 * store was loaded from TypeScript sources or from the build.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
let db = null;
parentPort.on('message', (message) => {
  if (message === 'close') {
    try { db?.close(); } catch {}
    db = null;
    parentPort.postMessage({ closed: true });
    return;
  }
  try {
    db ??= new Database(workerData.path, { fileMustExist: true });
    db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({});
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message) });
  }
});
`;

interface Reply {
  error?: string;
  closed?: boolean;
}

/**
 * Copies the WAL into the database file on a thread of its own, with its own connection.
 *
 * SQLite checkpoints on the connection that commits, once the WAL passes its threshold: the copy
 * and the database file's fsync then run inside a commit on the event loop, which every request
 * and send waits behind. Here a PASSIVE checkpoint (it never blocks the writer) runs after
 * commits, at most one at a time and one per `intervalMs`. The next write restarts the WAL from
 * its top when a checkpoint has caught up with it and no commit came meanwhile, which under
 * steady writes is seldom: then the writer's own threshold restarts it, having little left to
 * copy (docs/architecture.md). That threshold is also the bound should this thread fail.
 * Durability is SQLite's: a checkpoint syncs the WAL before it copies and the database after.
 */
export class WalCheckpointer {
  /** Started with the first checkpoint: a store that is only read needs no thread. */
  private worker: Worker | null = null;
  private running = false;
  private lastStartedAt = 0;
  private closed = false;
  private failing = false;
  private onClosed: (() => void) | null = null;

  constructor(
    private readonly path: string,
    private readonly logger: Logger | undefined,
    private readonly intervalMs: number,
    /** Starts the thread; tests replace it to see what a thread that cannot start does. */
    private readonly spawn: (source: string, options: WorkerOptions) => Worker = (source, options) =>
      new Worker(source, options),
  ) {}

  /**
   * A write was committed: checkpoint unless one is running or one started recently. Never
   * throws: it runs after the commit, whose callers must get their answer whatever happens here.
   */
  committed(now = Date.now()): void {
    if (this.closed || this.running || now - this.lastStartedAt < this.intervalMs) return;
    try {
      this.worker ??= this.start();
      this.worker.postMessage('checkpoint');
    } catch (err) {
      this.stopped((err as Error).message);
      return;
    }
    this.running = true;
    this.lastStartedAt = now;
  }

  /** Closes the thread's connection first, so the writer's close is the last and removes the WAL. */
  close(): Promise<void> {
    const worker = this.worker;
    if (this.closed || !worker) {
      this.closed = true;
      return Promise.resolve();
    }
    this.closed = true;
    return new Promise<void>((resolve) => {
      this.onClosed = () => {
        this.onClosed = null;
        void worker.terminate().finally(resolve);
      };
      worker.ref();
      worker.postMessage('close');
    });
  }

  private start(): Worker {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = this.spawn(WORKER_SOURCE, { eval: true, workerData: { path: this.path, driver } });
    // An idle checkpointer must not keep the process alive, nor a failed one take it down: the
    // writer's own threshold still bounds the WAL without it.
    worker.unref();
    worker.on('message', (reply: Reply) => this.replied(reply));
    worker.on('error', (err) => this.stopped(err.message));
    return worker;
  }

  /** The thread could not start or died: from now on the writer checkpoints alone. */
  private stopped(reason: string): void {
    this.logger?.warn({ err: reason }, 'SQLite checkpoint thread failed; the writer checkpoints alone');
    this.closed = true;
    this.onClosed?.();
  }

  private replied(reply: Reply): void {
    if (reply.closed) {
      this.onClosed?.();
      return;
    }
    this.running = false;
    if (reply.error !== undefined) {
      // Logged once per run of failures: a checkpoint that cannot run now is retried after the
      // next commits, and the writer's own threshold still bounds the WAL meanwhile.
      if (!this.failing)
        this.logger?.warn({ err: reply.error }, 'SQLite checkpoint failed; retrying after the next commits');
      this.failing = true;
    } else this.failing = false;
  }
}
