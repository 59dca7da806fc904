// `node --import tsx bench/cdc.ts [--rows N] [--projection]`: PostgreSQL → Herald's log
// throughput of the postgres-cdc source on this machine: the first snapshot, then streamed
// changes, with SQLite at synchronous=FULL. With --projection, Herald also keeps a view (upsert of
// each row) from that log in the same process, and the rates are until the view has every change. Needs the local PostgreSQL (wal_level=logical); cleans up its slot and table.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { startHerald } from '../src/app.js';
import { createLogger } from '../src/logger.js';
import { postgresCdcSource } from '../src/sources/postgres-cdc/index.js';
import { tempDir } from '../test/support/herald.js';
import { cdcNames, PG_URL, pgClient } from '../test/support/postgres.js';

const argRows = process.argv.indexOf('--rows');
const ROWS = argRows > 0 ? Number(process.argv[argRows + 1]) : 100_000;
const TXN_ROWS = 500;
const PROJECTION = process.argv.includes('--projection');

const n = cdcNames();
const table = n.table('bench');
const db = await pgClient();
const dir = tempDir('herald-bench-cdc-');
await db.query(
  `CREATE TABLE ${table} (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, stock int NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`,
);
await db.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
await db.query(
  `INSERT INTO ${table} (id, name, price, stock) SELECT g, 'product ' || g, (g % 1000) / 10.0, g % 100 FROM generate_series(1, $1) g`,
  [ROWS],
);
writeFileSync(
  join(dir.path, 'herald.yaml'),
  `
sources:
  shop:
    kind: postgres-cdc
    url: ${PG_URL}
    tables: [${table}]
    slot: ${n.slot}
    publication: ${n.publication}
${
  PROJECTION
    ? `projections:
  stock:
    filter: { exact: { type: io.debezium.connector.postgresql.DataChangeEvent } }
    key: id
    rules:
      - { upsert: after }`
    : ''
}
`,
);

// Phase 0: the source alone — reading PostgreSQL and building the CloudEvents, with an ingest
// that only counts — so the source's own ceiling is visible apart from the event log's.
async function sourceOnly(): Promise<{ snapshotRowsPerSec: number; streamRowsPerSec: number }> {
  const names = cdcNames();
  let seen = 0;
  const kv = new Map<string, unknown>();
  const config = postgresCdcSource.configSchema.parse({
    url: PG_URL,
    tables: [table],
    slot: names.slot,
    publication: names.publication,
  });
  await postgresCdcSource.prepare?.(config);
  const source = postgresCdcSource.create('bench', config, {
    logger: createLogger({ level: 'warn' }),
    ingest: async (events) => {
      seen += events.length;
      return events.map((e) => ({ id: e.id, source: e.source, duplicate: false }));
    },
    deadLetter: async () => {},
    kv: {
      get: async <T>(ns: string, k: string) => (kv.get(`${ns}/${k}`) ?? null) as T | null,
      set: async (ns, k, v) => void kv.set(`${ns}/${k}`, v),
      delete: async (ns, k) => void kv.delete(`${ns}/${k}`),
      setIfAbsent: async () => true,
    },
    env: {},
  });
  const until = async (total: number) => {
    while (seen < total) await new Promise((r) => setTimeout(r, 5));
  };
  try {
    let t0 = Date.now();
    await source.start();
    await until(ROWS);
    const snapshotMs = Date.now() - t0;
    t0 = Date.now();
    for (let from = 1; from <= ROWS; from += TXN_ROWS) {
      await db.query(`UPDATE ${table} SET stock = stock + 1 WHERE id BETWEEN $1 AND $2`, [
        from,
        from + TXN_ROWS - 1,
      ]);
    }
    await until(2 * ROWS);
    const streamMs = Date.now() - t0;
    return {
      snapshotRowsPerSec: Math.round((ROWS / snapshotMs) * 1000),
      streamRowsPerSec: Math.round((ROWS / streamMs) * 1000),
    };
  } finally {
    await source.stop();
    await names.cleanup(db);
  }
}
const sourceAlone = await sourceOnly();

const herald = await startHerald({
  configFile: join(dir.path, 'herald.yaml'),
  dataDir: dir.path,
  port: 0,
  host: '127.0.0.1',
  env: {},
  logger: createLogger({ level: 'warn' }),
});
const count = () => herald.engine.store.events.count();
async function waitFor(total: number) {
  while ((await count()) < total) await new Promise((r) => setTimeout(r, 20));
}
/** Until the projection has applied every event in the log so far. */
async function projected(): Promise<void> {
  if (!PROJECTION) return;
  const [last] = await herald.engine.store.events.list({ limit: 1 });
  while ((await herald.engine.store.projections.cursor('stock')) < (last?.seq ?? 0))
    await new Promise((r) => setTimeout(r, 20));
}

// CPU time of this process (Herald: decoding, events, SQLite) per phase: on a busy machine the
// wall-clock rates understate what Herald can do, the CPU figure does not.
let cpu = process.cpuUsage();
const cpuMs = () => {
  const d = process.cpuUsage(cpu);
  cpu = process.cpuUsage();
  return Math.round((d.user + d.system) / 1000);
};
try {
  let t0 = Date.now();
  await waitFor(ROWS);
  const snapshotMs = Date.now() - t0;
  await projected();
  const snapshotProjectedMs = Date.now() - t0;
  const snapshotCpu = cpuMs();

  // Streamed: updates in transactions of TXN_ROWS rows, written as fast as PostgreSQL takes them.
  t0 = Date.now();
  for (let from = 1; from <= ROWS; from += TXN_ROWS) {
    await db.query(`UPDATE ${table} SET stock = stock + 1, updated_at = now() WHERE id BETWEEN $1 AND $2`, [
      from,
      from + TXN_ROWS - 1,
    ]);
  }
  const writtenMs = Date.now() - t0;
  await waitFor(2 * ROWS);
  const streamMs = Date.now() - t0;
  await projected();
  const streamProjectedMs = Date.now() - t0;
  const streamCpu = cpuMs();

  // Small transactions: one row each, from 8 connections at once.
  const SMALL = Math.min(20_000, ROWS);
  const writers = await Promise.all(Array.from({ length: 8 }, () => pgClient()));
  t0 = Date.now();
  let next = 0;
  await Promise.all(
    writers.map(async (w) => {
      while (next < SMALL) {
        const id = ++next;
        await w.query(`UPDATE ${table} SET stock = stock - 1 WHERE id = $1`, [id]);
      }
    }),
  );
  await waitFor(2 * ROWS + SMALL);
  const smallMs = Date.now() - t0;
  const smallCpu = cpuMs();
  await Promise.all(writers.map((w) => w.end()));

  const rate = (rows: number, ms: number) => Math.round((rows / ms) * 1000);
  const result = {
    rows: ROWS,
    sourceAlone,
    snapshot: {
      ms: snapshotMs,
      rowsPerSec: rate(ROWS, snapshotMs),
      rowsPerCpuSec: rate(ROWS, snapshotCpu),
      ...(PROJECTION ? { throughProjectionPerSec: rate(ROWS, snapshotProjectedMs) } : {}),
    },
    stream: {
      ms: streamMs,
      rowsPerSec: rate(ROWS, streamMs),
      rowsPerCpuSec: rate(ROWS, streamCpu),
      ...(PROJECTION ? { throughProjectionPerSec: rate(ROWS, streamProjectedMs) } : {}),
      postgresWriteMs: writtenMs,
      txnRows: TXN_ROWS,
    },
    singleRowTransactions: {
      rows: SMALL,
      ms: smallMs,
      rowsPerSec: rate(SMALL, smallMs),
      rowsPerCpuSec: rate(SMALL, smallCpu),
      connections: 8,
    },
    load: loadavg().map((l) => Math.round(l * 10) / 10),
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await herald.stop();
  await n.cleanup(db);
  await db.end();
  dir.remove();
}
