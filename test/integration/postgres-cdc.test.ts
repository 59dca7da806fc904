import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { HeraldError } from '../../src/errors.js';
import type { DebeziumEnvelope } from '../../src/events/debezium.js';
import type { CloudEvent } from '../../src/events/types.js';
import {
  eventually,
  metricValue,
  replaySourceDeadLetter,
  sourceDeadLetters,
  startTestHerald,
  type TestHerald,
  tempDir,
} from '../support/herald.js';
import {
  type CdcNames,
  cdcNames,
  confirmedFlush,
  PG_URL,
  type PrivatePostgres,
  pgClient,
  startPrivatePostgres,
} from '../support/postgres.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(n: CdcNames, tables: string[], url = PG_URL): string {
  return `
sources:
  shop:
    kind: postgres-cdc
    url: ${url}
    tables: [${tables.join(', ')}]
    slot: ${n.slot}
    publication: ${n.publication}
    topicPrefix: shop_${n.suffix}
`;
}

/** Every event in the log, oldest first. */
async function allEvents(h: TestHerald): Promise<CloudEvent[]> {
  const out: CloudEvent[] = [];
  let beforeSeq: number | undefined;
  for (;;) {
    const page = await h.engine.store.events.list({ limit: 1000, beforeSeq });
    for (const e of page) out.push(e.event);
    if (page.length < 1000) break;
    beforeSeq = page[page.length - 1]!.seq;
  }
  return out.reverse();
}

const env = (e: CloudEvent) => e.data as DebeziumEnvelope;
const warnings = (h: TestHerald) =>
  h.logs.filter((l) => (l.level as number) === 40).map((l) => String(l.msg));

describe('postgres-cdc source', () => {
  let db: pg.Client;
  before(async () => {
    db = await pgClient();
  });
  after(async () => {
    await db.end();
  });

  it('reads a snapshot (r) and then the stream (c/u/d): each row exactly once, before/after right, in order', async () => {
    const n = cdcNames();
    const items = n.table('items');
    let h: TestHerald | undefined;
    const writer = await pgClient();
    try {
      await db.query(`CREATE TABLE ${items} (id bigint PRIMARY KEY, name text NOT NULL, qty int NOT NULL)`);
      await db.query(`ALTER TABLE ${items} REPLICA IDENTITY FULL`);
      await db.query(`INSERT INTO ${items} SELECT g, 'item ' || g, g % 50 FROM generate_series(1, 5000) g`);
      // Rows keep arriving while Herald creates its slot and reads the snapshot.
      let next = 5001;
      let writing = true;
      const writerLoop = (async () => {
        while (writing) {
          await writer.query(`INSERT INTO ${items} VALUES ($1, $2, 1)`, [next, `item ${next}`]);
          next++;
        }
      })();
      await sleep(50);
      h = await startTestHerald(config(n, [items]));
      const herald = h;
      await eventually(
        () => herald.logs.some((l) => /snapshot of \d+ rows done/.test(String(l.msg))),
        20_000,
        'the snapshot',
      );
      await sleep(300);
      writing = false;
      await writerLoop;
      const rows = next - 1;
      await db.query(`UPDATE ${items} SET qty = 99, name = 'renamed' WHERE id = 1`);
      await db.query(`DELETE FROM ${items} WHERE id = 2`);
      await db.query('BEGIN');
      await db.query(`UPDATE ${items} SET qty = 10 WHERE id = 3`);
      await db.query(`UPDATE ${items} SET qty = 11 WHERE id = 3`);
      await db.query('COMMIT');

      const events = await eventually(
        async () => {
          const all = await allEvents(herald);
          return all.length >= rows + 4 ? all : undefined;
        },
        20_000,
        'every change',
      );
      assert.equal(events.length, rows + 4, 'no extra events');
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'ids are unique');
      const firstSeen = new Map<string, number>();
      for (const e of events.filter((e) => env(e).op === 'r' || env(e).op === 'c')) {
        firstSeen.set(e.subject!, (firstSeen.get(e.subject!) ?? 0) + 1);
      }
      assert.equal(firstSeen.size, rows, 'every row appears');
      assert.ok(
        [...firstSeen.values()].every((count) => count === 1),
        'no row appears twice',
      );
      const snapshot = events.filter((e) => env(e).op === 'r').length;
      assert.ok(snapshot >= 5000, `${snapshot} snapshot rows`);
      assert.ok(rows - snapshot > 0, 'rows written during start-up came through the stream');
      // The snapshot is all read before any streamed change.
      const lastR = events.findLastIndex((e) => env(e).op === 'r');
      const firstC = events.findIndex((e) => env(e).op === 'c');
      assert.ok(lastR < firstC);

      const e1 = events.find((e) => env(e).op === 'u' && e.subject === '1')!;
      assert.deepEqual(env(e1).before, { id: 1, name: 'item 1', qty: 1 });
      assert.deepEqual(env(e1).after, { id: 1, name: 'renamed', qty: 99 });
      assert.equal(e1.type, 'io.debezium.connector.postgresql.DataChangeEvent');
      assert.equal(e1.source, `/debezium/postgresql/shop_${n.suffix}`);
      assert.equal(env(e1).source.table, items);
      assert.equal(env(e1).source.schema, 'public');
      assert.equal(env(e1).source.db, 'test');
      assert.equal(env(e1).source.snapshot, false);
      assert.equal(typeof env(e1).source.txId, 'number');
      assert.equal(typeof env(e1).source.lsn, 'number');
      assert.equal(e1.iodebeziumtable, items);
      const d2 = events.find((e) => env(e).op === 'd')!;
      assert.equal(d2.subject, '2');
      assert.deepEqual(env(d2).before, { id: 2, name: 'item 2', qty: 2 });
      assert.equal(env(d2).after, null);
      const three = events.filter((e) => e.subject === '3').map((e) => [env(e).op, env(e).after?.qty]);
      assert.deepEqual(three, [
        ['r', 3],
        ['u', 10],
        ['u', 11],
      ]);
      const r = events.find((e) => env(e).op === 'r')!;
      assert.equal(env(r).before, null);
      assert.equal(env(r).source.snapshot, true);
    } finally {
      await h?.close();
      await writer.end();
      await n.cleanup(db);
    }
  });

  it('maps column types as Debezium’s JSON converter does, the same in snapshot and stream', async () => {
    const n = cdcNames();
    const t = n.table('types');
    let h: TestHerald | undefined;
    try {
      await db.query(`CREATE TABLE ${t} (
        id int PRIMARY KEY, b bool, i2 int2, i8 int8, big int8, n numeric(12,3), f float8, txt text,
        v varchar(10), c char(3), u uuid, j json, jb jsonb, ts timestamp(6), tstz timestamptz, d date,
        tm time, by bytea, ai int[], at text[], nul text)`);
      const values = `true, -2, 42, 9223372036854775807, 123.45, 1.5, 'hello', 'var', 'ab',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"a": [1, 2]}',
        '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+02', '2024-02-29', '13:14:15.25',
        '\\x48656c6c6f', '{1,NULL,3}', '{"a b",c}', NULL`;
      await db.query(`INSERT INTO ${t} VALUES (1, ${values})`);
      h = await startTestHerald(config(n, [t]));
      const herald = h;
      await eventually(async () => (await allEvents(herald)).length === 1, 15_000, 'the snapshot row');
      await db.query(`INSERT INTO ${t} VALUES (2, ${values})`);
      const [snap, streamed] = await eventually(
        async () => {
          const all = await allEvents(herald);
          return all.length === 2 ? all : undefined;
        },
        15_000,
        'the streamed row',
      );
      const expected = {
        b: true,
        i2: -2,
        i8: 42,
        big: '9223372036854775807',
        n: '123.450',
        f: 1.5,
        txt: 'hello',
        v: 'var',
        c: 'ab ',
        u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        j: '{"a": [1, 2]}',
        jb: '{"a": [1, 2]}',
        ts: 1704164645123456,
        tstz: '2024-01-02T01:04:05.5Z',
        d: 19782,
        tm: 47655250000,
        by: 'SGVsbG8=',
        ai: [1, null, 3],
        at: ['a b', 'c'],
        nul: null,
      };
      assert.deepEqual(env(snap!).after, { id: 1, ...expected });
      assert.deepEqual(env(streamed!).after, { id: 2, ...expected });
    } finally {
      await h?.close();
      await n.cleanup(db);
    }
  });

  it('resumes after a restart from the confirmed position: nothing lost, nothing twice, no second snapshot', async () => {
    const n = cdcNames();
    const t = n.table('resume');
    const data = tempDir('herald-cdc-data-');
    let h: TestHerald | undefined;
    try {
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v text)`);
      await db.query(`ALTER TABLE ${t} REPLICA IDENTITY FULL`);
      await db.query(`INSERT INTO ${t} VALUES (1, 'one')`);
      h = await startTestHerald(config(n, [t]), { dataDir: data.path });
      const first = h;
      await eventually(async () => (await allEvents(first)).length === 1, 15_000, 'the snapshot');
      await db.query(`INSERT INTO ${t} VALUES (2, 'two'), (3, 'three')`);
      await eventually(async () => (await allEvents(first)).length === 3, 15_000, 'the stream');
      await h.close();
      h = undefined;
      const acked = await confirmedFlush(db, n.slot);
      assert.ok(acked && acked > 0n, 'the slot has a confirmed position');

      // While Herald is down.
      await db.query(`INSERT INTO ${t} VALUES (4, 'four')`);
      await db.query(`UPDATE ${t} SET v = 'uno' WHERE id = 1`);
      await db.query(`DELETE FROM ${t} WHERE id = 2`);

      h = await startTestHerald(config(n, [t]), { dataDir: data.path });
      const second = h;
      const events = await eventually(
        async () => {
          const all = await allEvents(second);
          return all.length >= 6 ? all : undefined;
        },
        15_000,
        'the changes made while down',
      );
      await sleep(300);
      const final = await allEvents(second);
      assert.equal(final.length, 6, JSON.stringify(final.map((e) => [env(e).op, e.subject])));
      assert.deepEqual(
        events.map((e) => [env(e).op, e.subject]),
        [
          ['r', '1'],
          ['c', '2'],
          ['c', '3'],
          ['c', '4'],
          ['u', '1'],
          ['d', '2'],
        ],
      );
      assert.ok(!second.logs.some((l) => /snapshot of/.test(String(l.msg))), 'no second snapshot');
      assert.ok(((await confirmedFlush(db, n.slot)) ?? 0n) > acked!, 'the slot moved on');
    } finally {
      await h?.close();
      data.remove();
      await n.cleanup(db);
    }
  });

  it('says so when the role lacks REPLICATION, without showing the password', async () => {
    const n = cdcNames();
    const t = n.table('rights');
    const role = `herald_norepl_${n.suffix}`;
    try {
      await db.query(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      await db.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw_s3cret'`);
      await db.query(`GRANT SELECT ON ${t} TO ${role}`);
      const url = `postgres://${role}:pw_s3cret@127.0.0.1:5432/test`;
      await assert.rejects(
        () => startTestHerald(config(n, [t], url)),
        (err: Error) => {
          assert.match(err.message, new RegExp(`role "${role}" lacks the REPLICATION attribute`));
          assert.match(err.message, /ALTER ROLE/);
          assert.doesNotMatch(err.message, /pw_s3cret/);
          return true;
        },
      );
    } finally {
      await n.cleanup(db);
      await db.query(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it('fails to start naming a table that does not exist', async () => {
    const n = cdcNames();
    await assert.rejects(
      () => startTestHerald(config(n, [`public.missing_${n.suffix}`])),
      new RegExp(`table public.missing_${n.suffix} does not exist`),
    );
    await n.cleanup(db);
  });

  it('skips changes without a key or of a table it was not given, with a warning, and keeps streaming', async () => {
    const n = cdcNames();
    const good = n.table('good');
    const nokey = n.table('nokey');
    const other = n.table('other');
    let h: TestHerald | undefined;
    try {
      await db.query(`CREATE TABLE ${good} (id int PRIMARY KEY, v text)`);
      await db.query(`CREATE TABLE ${nokey} (v text)`);
      await db.query(`CREATE TABLE ${other} (id int PRIMARY KEY)`);
      // A publication someone made wider than the source's tables.
      await db.query(`CREATE PUBLICATION ${n.publication} FOR TABLE ${other}`);
      h = await startTestHerald(config(n, [good, nokey]));
      const herald = h;
      assert.ok(warnings(h).some((w) => w.includes(`${nokey} has no primary key`)));
      assert.ok(warnings(h).some((w) => w.includes(`${good} does not have REPLICA IDENTITY FULL`)));
      assert.ok(warnings(h).some((w) => w.includes(`ALTER TABLE "public"."${good}" REPLICA IDENTITY FULL`)));
      await eventually(
        () => herald.logs.some((l) => /streaming changes/.test(String(l.msg))),
        15_000,
        'streaming',
      );
      await db.query(`INSERT INTO ${other} VALUES (1)`);
      await db.query(`INSERT INTO ${nokey} VALUES ('x')`);
      await db.query(`INSERT INTO ${good} VALUES (1, 'after the bad ones')`);
      const events = await eventually(
        async () => {
          const all = await allEvents(herald);
          return all.length >= 1 ? all : undefined;
        },
        15_000,
        'the good change',
      );
      assert.deepEqual(
        events.map((e) => [env(e).source.table, e.subject]),
        [[good, '1']],
      );
      assert.ok(warnings(h).some((w) => /a change for a table not in this source's tables/.test(w)));
      assert.ok(warnings(h).some((w) => w.includes(`a change of public.${nokey} without its key`)));
    } finally {
      await h?.close();
      await n.cleanup(db);
    }
  });
});

describe('postgres-cdc source: a change ingest refuses', () => {
  // A server of its own, with logical replication whatever the shared one is set to.
  let server: PrivatePostgres;
  before(async () => {
    server = await startPrivatePostgres({ wal_level: 'logical' });
  });
  after(async () => {
    await server.remove();
  });

  it('is set aside, the changes behind it are stored, and it replays once accepted', async () => {
    const db = await pgClient(server.url);
    const n = cdcNames();
    const items = n.table('items');
    let h: TestHerald | undefined;
    try {
      await db.query(`CREATE TABLE ${items} (id int PRIMARY KEY, v text)`);
      await db.query(`INSERT INTO ${items} VALUES (10, 'in the snapshot')`);
      h = await startTestHerald(config(n, [items], server.url));
      const herald = h;
      // Ingest refuses row 2's event as it refuses one the event log will not store (a 422).
      let refusing = true;
      const ingest = herald.engine.ingest.bind(herald.engine);
      herald.engine.ingest = (events, options) =>
        refusing && events.some((e) => e.subject === '2')
          ? Promise.reject(
              new HeraldError('EVENT_UNSTORABLE', 'the event log cannot store this event: disk quota'),
            )
          : ingest(events, options);
      await eventually(
        () => herald.logs.some((l) => /streaming changes/.test(String(l.msg))),
        15_000,
        'streaming',
      );
      // One transaction, so one batch: the refused change sits between two good ones.
      await db.query('BEGIN');
      for (const id of [1, 2, 3]) await db.query(`INSERT INTO ${items} VALUES ($1, 'stream')`, [id]);
      await db.query('COMMIT');
      await db.query(`INSERT INTO ${items} VALUES (4, 'after')`);
      const subjects = await eventually(
        async () => {
          const all = (await allEvents(herald)).map((e) => e.subject!);
          return all.length >= 4 ? all : undefined;
        },
        10_000,
        'the changes around the refused one',
      );
      assert.deepEqual(subjects.sort(), ['1', '10', '3', '4']);
      const [letter, ...more] = await sourceDeadLetters(herald, 'shop');
      assert.equal(more.length, 0);
      assert.equal((JSON.parse(letter!.payload) as CloudEvent).subject, '2');
      assert.match(letter!.position, /^[0-9A-F]+\/[0-9A-F]+:1$/, 'named by its commit LSN and index');
      assert.equal(letter!.subject, `public.${items}`);
      assert.equal(letter!.reason, 'the event log cannot store this event: disk quota');
      assert.equal(await metricValue(herald, 'herald_source_dead_letters_total{source="shop"}'), 1);
      // The slot moved past it: PostgreSQL does not send the transaction again.
      await eventually(
        async () => ((await confirmedFlush(db, n.slot)) ?? 0n) > 0n,
        5000,
        'the slot confirmed',
      );

      assert.equal((await replaySourceDeadLetter(herald, letter!.id)).status, 422, 'still refused');
      refusing = false;
      assert.equal((await replaySourceDeadLetter(herald, letter!.id)).status, 200);
      const replayed = (await allEvents(herald)).find((e) => e.subject === '2');
      assert.equal(replayed?.id, letter!.position);
      assert.deepEqual(env(replayed!).after, { id: 2, v: 'stream' });
      assert.deepEqual(await sourceDeadLetters(herald, 'shop'), []);
    } finally {
      await h?.close();
      await n.cleanup(db);
      await db.end();
    }
  });
});

describe('debezium source: events from elsewhere over HTTP', () => {
  const root = new URL('../../../shared/conformance/debezium/', import.meta.url).pathname;
  const files = (dir: string, out: string[] = []): string[] => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) files(full, out);
      else if (name.endsWith('.json')) out.push(relative(root, full));
    }
    return out.sort();
  };
  let h: TestHerald;
  before(async () => {
    h = await startTestHerald(`
sources:
  dbz:
    kind: debezium
    keys: { s1.a: [pk] }
`);
  });
  after(async () => {
    await h.close();
  });

  it('takes every conformance file as a connector would post it, and stores the change events', async () => {
    const rejected = new Set([
      'cloudevents-converter/postgresql.avro-data.cloudevent.json',
      'postgresql/key.doc-form.with-schema.json',
      'postgresql/key.jsonconverter-form.with-schema.json',
      'postgresql/key.payload-only.json',
      'upstream-test-resources/serde-unwrapped.json',
    ]);
    const ignored = new Set([
      'postgresql/tombstone.value.json',
      'postgresql/transaction-begin.json',
      'postgresql/transaction-end.json',
    ]);
    let accepted = 0;
    for (const file of files(root)) {
      const res = await h.post('/debezium', readFileSync(join(root, file), 'utf8'));
      const body = (await res.json()) as {
        accepted: number;
        duplicates: number;
        ignored: number;
        error?: string;
      };
      if (rejected.has(file)) {
        assert.equal(res.status, 400, file);
        assert.match(body.error!, /not a Debezium change event/, file);
      } else {
        assert.equal(res.status, 202, `${file}: ${JSON.stringify(body)}`);
        assert.equal(body.ignored, ignored.has(file) ? 1 : 0, file);
        accepted += body.accepted;
      }
    }
    // with-schema and payload-only forms of one change are one event.
    const events = (await allEvents(h)).filter((e) => e.type.startsWith('io.debezium.connector.'));
    assert.equal(events.length, accepted);
    const bob = events.find((e) => e.source === '/debezium/postgresql/test_server')!;
    assert.equal(bob.subject, '1');
    assert.deepEqual(env(bob).after, { pk: 1, name: 'Bob' });
    const create = events.filter(
      (e) => e.source === '/debezium/postgresql/PostgreSQL_server' && env(e).op === 'c',
    );
    assert.equal(create.length, 1, 'the JSON converter wrapper and the bare envelope are the same event');
  });

  it('takes a batch, and a redelivered change is a duplicate', async () => {
    const create = JSON.parse(readFileSync(join(root, 'postgresql/create.payload-only.json'), 'utf8'));
    const res = await h.post('/debezium', [create, { ...create, ts_ms: 1 }]);
    assert.equal(res.status, 202);
    assert.deepEqual(((await res.json()) as { duplicates: number }).duplicates, 2);
  });
});
