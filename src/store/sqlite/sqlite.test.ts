import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runStoreContract } from '../contract.js';
import { createSqliteStore } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));

runStoreContract('sqlite (file, synchronous=full)', async () =>
  createSqliteStore({ path: join(dir, 'contract.db') }),
);
runStoreContract('sqlite (memory)', async () => createSqliteStore({ path: ':memory:' }));

describe('sqlite durability', () => {
  it('committed data survives closing and reopening the file', async () => {
    const path = join(dir, 'reopen.db');
    const a = createSqliteStore({ path });
    await a.events.append([{ specversion: '1.0', id: '1', source: 's', type: 't' }], 1);
    await a.close();
    const b = createSqliteStore({ path });
    assert.equal(await b.events.count(), 1);
    await b.close();
  });

  it('committed data is there for a second opener without a close (as after a crash)', async () => {
    const path = join(dir, 'crash.db');
    const a = createSqliteStore({ path });
    await a.events.append([{ specversion: '1.0', id: '1', source: 's', type: 't' }], 1);
    const b = createSqliteStore({ path });
    assert.equal(await b.events.count(), 1);
    await b.close();
    await a.close();
  });

  it('a store that cannot be opened says so, naming the file', () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, 'x');
    assert.throws(
      () => createSqliteStore({ path: join(file, 'herald.db') }),
      /cannot open SQLite store .*not-a-dir/,
    );
  });
});
