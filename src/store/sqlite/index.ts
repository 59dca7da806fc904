import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { HeraldError } from '../../errors.js';
import { type Bucket, grantable, nextTokenAt, refilled } from '../token-bucket.js';
import type { Committed, Store } from '../types.js';
import { WalCheckpointer } from './checkpointer.js';
import { ClaimCursors } from './claim-cursors.js';
import { sqliteDeadLetters, sqliteSourceDeadLetters } from './dead-letters.js';
import { type Leases, sqliteDeliveries } from './deliveries.js';
import { sqliteEvents } from './events.js';
import { sqliteInbox } from './inbox.js';
import { migrations } from './migrations.js';
import { sqliteProjections } from './projections.js';
import { type CommitGuard, type Guard, json, parse } from './rows.js';
import { sqliteSubscriptions } from './subscriptions.js';
import { WalSync } from './wal-sync.js';

/**
 * The WAL's size, in pages (16,000 of 4 KiB: 64 MiB), past which the writing connection checkpoints
 * itself. The checkpointing thread copies the WAL long before that; the writer's threshold is
 * the bound should that thread fall behind or fail, not the usual way.
 */
const WRITER_CHECKPOINT_PAGES = 16_000;
/** How often, at most, the checkpointing thread runs while writes come in. */
const CHECKPOINT_INTERVAL_MS = 250;

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. Parent directories are created. */
  path: string;
  /**
   * `full` (default): a write is answered once it is on disk, so it survives power loss. `normal`
   * answers at commit and may lose the last commits on a power cut.
   */
  synchronous?: 'full' | 'normal';
  logger?: Logger;
  /** Replaces the WAL's fsync (tests slow it down to see what waits for it). */
  fsync?: (fd: number, done: (err: Error | null) => void) => void;
}

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is synchronous, so each batch
 * method is one short transaction on the event loop; the engine batches calls (group commit).
 * Commits do not wait for the disk on the event loop: the WAL's fsync runs on a libuv thread
 * and a write is answered when it is done (wal-sync.ts), one fsync serving every commit before it.
 * Ingest and outcomes take their commit's answer at once (`appendCommitted`, `recordCommitted`)
 * and commit their next batch while this one's fsync runs; claims leave out deliveries whose
 * insert is not on disk yet.
 */
export function createSqliteStore(options: SqliteStoreOptions): Store {
  let db: Database.Database;
  try {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    db = new Database(options.path);
    db.pragma('journal_mode = WAL');
    // With `full`, WalSync makes each write durable before it is answered (see wal-sync.ts).
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    db.pragma('foreign_keys = ON');
  } catch (err) {
    throw new HeraldError(
      'STORE_UNAVAILABLE',
      `cannot open SQLite store ${options.path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }

  const walSync =
    options.path !== ':memory:' && options.synchronous !== 'normal'
      ? new WalSync(`${options.path}-wal`, options.fsync)
      : null;
  const checkpointer =
    options.path !== ':memory:'
      ? new WalCheckpointer(options.path, options.logger, CHECKPOINT_INTERVAL_MS)
      : null;
  if (checkpointer) db.pragma(`wal_autocheckpoint = ${WRITER_CHECKPOINT_PAGES}`);
  const totalChanges = db.prepare('SELECT total_changes()').pluck();
  /** Commits whose fsync has not finished yet. */
  let unsynced = 0;
  /**
   * Every delivery up to this id was inserted by a commit that is on disk. Ids grow in commit
   * order (one writer, AUTOINCREMENT), so a claim that stays at or below it never sends a delivery
   * a power cut could take back together with its event, however early it looks.
   */
  let durableDeliveryId = Number.MAX_SAFE_INTEGER;
  let lastDeliveryId: (() => number) | null = null;
  /** Resolves once the commit just made is on disk. */
  const synced = (sync: WalSync, withinMs: number | undefined, through: number): Promise<void> => {
    unsynced++;
    return (withinMs === undefined ? sync.flush() : sync.flushWithin(withinMs)).then(
      () => {
        unsynced--;
        // Flushes resolve in commit order, so the mark only moves forward.
        if (through > durableDeliveryId) durableDeliveryId = through;
      },
      (err: unknown) => {
        unsynced--;
        throw err;
      },
    );
  };
  const guard: Guard = <T>(work: () => T): Promise<T> =>
    unguarded(() => {
      if (!walSync && !checkpointer) return Promise.resolve(work());
      const before = totalChanges.get();
      const result = work();
      // Reads answer at once; a write answers once its commit is on disk.
      if (totalChanges.get() === before) return Promise.resolve(result);
      checkpointer?.committed();
      if (!walSync) return Promise.resolve(result);
      return synced(walSync, undefined, lastDeliveryId!()).then(() => result);
    });
  const commit: CommitGuard = <T>(
    work: () => T,
    {
      syncWithinMs,
      deliveriesThrough,
    }: { syncWithinMs?: number; deliveriesThrough?: (value: T) => number } = {},
  ): Promise<Committed<T>> =>
    unguarded(() => {
      if (!walSync && !checkpointer) return { value: work(), durable: Promise.resolve() };
      const before = totalChanges.get();
      const value = work();
      const wrote = totalChanges.get() !== before;
      if (wrote) checkpointer?.committed();
      if (!walSync) return { value, durable: Promise.resolve() };
      let durable: Promise<void>;
      if (wrote)
        durable = synced(
          walSync,
          syncWithinMs,
          deliveriesThrough ? deliveriesThrough(value) : lastDeliveryId!(),
        );
      // Nothing written, but what was read may be a commit still waiting for its fsync (a
      // duplicate of an event of the batch before): answer no earlier than that commit.
      else if (unsynced > 0) durable = walSync.flush();
      else durable = Promise.resolve();
      return { value, durable };
    });
  /** Like guard, for work after which the connection may be gone (close). */
  const unguarded = <T>(work: () => T | Promise<T>): Promise<T> => {
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(
        err instanceof HeraldError
          ? err
          : new HeraldError('STORE_UNAVAILABLE', `SQLite: ${(err as Error).message}`, { cause: err }),
      );
    }
  };

  const migrate = () => {
    const current = db.pragma('user_version', { simple: true }) as number;
    for (const m of migrations) {
      if (m.version <= current) continue;
      // Foreign keys cannot be switched inside a transaction; a rebuild checks them itself.
      if (m.rebuildsTable) db.pragma('foreign_keys = OFF');
      try {
        db.transaction(() => {
          db.exec(m.sql);
          if (m.rebuildsTable && (db.pragma('foreign_key_check') as unknown[]).length > 0)
            throw new Error(`migration ${m.version} would break a foreign key`);
          db.pragma(`user_version = ${m.version}`);
        })();
      } finally {
        if (m.rebuildsTable) db.pragma('foreign_keys = ON');
      }
      options.logger?.info({ version: m.version, migration: m.name }, 'store migrated');
    }
  };
  // Statements need the tables: migrate before preparing them (migrate() stays idempotent).
  migrate();
  const maxDeliveryId = db.prepare('SELECT max(id) FROM deliveries').pluck();
  lastDeliveryId = () => (maxDeliveryId.get() as number | null) ?? 0;
  if (walSync) durableDeliveryId = lastDeliveryId();

  const s = {
    kvGet: db.prepare('SELECT value FROM kv WHERE namespace = ? AND key = ?'),
    kvSet: db.prepare(
      'INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value',
    ),
    kvDelete: db.prepare('DELETE FROM kv WHERE namespace = ? AND key = ?'),
    kvSetIfAbsent: db.prepare(
      'INSERT INTO kv (namespace, key, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
    ),
  };

  // Shared by claims and DLQ replays (a replayed delivery loses any lease it still had).
  const leases: Leases = new Map();
  const cursors = new ClaimCursors();

  // Rate-limit buckets live in memory for the same reason as leases: one process owns an embedded
  // store, so there is nobody to share them with, and a take costs no write. A restart starts with
  // full buckets, which lets at most one extra burst through.
  const buckets = new Map<string, Bucket>();

  let closed = false;
  return {
    kind: 'sqlite',
    migrate: () => guard(migrate),
    close: () =>
      unguarded(async () => {
        if (closed) return;
        closed = true;
        await checkpointer?.close();
        db.close();
        await walSync?.close();
      }),
    ping: () =>
      guard(() => {
        if (closed) throw new HeraldError('STORE_UNAVAILABLE', 'the store is closed');
        db.prepare('SELECT 1').get();
      }),

    ...sqliteEvents(db, guard, commit, options.logger, leases, cursors),
    deliveries: sqliteDeliveries(db, guard, commit, leases, cursors, () => durableDeliveryId),
    dlq: sqliteDeadLetters(db, guard, leases, cursors),
    sourceDlq: sqliteSourceDeadLetters(db, guard),
    inbox: sqliteInbox(db, guard),

    rateLimits: {
      take: ({ channel, wanted, now, perSecond, burst }) =>
        guard(() => {
          const bucket = refilled(buckets.get(channel), now, perSecond, burst);
          const granted = grantable(bucket.tokens, wanted);
          bucket.tokens = Math.max(0, bucket.tokens - granted);
          buckets.set(channel, bucket);
          return { granted, nextAt: nextTokenAt(bucket, perSecond) };
        }),
      giveBack: ({ channel, count, now, perSecond, burst }) =>
        guard(() => {
          const current = buckets.get(channel);
          if (!current || count <= 0) return;
          const bucket = refilled(current, now, perSecond, burst);
          bucket.tokens = Math.min(burst, bucket.tokens + count);
          buckets.set(channel, bucket);
        }),
    },

    subscriptions: sqliteSubscriptions(db, guard),
    projections: sqliteProjections(db, guard),

    kv: {
      get: <T>(namespace: string, key: string) =>
        guard(() => {
          const r = s.kvGet.get(namespace, key) as { value: string | null } | undefined;
          return r ? (parse(r.value) as T) : null;
        }),
      set: (namespace, key, value) =>
        guard(() => {
          s.kvSet.run(namespace, key, json(value));
        }),
      delete: (namespace, key) =>
        guard(() => {
          s.kvDelete.run(namespace, key);
        }),
      setIfAbsent: (namespace, key, value) =>
        guard(() => s.kvSetIfAbsent.run(namespace, key, json(value)).changes === 1),
    },
  };
}
