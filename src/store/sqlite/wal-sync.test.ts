import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { HeraldError } from '../../errors.js';
import { WalSync } from './wal-sync.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-walsync-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A WAL file with something in it, as SQLite leaves one after a commit. */
function walFile(name: string): string {
  const wal = join(dir, `${name}.db-wal`);
  writeFileSync(wal, 'frames');
  return wal;
}

describe('WAL sync', () => {
  it('answers every flush, and one asked for during an fsync only after a later fsync', async () => {
    const wal = walFile('a');
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

  it('starts the fsync of a commit made during another at once, on a descriptor of its own, and answers in commit order', async () => {
    const wal = walFile('d');
    const running: { fd: number; done: (err: Error | null) => void }[] = [];
    const sync = new WalSync(wal, (fd, done) => running.push({ fd, done }));
    const answered: string[] = [];
    const tick = () => new Promise((resolve) => setImmediate(resolve));
    const first = sync.flush().then(() => answered.push('first'));
    const second = sync.flush().then(() => answered.push('second'));
    assert.equal(running.length, 2, 'the second commit does not wait for the first fsync to end');
    assert.notEqual(running[0]!.fd, running[1]!.fd);
    const third = sync.flush().then(() => answered.push('third'));
    assert.equal(running.length, 2, 'two at most');

    // The later fsync ends first: it covers the first commit too.
    running[1]!.done(null);
    await tick();
    assert.deepEqual(answered, ['first', 'second']);
    assert.equal(running.length, 3, 'the third starts in the freed slot');
    assert.equal(running[2]!.fd, running[1]!.fd);
    running[0]!.done(null);
    await tick();
    assert.deepEqual(answered, ['first', 'second'], 'an earlier fsync ending later answers nothing new');
    running[2]!.done(null);
    await Promise.all([first, second, third]);
    assert.deepEqual(answered, ['first', 'second', 'third']);
    await sync.close();
  });

  it('answers nothing as written once any fsync has failed, though a later one running beside it succeeds', async () => {
    const wal = walFile('e');
    const running: ((err: Error | null) => void)[] = [];
    const sync = new WalSync(wal, (_fd, done) => running.push(done));
    const outcome = (p: Promise<void>) =>
      p.then(
        () => 'written',
        (e: unknown) => (e as HeraldError).code,
      );
    const first = outcome(sync.flush());
    const second = outcome(sync.flush());
    running[0]!(new Error('EIO: i/o error'));
    running[1]!(null);
    assert.deepEqual(await Promise.all([first, second]), ['STORE_UNAVAILABLE', 'STORE_UNAVAILABLE']);
    assert.equal(await outcome(sync.flush()), 'STORE_UNAVAILABLE');
    await sync.close();
  });

  it('lets a write nobody waits on ride on the next sync, or syncs it itself within its delay', async () => {
    const wal = walFile('c');
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
