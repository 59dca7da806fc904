import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { CloudEvent } from '../../src/events/types.js';
import { createSqliteStore } from '../../src/store/sqlite/index.js';
import { startTestHerald, type TestHerald, tempDir } from '../support/herald.js';

// The dashboard pages through a log of 100,000 events: every query it makes is an index walk
// (no scan of the table, no sort of it); speed itself is the benchmark's business, not a test's.

const TOTAL = 100_000;
const TYPES = 10;
const SOURCES = 5;

describe('dashboard queries on 100,000 events', { timeout: 120_000 }, () => {
  const dir = tempDir('herald-scale-');
  const dbFile = join(dir.path, 'herald.db');
  let herald: TestHerald;

  /** The query plans of what the dashboard asks, read from the store's file. */
  function readPlans(): { listed: [string, string][]; byId: [string, string][] } {
    const db = new Database(dbFile, { readonly: true });
    try {
      const plan = (sql: string, ...params: unknown[]) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[])
          .map((r) => r.detail)
          .join('; ');
      const queries: [string, unknown[]][] = [
        ['SELECT * FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 50', [5000]],
        // By subject, type or source: the events newer than the index tables, then the tables.
        ...(
          [
            ['subject', 'event_subjects', 'subject-7'],
            ['type', 'event_types', 'type.3'],
            ['source', 'event_sources', 'src-1'],
          ] as const
        ).flatMap(([field, table, value]): [string, unknown[]][] => [
          [
            `SELECT * FROM events e WHERE e.seq > ? AND e.seq < ? AND e.${field} = ? ORDER BY e.seq DESC LIMIT 50`,
            [90_000, 95_000, value],
          ],
          [
            `SELECT e.* FROM ${table} x JOIN events e ON e.seq = x.seq WHERE x.${field} = ? AND x.seq < ? ORDER BY x.seq DESC LIMIT 50`,
            [value, 5000],
          ],
        ]),
        [
          "SELECT * FROM deliveries WHERE status = 'dead' AND channel = ? ORDER BY id DESC LIMIT 50",
          ['hook'],
        ],
        ["SELECT * FROM deliveries WHERE status = 'pending' ORDER BY id DESC LIMIT 50", []],
      ];
      const byId: [string, unknown[]][] = [
        ['SELECT * FROM events WHERE id = ? ORDER BY seq DESC LIMIT 1', ['e-17']],
        ['SELECT * FROM events WHERE id = ? AND source = ?', ['e-17', 'src-1']],
      ];
      return {
        listed: queries.map(([sql, params]) => [sql, plan(sql, ...params)]),
        byId: byId.map(([sql, params]) => [sql, plan(sql, ...params)]),
      };
    } finally {
      db.close();
    }
  }
  let plans: ReturnType<typeof readPlans>;

  before(async () => {
    // Written directly (and marked routed) so the test measures reading, not ingest.
    const store = createSqliteStore({ path: dbFile, synchronous: 'normal' });
    const receivedAt = Date.now();
    for (let start = 0; start < TOTAL; start += 5000) {
      const events: CloudEvent[] = [];
      for (let i = start; i < start + 5000; i++) {
        events.push({
          specversion: '1.0',
          id: `e${i}`,
          source: `src-${i % SOURCES}`,
          type: `type.${i % TYPES}`,
          subject: `subject-${i % 1000}`,
          data: { i },
        });
      }
      const appended = await store.events.append(events, receivedAt);
      await store.routing.commit(
        appended.map((a) => ({
          seq: a.seq,
          record: { matched: [], errors: [], deliveries: 0 },
          deliveries: [],
        })),
        receivedAt,
      );
    }
    await store.close();
    // The plans are read from the file the store left, before Herald opens it.
    plans = readPlans();
    herald = await startTestHerald('sources: {}\n', { dataDir: dir.path });
  });
  after(async () => {
    await herald?.close();
    dir.remove();
  });

  it('every filter the events page offers is answered from an index, newest first', () => {
    for (const [sql, detail] of plans.listed) {
      assert.doesNotMatch(detail, /TEMP B-TREE/, `${sql} sorts: ${detail}`);
      assert.match(detail, /USING (INDEX|COVERING INDEX|INTEGER PRIMARY KEY)/, `${sql} scans: ${detail}`);
    }
    // Looking an event up by id (one row per source at most, so sorting them costs nothing).
    for (const [sql, detail] of plans.byId) {
      assert.match(detail, /SEARCH events USING (COVERING )?INDEX/, `${sql} scans: ${detail}`);
    }
  });

  it('pages through by type, source and subject with a cursor, without overlap', async () => {
    for (const filter of [
      '',
      'type=type.3',
      'source=src-4',
      'subject=subject-999',
      'type=type.9&source=src-4',
    ]) {
      let before: number | null = null;
      let previousLast = Number.POSITIVE_INFINITY;
      for (let page = 0; page < 5; page++) {
        const res = await herald.get(`/api/events?limit=100&${filter}${before ? `&before=${before}` : ''}`);
        assert.equal(res.status, 200);
        const body = (await res.json()) as { events: { seq: number }[]; next: number | null };
        if (body.events.length === 0) {
          // A full last page points on; the page after it is empty and ends the listing.
          assert.ok(page > 0, `${filter}: the first page is empty`);
          assert.equal(body.next, null);
          break;
        }
        assert.ok(body.events[0]!.seq < previousLast, `${filter}: pages overlap`);
        previousLast = body.events[body.events.length - 1]!.seq;
        before = body.next;
        if (before === null) break;
      }
    }
  });

  it('a CESQL filter that matches nothing reads a bounded slice per request and says where to go on', async () => {
    const started = performance.now();
    const res = await herald.get(`/api/events?limit=50&sql=${encodeURIComponent("subject = 'nothing'")}`);
    const body = (await res.json()) as { events: unknown[]; next: number | null; scanned: number };
    assert.equal(res.status, 200);
    assert.deepEqual(body.events, []);
    assert.ok(body.scanned < TOTAL, 'one request does not read the whole log');
    assert.ok(body.next !== null && body.next > 1, 'the cursor continues where the scan stopped');
    assert.ok(performance.now() - started < 5000);
  });
});
