import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import pino from 'pino';
import { PG_URL, pgClient, uniqueSuffix } from '../../test/support/postgres.js';
import type { Store } from '../engine/store.js';
import { createPostgresStore } from '../store/postgres/index.js';
import { compileProjection } from './compile.js';
import { projectionSchema } from './config.js';
import { Projector } from './projector.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Several Herald processes append to one PostgreSQL log. Sequence values are taken before
 * commit, so an append holding a lower seq can commit after one holding a higher seq; the
 * projector must still apply both.
 */
describe('projector on PostgreSQL: an append that commits late is not skipped', () => {
  const schema = `herald_projector_${uniqueSuffix()}`;
  let store: Store;
  let admin: pg.Client;
  const open: pg.Client[] = [];
  before(async () => {
    admin = await pgClient();
    store = createPostgresStore({ url: PG_URL, schema, poolSize: 2 });
    await store.migrate();
  });
  after(async () => {
    for (const c of open) await c.end().catch(() => undefined);
    await store?.close();
    await admin?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin?.end();
  });

  /** Another process's connection to the same log. */
  const appender = async () => {
    const client = await pgClient();
    open.push(client);
    await client.query(`SET search_path = ${schema}`);
    return client;
  };
  const insert = async (client: pg.Client, id: string): Promise<number> => {
    const event = { specversion: '1.0', id, source: 'late-test', type: 'late.test' };
    const r = await client.query(
      `INSERT INTO events (id, source, type, received_at, event) VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING seq`,
      [id, event.source, event.type, Date.now(), JSON.stringify(event)],
    );
    return Number(r.rows[0].seq);
  };

  it('holds a committed event back while a lower seq is uncommitted, then applies both', async () => {
    const config = projectionSchema.parse({
      key: '{{ event.id }}',
      rules: [{ upsert: { id: '{{ event.id }}' } }],
    });
    const projection = compileProjection('seen', config, () => () => true);
    const projector = new Projector(store, [projection], async () => undefined, pino({ level: 'silent' }));
    const keys = async () => (await store.projections.list('seen', { limit: 100 })).map((r) => r.key);
    // Steps the projector until `want` holds, for a while (a write transaction left open elsewhere
    // on the shared server holds projections back).
    const stepUntil = async (want: (keys: string[]) => boolean) => {
      const deadline = Date.now() + 60_000;
      while (!want(await keys()) && Date.now() < deadline) {
        if ((await projector.step()) === 0) await sleep(50);
      }
      return keys();
    };

    await store.events.append(
      [{ specversion: '1.0', id: 'first', source: 'late-test', type: 'late.test' }],
      1,
    );
    assert.deepEqual(await stepUntil((k) => k.includes('first')), ['first']);

    const a = await appender();
    const b = await appender();
    await a.query('BEGIN');
    await b.query('BEGIN');
    const seqA = await insert(a, 'slow');
    const seqB = await insert(b, 'fast');
    assert.ok(seqA < seqB, 'the slow append holds the lower seq');
    await b.query('COMMIT');

    // While `slow` is uncommitted, `fast` (committed, higher seq) must not move the projector past it.
    for (let i = 0; i < 3; i++) await projector.step();
    assert.deepEqual(await keys(), ['first']);

    await a.query('COMMIT');
    assert.deepEqual(await stepUntil((k) => k.length === 3), ['fast', 'first', 'slow']);
  });
});
