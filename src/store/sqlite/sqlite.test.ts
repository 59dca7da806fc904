import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { runStoreContract } from '../contract.js';
import { createSqliteStore } from './index.js';
import { migrations } from './migrations.js';

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

describe('sqlite migrations', () => {
  it('an existing log keeps its events, seqs, deliveries and numbering through the events rebuild (v5)', async () => {
    const path = join(dir, 'upgrade.db');
    // A store as version 4 left it: events, a delivery pointing at one, and a deleted last seq.
    const old = new Database(path);
    old.pragma('journal_mode = WAL');
    for (const m of migrations.filter((m) => m.version <= 4)) old.exec(m.sql);
    old.pragma('user_version = 4');
    const insert = old.prepare(
      'INSERT INTO events (id, source, type, subject, received_at, event) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (let i = 1; i <= 5; i++)
      insert.run(
        `old-${i}`,
        's',
        't',
        null,
        i,
        JSON.stringify({ specversion: '1.0', id: `old-${i}`, source: 's', type: 't' }),
      );
    old
      .prepare(
        `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
           idempotency_key, status, attempts, max_attempts, next_attempt_at, created_at, updated_at)
         VALUES (2, 'old-2', 's', 't', 'tr', 0, 'ch', NULL, 'k-old', 'pending', 0, 3, 0, 1, 1)`,
      )
      .run();
    old.prepare('DELETE FROM events WHERE seq = 5').run();
    old.close();

    const store = createSqliteStore({ path });
    try {
      assert.equal((await store.events.findById('old-3'))?.seq, 3);
      assert.equal((await store.events.findById('old-4', 's'))?.seq, 4);
      const [d] = await store.deliveries.list({ limit: 10 });
      assert.equal(d?.eventSeq, 2);
      const [again, fresh] = await store.events.append(
        [
          { specversion: '1.0', id: 'old-1', source: 's', type: 't' },
          { specversion: '1.0', id: 'new-1', source: 's', type: 't' },
        ],
        10,
      );
      assert.deepEqual(again, { seq: 1, duplicate: true }, 'identity still deduplicates');
      assert.equal(fresh?.seq, 6, 'numbering continues after the highest seq ever given');
    } finally {
      await store.close();
    }
    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), migrations.at(-1)!.version);
    assert.deepEqual(check.pragma('foreign_key_check'), []);
    const indexes = (
      check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'").all() as {
        name: string;
      }[]
    ).map((r) => r.name);
    assert.ok(!indexes.includes('events_by_id'), `indexes: ${indexes}`);
    check.close();
  });
});
