import { closeSync, fdatasync, openSync } from 'node:fs';
import { HeraldError } from '../../errors.js';

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Makes what was written to the WAL durable without blocking the event loop. The connection runs
 * with `synchronous=NORMAL` (a commit writes its WAL frames to the page cache, which survives a
 * crash of the process but not of the machine); a write's promise resolves only after an fsync of
 * the WAL file that started after its commit, so nothing is acknowledged before it is on disk —
 * the guarantee `synchronous=FULL` gives — while the fsync waits on a libuv thread and the event
 * loop goes on parsing, routing and sending. Commits that finish while an fsync runs share the
 * next one, so under load one fsync covers many commits (group commit at the disk).
 *
 * The sync is fdatasync, as SQLite's own: it writes the WAL's data and its size when the file
 * grew, and skips the inode's times, whose journal commit cost a full fsync more CPU and time on
 * every write while the WAL is reused in place.
 *
 * A checkpoint syncs the WAL before copying it into the database, and SQLite reuses the WAL from
 * its start only after a checkpoint, so frames covered by an earlier fsync are never lost to a
 * later one. An fsync that fails leaves unknown what reached the disk (the kernel may have dropped
 * the dirty pages): from then on every write fails, and a restart recovers from what is on disk.
 */
export class WalSync {
  private fd: number | null = null;
  private syncing = false;
  private waiting: Waiter[] = [];
  /** Some of `waiting` asked for a sync now (not just within a while). */
  private urgent = false;
  private lazyTimer: NodeJS.Timeout | null = null;
  private lazyDelayMs = 0;
  private failure: Error | null = null;

  constructor(
    private readonly walPath: string,
    /** How the WAL is made durable; tests slow it down to see what waits for it. */
    private readonly fsync: (fd: number, done: (err: Error | null) => void) => void = fdatasync,
  ) {}

  /** Resolves once everything committed before the call is on disk. */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.urgent = true;
      if (!this.syncing) this.syncNow();
    });
  }

  /**
   * Like flush, for writes nobody is waiting to be answered about (delivery outcomes): they ride
   * on the next sync someone else asks for, and start one themselves only after `withinMs`. At a
   * steady rate every event's commit syncs anyway, so its outcome costs no sync of its own.
   */
  flushWithin(withinMs: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      if (!this.syncing) this.syncLater(withinMs);
    });
  }

  /** Closes the WAL's descriptor once a running fsync is done with it. */
  async close(): Promise<void> {
    while (this.syncing || this.waiting.length > 0) await this.flush().catch(() => undefined);
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private syncLater(withinMs: number): void {
    this.lazyDelayMs = withinMs;
    if (this.lazyTimer) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = null;
      if (!this.syncing && this.waiting.length > 0) this.syncNow();
    }, withinMs);
  }

  private syncNow(): void {
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
    this.urgent = false;
    const batch = this.waiting;
    this.waiting = [];
    let fd: number;
    try {
      // Opened at the first write: SQLite creates the WAL lazily. It keeps the same file while the
      // connection is open (a reset rewrites it in place), so one descriptor serves until close.
      fd = this.fd ??= openSync(this.walPath, 'r+');
    } catch (err) {
      this.fail(batch, err as Error);
      return;
    }
    this.syncing = true;
    this.fsync(fd, (err) => {
      this.syncing = false;
      if (err) this.fail(batch, err);
      else for (const w of batch) w.resolve();
      if (this.waiting.length > 0) {
        if (this.failure) this.fail(this.waiting.splice(0), this.failure);
        else if (this.urgent) this.syncNow();
        else this.syncLater(this.lazyDelayMs);
      }
    });
  }

  private fail(batch: Waiter[], cause: Error): void {
    this.failure ??= new HeraldError(
      'STORE_UNAVAILABLE',
      `SQLite: making the write-ahead log durable failed (${cause.message}); restart Herald to recover from what is on disk`,
      { cause },
    );
    for (const w of batch) w.reject(this.failure);
  }
}
