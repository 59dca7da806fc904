import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { eventually, metricValue, startTestHerald, type TestHerald } from '../support/herald.js';
import { cdcNames, PG_URL, pgClient } from '../support/postgres.js';

describe('postgres-cdc metrics: change lag, positions and the replication slot', () => {
  const n = cdcNames();
  const items = n.table('items');
  const changeSource = `/debezium/postgresql/shop_${n.suffix}`;
  let db: pg.Client;
  let h: TestHerald;
  before(async () => {
    db = await pgClient();
    await db.query(`CREATE TABLE ${items} (id int PRIMARY KEY, note text)`);
    h = await startTestHerald(`
sources:
  shop:
    kind: postgres-cdc
    url: ${PG_URL}
    tables: [${items}]
    slot: ${n.slot}
    publication: ${n.publication}
    topicPrefix: shop_${n.suffix}
projections:
  items:
    key: id
    rules:
      - filter: { sql: "iodebeziumop <> 'd'" }
        upsert: after
`);
  });
  after(async () => {
    await h?.close();
    await n.cleanup(db);
    await db.end();
  });

  const lsnOf = (sample: string) => metricValue(h, sample);

  it('the newest change’s LSN and lag move as rows change; the slot lag counts WAL Herald has not confirmed', async () => {
    const lsnSample = `herald_cdc_lsn{source="${changeSource}"}`;
    await db.query(`INSERT INTO ${items} VALUES (1, 'one')`);
    const first = await eventually(async () => (await lsnOf(lsnSample)) || undefined, 15_000, 'a first LSN');
    await db.query(`INSERT INTO ${items} VALUES (2, 'two')`);
    const second = await eventually(
      async () => {
        const lsn = await lsnOf(lsnSample);
        return lsn > first ? lsn : undefined;
      },
      15_000,
      'the LSN to move on',
    );
    const walNow = (await db.query(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS lsn`))
      .rows[0].lsn as number;
    assert.ok(second <= walNow, 'a position the server has written');
    const text = await (await h.get('/metrics')).text();
    assert.match(text, new RegExp(`herald_cdc_lag_seconds\\{source="${changeSource}"\\} [0-9.e-]+`));
    const lag = await metricValue(h, `herald_cdc_lag_seconds{source="${changeSource}"}`);
    assert.ok(lag >= 0 && lag < 60, `stored within a minute of the commit (${lag} s)`);
    await eventually(
      async () => (await metricValue(h, 'herald_projection_events_applied_total{projection="items"}')) === 2,
      10_000,
      'both rows applied',
    );
    assert.match(text, /herald_replication_slot_lag_bytes\{source="shop"\} \d+/);

    // Herald stops reading the slot; what PostgreSQL writes meanwhile is the slot's lag.
    await h.engine.sources.get('shop')!.stop();
    const position = async () =>
      BigInt((await db.query(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS at`)).rows[0].at);
    const from = await position();
    await db.query(`INSERT INTO ${items} SELECT g, repeat('x', 200) FROM generate_series(3, 2002) g`);
    const written = Number((await position()) - from);
    assert.ok(written > 100_000);
    // The sample is reused for up to 10 s: wait for a fresh one.
    const slotLag = await eventually(
      async () => {
        const bytes = await metricValue(h, 'herald_replication_slot_lag_bytes{source="shop"}');
        return bytes >= written ? bytes : undefined;
      },
      20_000,
      'the slot lag to cover the WAL written since',
    );
    const truth = (
      await db.query(
        `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 AS lag
         FROM pg_replication_slots WHERE slot_name = $1`,
        [n.slot],
      )
    ).rows[0].lag as number;
    assert.ok(slotLag <= truth, `${slotLag} ≤ ${truth}: sampled, not invented`);
  });
});
