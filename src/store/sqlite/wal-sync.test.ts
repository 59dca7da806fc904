import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HeraldError } from '../../errors.js';
import { WalSync } from './wal-sync.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-walsync-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('WAL sync', () => {
  it('answers every flush, and one asked for during an fsync only after a later fsync', async () => {
    const wal = join(dir, 'a.db-wal');
    writeFileSync(wal, 'frames');
    const sync = new WalSync(wal);
    const order: string[] = [];
    const first = sync.flush().then(() => order.push('first'));
    // Asked while the first fsync runs: its commit may be newer than what that fsync covers.
    const second = sync.flush().then(() => order.push('second'));
    const third = sync.flush().then(() => order.push('third'));
    await Promise.all([first, second, third]);
    assert.deepEqual(order, ['first', 'second', 'third']);
    await sync.close();
  });

  it('lets a write nobody waits on ride on the next sync, or syncs it itself within its delay', async () => {
    const wal = join(dir, 'c.db-wal');
    writeFileSync(wal, 'frames');
    let syncs = 0;
    const sync = new WalSync(wal, (_fd, done) => {
      syncs++;
      setTimeout(() => done(null), 1);
    });
    const started = Date.now();
    await sync.flushWithin(50);
    assert.equal(syncs, 1);
    assert.ok(Date.now() - started >= 45, 'alone, it waits for its delay before syncing');

    // An outcome, then an event's write: the event's sync covers both.
    const lazy = sync.flushWithin(10_000);
    await sync.flush();
    await lazy;
    assert.equal(syncs, 2, 'one sync for both');

    // Left waiting at close: closing syncs it rather than dropping it.
    const left = sync.flushWithin(10_000);
    await sync.close();
    await left;
    assert.equal(syncs, 3);
  });

  it('fails every write from the first failed fsync on, saying why and what to do', async () => {
    const sync = new WalSync(join(dir, 'missing', 'b.db-wal'));
    const err = await sync.flush().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(err instanceof HeraldError);
    assert.equal(err.code, 'STORE_UNAVAILABLE');
    assert.match(err.message, /write-ahead log durable failed .*ENOENT.*restart Herald/);
    await assert.rejects(sync.flush(), (e: HeraldError) => e === err);
    await sync.close();
  });
});
