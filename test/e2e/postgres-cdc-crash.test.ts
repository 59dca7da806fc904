import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import type { DebeziumEnvelope } from '../../src/events/debezium.js';
import type { CloudEvent } from '../../src/events/types.js';
import { eventually, type HeraldProcess, spawnHerald, tempDir } from '../support/herald.js';
import { cdcNames, PG_URL, pgClient } from '../support/postgres.js';

const TRANSACTIONS = 1500;

async function logOf(url: string, source: string): Promise<CloudEvent[]> {
  const out: CloudEvent[] = [];
  let cursor = '';
  for (;;) {
    const res = await fetch(`${url}/api/events?limit=1000&source=${encodeURIComponent(source)}${cursor}`);
    const page = (await res.json()) as { events: { event: CloudEvent }[]; next: number | null };
    for (const e of page.events) out.push(e.event);
    if (page.next === null) break;
    cursor = `&before=${page.next}`;
  }
  return out.reverse();
}

describe('postgres-cdc crash: SIGKILL mid-stream', () => {
  const n = cdcNames();
  const table = n.table('crash');
  const dir = tempDir('herald-cdc-crash-');
  let db: pg.Client;
  before(async () => {
    db = await pgClient();
    await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL)`);
    await db.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
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
    topicPrefix: crash_${n.suffix}
`,
    );
  });
  after(async () => {
    await n.cleanup(db);
    await db.end();
    dir.remove();
  });

  it('after two kills and a restart every change is in the log exactly once', async () => {
    const args = ['--config', join(dir.path, 'herald.yaml'), '--data', join(dir.path, 'data'), '--port', '0'];
    let herald: HeraldProcess = await spawnHerald(args);
    await eventually(() => herald.output.join('').includes('streaming changes'), 15_000, 'streaming');
    const expected = new Set<string>();
    const writer = await pgClient();
    try {
      for (let i = 1; i <= TRANSACTIONS; i++) {
        await writer.query('BEGIN');
        await writer.query(`INSERT INTO ${table} VALUES ($1, 0)`, [i]);
        expected.add(`c:${i}`);
        if (i > 1) {
          await writer.query(`UPDATE ${table} SET v = v + 1 WHERE id = $1`, [i - 1]);
          expected.add(`u:${i - 1}`);
        }
        await writer.query('COMMIT');
        if (i === Math.floor(TRANSACTIONS / 3) || i === Math.floor((2 * TRANSACTIONS) / 3)) {
          await herald.kill('SIGKILL');
          herald = await spawnHerald(args);
        }
      }
    } finally {
      await writer.end();
    }
    const source = `/debezium/postgresql/crash_${n.suffix}`;
    const events = await eventually(
      async () => {
        const log = await logOf(herald.url, source);
        return log.length >= expected.size ? log : undefined;
      },
      60_000,
      'every change after the restarts',
    );
    await herald.kill('SIGTERM');
    const seen = events.map((e) => `${(e.data as DebeziumEnvelope).op}:${e.subject}`);
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'distinct ids');
    assert.equal(seen.length, expected.size, 'nothing twice');
    assert.deepEqual(new Set(seen), expected, 'nothing lost');
    // Each row's changes keep their order: its insert before its update.
    const position = new Map(seen.map((s, i) => [s, i]));
    for (let i = 1; i < TRANSACTIONS; i++) assert.ok(position.get(`c:${i}`)! < position.get(`u:${i}`)!);
  });
});
