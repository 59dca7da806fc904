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
 * next one, which starts at once (CONCURRENT_SYNCS), so under load one fsync covers many commits
 * (group commit at the disk).
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
/**
 * Fsyncs that may run at once. A commit made while one runs needs an fsync that starts after it;
 * starting that one at once, instead of after the running one ends, takes a whole fsync off the
 * wait of every write under load (a request and its answer then span one turn of the event loop
 * fewer). Two suffice: a third commit joins the next one to start.
 */
const CONCURRENT_SYNCS = 2;

/** The waiters an fsync answers: every write committed before it started. */
interface SyncBatch {
  waiters: Waiter[];
  /** Answered, by this fsync or by a later one that ended first. */
  settled: boolean;
}

export class WalSync {
  /**
   * One descriptor per concurrent fsync. The kernel reports a failed write-back once per open
   * file, to the first fsync that checks it: fsyncs sharing a descriptor could see one fail and
   * the other succeed over the same lost pages. With a descriptor each, every fsync sees every
   * failure since its descriptor's last fsync, and the first one seen fails the store.
   */
  private readonly fds: (number | null)[] = new Array(CONCURRENT_SYNCS).fill(null);
  private readonly busy: boolean[] = new Array(CONCURRENT_SYNCS).fill(false);
  /** Batches of the fsyncs running, in the order they started. */
  private running: SyncBatch[] = [];
  private waiting: Waiter[] = [];
  /** Some of `waiting` asked for a sync now (not just within a while). */
  private urgent = false;
  private lazyTimer: NodeJS.Timeout | null = null;
  private lazyDelayMs = 0;
  private failure: Error | null = null;
  /** Told when an fsync ends (close waits on them). */
  private onFsyncEnd: (() => void)[] = [];

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
      if (this.freeSlot() !== -1) this.syncNow();
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
      if (this.running.length === 0) this.syncLater(withinMs);
    });
  }

  /** Syncs what waits, then closes the WAL's descriptors once the running fsyncs are done with them. */
  async close(): Promise<void> {
    while (this.running.length > 0 || this.waiting.length > 0) {
      if (this.waiting.length > 0 && this.failure) {
        this.settle({ waiters: this.waiting.splice(0), settled: false });
        continue;
      }
      if (this.waiting.length > 0 && this.freeSlot() !== -1) this.syncNow();
      // The WAL could not be opened: nothing runs, and what waited has failed.
      if (this.running.length === 0) continue;
      await new Promise<void>((resolve) => this.onFsyncEnd.push(resolve));
    }
    for (let slot = 0; slot < this.fds.length; slot++) {
      const fd = this.fds[slot];
      if (fd !== null && fd !== undefined) closeSync(fd);
      this.fds[slot] = null;
    }
  }

  private freeSlot(): number {
    return this.busy.indexOf(false);
  }

  private syncLater(withinMs: number): void {
    this.lazyDelayMs = withinMs;
    if (this.lazyTimer) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = null;
      if (this.waiting.length > 0 && this.freeSlot() !== -1) this.syncNow();
    }, withinMs);
  }

  private syncNow(): void {
    const slot = this.freeSlot();
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = null;
    this.urgent = false;
    const batch: SyncBatch = { waiters: this.waiting, settled: false };
    this.waiting = [];
    let fd: number;
    try {
      // Opened at the first write: SQLite creates the WAL lazily. It keeps the same file while the
      // connection is open (a reset rewrites it in place), so one descriptor serves until close.
      fd = this.fds[slot] ??= openSync(this.walPath, 'r+');
    } catch (err) {
      this.fail(err as Error);
      this.settle(batch);
      return;
    }
    this.busy[slot] = true;
    this.running.push(batch);
    this.fsync(fd, (err) => {
      this.busy[slot] = false;
      if (err) this.fail(err);
      // Everything committed before this fsync started is on disk, and that includes the writes
      // of every fsync that started before it: answer those too, in commit order. After a
      // failure, whatever the others say, every write waiting fails now.
      const through = this.failure ? this.running.length - 1 : this.running.indexOf(batch);
      for (const earlier of this.running.splice(0, through + 1)) this.settle(earlier);
      if (this.waiting.length > 0) {
        if (this.failure) this.settle({ waiters: this.waiting.splice(0), settled: false });
        else if (this.urgent) this.syncNow();
        else if (this.running.length === 0) this.syncLater(this.lazyDelayMs);
      }
      for (const told of this.onFsyncEnd.splice(0)) told();
    });
  }

  /** Answers a batch: on disk, unless an fsync has failed since it was asked for. */
  private settle(batch: SyncBatch): void {
    if (batch.settled) return;
    batch.settled = true;
    for (const w of batch.waiters) {
      if (this.failure) w.reject(this.failure);
      else w.resolve();
    }
  }

  private fail(cause: Error): void {
    this.failure ??= new HeraldError(
      'STORE_UNAVAILABLE',
      `SQLite: making the write-ahead log durable failed (${cause.message}); restart Herald to recover from what is on disk`,
      { cause },
    );
  }
}
