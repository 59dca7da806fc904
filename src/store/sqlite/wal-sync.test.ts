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
