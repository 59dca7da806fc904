import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { runNotificationKeyContract } from '../../../test/contracts/notification-keys.js';
import { runStoreContract } from '../../../test/contracts/store.js';
import type { HeraldError } from '../../errors.js';
import type { DeliveryStatus } from '../types.js';
import { createSqliteStore } from './index.js';
import { migrations } from './migrations.js';

const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-'));

/** An SQLite file as a store at `version` left it, for the migrations after it to upgrade. */
function storeAtVersion(path: string, version: number): Database.Database {
  const old = new Database(path);
  old.pragma('journal_mode = WAL');
  for (const m of migrations.filter((m) => m.version <= version)) old.exec(m.sql);
  old.pragma(`user_version = ${version}`);
  return old;
}
after(() => rmSync(dir, { recursive: true, force: true }));

runStoreContract('sqlite (file, synchronous=full)', async () =>
  createSqliteStore({ path: join(dir, 'contract.db') }),
);
runStoreContract('sqlite (memory)', async () => createSqliteStore({ path: ':memory:' }));
runNotificationKeyContract('sqlite', async () => createSqliteStore({ path: ':memory:' }));

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

  it('committed data is there for the next opener after a process dies without closing', async () => {
    const path = join(dir, 'crash.db');
    // Another process appends and is killed before it closes (and releases) the store.
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { createSqliteStore } from ${JSON.stringify(new URL('./index.ts', import.meta.url).href)};
         const a = createSqliteStore({ path: ${JSON.stringify(path)} });
         await a.events.append([{ specversion: '1.0', id: '1', source: 's', type: 't' }], 1);
         process.kill(process.pid, 'SIGKILL');`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const b = createSqliteStore({ path });
    assert.equal(await b.events.count(), 1);
    await b.close();
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
  it('an existing log keeps its events, seqs, deliveries, numbering and subjects through the upgrade (v5, v6)', async () => {
    const path = join(dir, 'upgrade.db');
    // A store as version 4 left it: events, a delivery pointing at one, and a deleted last seq.
    const old = storeAtVersion(path, 4);
    const insert = old.prepare(
      'INSERT INTO events (id, source, type, subject, received_at, event) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (let i = 1; i <= 5; i++)
      insert.run(
        `old-${i}`,
        's',
        't',
        `sub-${i % 2}`,
        i,
        JSON.stringify({
          specversion: '1.0',
          id: `old-${i}`,
          source: 's',
          type: 't',
          subject: `sub-${i % 2}`,
        }),
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
      assert.deepEqual(
        (await store.events.list({ limit: 10, subject: 'sub-1' })).map((e) => e.seq),
        [3, 1],
        'events stored before the subject index table are found by subject',
      );
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

describe('sqlite deliveries unique by event and key (v12)', () => {
  it('an existing store keeps its deliveries, attempts and numbering, and still refuses a repeat', async () => {
    const path = join(dir, 'upgrade-v12.db');
    // A store as version 11 left it: three deliveries, one with an attempt row, the last one gone.
    const old = storeAtVersion(path, 11);
    old
      .prepare(
        `INSERT INTO events (id, source, type, received_at, routed_at, event) VALUES ('e1', 's', 't', 1, 1, '{}')`,
      )
      .run();
    const insert = old.prepare(
      `INSERT INTO deliveries (event_seq, event_id, event_source, event_type, trigger, action, channel, recipient,
         idempotency_key, status, attempts, max_attempts, next_attempt_at, created_at, updated_at)
       VALUES (1, 'e1', 's', 't', 'tr', 0, 'ch', ?, ?, ?, ?, 3, 0, 1, 1)`,
    );
    insert.run('ann', 'k-ann', 'dead', 3);
    insert.run('bob', 'k-bob', 'pending', 0);
    insert.run('cat', 'k-cat', 'pending', 0);
    old
      .prepare(
        `INSERT INTO attempts (delivery_id, number, started_at, duration_ms, outcome, error) VALUES (1, 3, 5, 7, 'failed', 'boom')`,
      )
      .run();
    old.prepare('DELETE FROM deliveries WHERE id = 3').run();
    old.close();

    const store = createSqliteStore({ path });
    try {
      const kept = await store.deliveries.list({ limit: 10 });
      assert.deepEqual(kept.map((d) => [d.id, d.recipient, d.idempotencyKey, d.status]).sort(), [
        [1, 'ann', 'k-ann', 'dead'],
        [2, 'bob', 'k-bob', 'pending'],
      ]);
      assert.deepEqual(
        (await store.deliveries.attempts(1)).map((a) => [a.number, a.error]),
        [[3, 'boom']],
      );
      const delivery = (recipient: string, idempotencyKey: string) => ({
        eventSeq: 1,
        trigger: 'tr',
        action: 0,
        channel: 'ch',
        recipient,
        idempotencyKey,
        maxAttempts: 3,
        notBefore: 0,
      });
      const record = { matched: ['tr'], errors: [], deliveries: 2 };
      const inserted = await store.routing.commit(
        [{ seq: 1, record, deliveries: [delivery('dan', 'k-dan'), delivery('bob', 'k-bob')] }],
        2,
      );
      assert.equal(inserted, 1, 'the delivery whose key the event has already is skipped');
      const dan = (await store.deliveries.list({ limit: 10 })).find((d) => d.recipient === 'dan');
      assert.equal(dan?.id, 4, 'numbering continues after the highest id ever given');
    } finally {
      await store.close();
    }
    const check = new Database(path, { readonly: true });
    assert.deepEqual(check.pragma('foreign_key_check'), []);
    // No index on the key alone: each would take a page at a random place for every delivery.
    const keyed = check
      .prepare(
        `SELECT il.name FROM pragma_index_list('deliveries') il JOIN pragma_index_info(il.name) ii
         WHERE ii.seqno = 0 AND ii.name = 'idempotency_key'`,
      )
      .all();
    assert.deepEqual(keyed, []);
    check.close();
  });
});

describe('sqlite events by subject, type and source', () => {
  it('lists by each, newest first, across the part of the log the index tables have not reached yet', async () => {
    const path = join(dir, 'subjects.db');
    const store = createSqliteStore({ path, synchronous: 'normal' });
    try {
      // 25,000 events: the index tables cover the first part (they trail the log by up to 20,000
      // events), the rest is read from the log. Subject k of 7; type alternates; source s of 3.
      for (let start = 0; start < 25_000; start += 1000) {
        await store.events.append(
          Array.from({ length: 1000 }, (_, j) => ({
            specversion: '1.0' as const,
            id: `s${start + j}`,
            source: `s${(start + j) % 3}`,
            type: (start + j) % 2 === 0 ? 'even' : 'odd',
            subject: `k${(start + j) % 7}`,
          })),
          1,
        );
      }
      const cases: { subject?: string; type?: string; source?: string }[] = [
        { subject: 'k3' },
        { subject: 'k5', type: 'odd' },
        { type: 'even' },
        { source: 's1' },
        { type: 'odd', source: 's2' },
        { subject: 'k6', type: 'even', source: 's0' },
      ];
      const seen: number[][] = [];
      for (const filter of cases) {
        const pages: number[] = [];
        let before: number | undefined;
        for (;;) {
          const page = await store.events.list({ limit: 250, beforeSeq: before, ...filter });
          pages.push(...page.map((e) => e.seq));
          if (page.length < 250) break;
          before = page.at(-1)!.seq;
        }
        seen.push(pages);
      }
      // The truth, read straight from the file once the store is closed.
      await store.close();
      const db = new Database(path, { readonly: true });
      const indexed = (db.prepare('SELECT through_seq AS n FROM event_subjects_state').get() as { n: number })
        .n;
      // Filled 2,000 at a time once 20,000 behind: at the 20,000th, 22,000th and 24,000th event.
      assert.equal(indexed, 6_000);
      // An index of the log itself by any of them would cost every append a page of its own.
      const onTheLog = db
        .prepare(
          `SELECT il.name FROM pragma_index_list('events') il JOIN pragma_index_info(il.name) ii
           WHERE ii.seqno = 0 AND ii.name IN ('subject', 'type', 'source')`,
        )
        .all();
      assert.deepEqual(onTheLog, []);
      const truth = (filter: Record<string, string>) => {
        const fields = Object.keys(filter);
        return (
          db
            .prepare(
              `SELECT seq FROM events WHERE ${fields.map((f) => `${f} = ?`).join(' AND ')} ORDER BY seq DESC`,
            )
            .all(...Object.values(filter)) as { seq: number }[]
        ).map((r) => r.seq);
      };
      for (const [i, filter] of cases.entries()) {
        const expected = truth(filter as Record<string, string>);
        assert.ok(expected.some((seq) => seq <= indexed) && expected.some((seq) => seq > indexed));
        assert.deepEqual(seen[i], expected, JSON.stringify(filter));
      }
      db.close();
    } finally {
      await store.close();
    }
  });
});

describe('sqlite index tables behind the log', () => {
  it('are filled a chunk at a time, and keep within 20,000 events of the log after a large append', async () => {
    const path = join(dir, 'index-chunks.db');
    const store = createSqliteStore({ path, synchronous: 'normal' });
    const reader = new Database(path, { readonly: true });
    const through = () =>
      (reader.prepare('SELECT through_seq AS n FROM event_subjects_state').get() as { n: number }).n;
    let appended = 0;
    const append = (n: number) => {
      const events = Array.from({ length: n }, () => {
        appended++;
        return {
          specversion: '1.0' as const,
          id: `c${appended}`,
          source: 's',
          type: 't',
          subject: `k${appended}`,
        };
      });
      return store.events.append(events, 1);
    };
    try {
      // Each fill runs on the event loop after an append: a bounded chunk, not all 20,000 at once.
      const steps: number[] = [];
      for (let i = 0; i < 30; i++) {
        const before = through();
        await append(1000);
        steps.push(through() - before);
        assert.ok(appended - through() <= 20_000, `${appended - through()} events unindexed`);
      }
      assert.deepEqual(
        steps.filter((n) => n > 0),
        Array.from({ length: 6 }, () => 2000),
      );
      // One append larger than a chunk: the fill takes what it put past the bound as well.
      await append(50_000);
      assert.equal(appended - through(), 18_000);
    } finally {
      reader.close();
      await store.close();
    }
  });
});

describe('sqlite delivery lists', () => {
  it('a status outside the four is refused, not spliced into the query (the status index needs it inline)', async () => {
    const store = createSqliteStore({ path: ':memory:' });
    try {
      for (const status of ["pending' OR '1'='1", "dead'; DROP TABLE deliveries; --", 'Pending']) {
        await assert.rejects(
          store.deliveries.list({ limit: 10, status: status as DeliveryStatus }),
          (err: HeraldError) =>
            err.code === 'REQUEST_INVALID' && err.message.includes(JSON.stringify(status)),
        );
      }
      assert.deepEqual(await store.deliveries.list({ limit: 10, status: 'pending' }), []);
    } finally {
      await store.close();
    }
  });
});
