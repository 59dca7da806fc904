import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { runNotificationKeyContract } from '../../../test/contracts/notification-keys.js';
import { runStoreContract } from '../../../test/contracts/store.js';
import type { StoredEvent } from '../types.js';
import { createPostgresStore } from './index.js';
import { migrations } from './migrations.js';

export const TEST_DATABASE_URL =
  process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// Each run gets its own schema so parallel runs and leftovers never collide.
const schema = `herald_contract_${process.pid}_${Date.now()}`;

const dropSchema = async (name: string) => {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
  await client.end();
};

/**
 * A schema as an older release left it: migrations up to `version` applied and recorded, then
 * `fill` writes rows in that release's shape.
 */
async function oldSchema(name: string, version: number, fill: (old: pg.Client) => Promise<void>) {
  const old = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await old.connect();
  try {
    await old.query(`CREATE SCHEMA ${name}`);
    await old.query(`SET search_path = ${name}`);
    await old.query(
      'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT, applied_at BIGINT)',
    );
    for (const m of migrations.filter((m) => m.version <= version)) {
      await old.query(m.sql);
      await old.query('INSERT INTO schema_migrations VALUES ($1, $2, $3)', [m.version, m.name, 1]);
    }
    await fill(old);
  } finally {
    await old.end();
  }
}

runStoreContract(
  'postgres',
  async () => createPostgresStore({ url: TEST_DATABASE_URL, schema, poolSize: 4 }),
  () => dropSchema(schema),
);

const keysSchema = `${schema}_keys`;
runNotificationKeyContract(
  'postgres',
  async () => createPostgresStore({ url: TEST_DATABASE_URL, schema: keysSchema, poolSize: 4 }),
  () => dropSchema(keysSchema),
);

describe('postgres upgrade: a projection cursor from before the transaction ids', () => {
  const upgraded = `herald_upgrade_${process.pid}_${Date.now()}`;
  after(() => dropSchema(upgraded));

  it('continues right after its event, then follows new appends', async () => {
    // The schema as the release before it left it: migrations 1–4, events, a projector's cursor.
    const seqs: number[] = [];
    await oldSchema(upgraded, 4, async (old) => {
      for (const id of ['old-1', 'old-2', 'old-3', 'old-4']) {
        const event = { specversion: '1.0', id, source: 'upgrade', type: 'upgrade.test' };
        const r = await old.query(
          `INSERT INTO events (id, source, type, received_at, event) VALUES ($1, $2, $3, 1, $4::jsonb) RETURNING seq`,
          [id, event.source, event.type, JSON.stringify(event)],
        );
        seqs.push(Number(r.rows[0].seq));
      }
      await old.query(
        `INSERT INTO projection_cursors (projection, seq, updated_at) VALUES ('legacy', $1, 1)`,
        [seqs[1]],
      );
    });

    const store = createPostgresStore({ url: TEST_DATABASE_URL, schema: upgraded, poolSize: 2 });
    try {
      await store.migrate();
      const cursor = await store.projections.cursor('legacy');
      assert.equal(cursor, seqs[1]);
      await store.events.append(
        [{ specversion: '1.0', id: 'new-1', source: 'upgrade', type: 'upgrade.test' }],
        2,
      );
      // A write transaction left open elsewhere on the shared server may hold events back a while.
      const follow = async (from: number, want: number) => {
        const read: StoredEvent[] = [];
        const deadline = Date.now() + 60_000;
        while (read.length < want && Date.now() < deadline) {
          const page = await store.events.readForProjection(from, 100);
          read.push(...page.events);
          from = page.next;
          if (page.events.length === 0) await new Promise((r) => setTimeout(r, 50));
        }
        return read.map((e) => e.event.id);
      };
      assert.deepEqual(await follow(cursor, 3), ['old-3', 'old-4', 'new-1']);
      assert.deepEqual(await follow(0, 5), ['old-1', 'old-2', 'old-3', 'old-4', 'new-1']);
    } finally {
      await store.close();
    }
  });
});

describe('postgres upgrade: routing outcomes move beside the events', () => {
  const upgraded = `herald_upgrade7_${process.pid}_${Date.now()}`;
  after(() => dropSchema(upgraded));

  it('keeps what was routed and routes what was not', async () => {
    // Migrations 1–6 as the release before left them: one event routed, one waiting.
    await oldSchema(upgraded, 6, async (old) => {
      for (const [id, routedAt] of [
        ['routed', 5],
        ['waiting', null],
      ] as const) {
        const event = { specversion: '1.0', id, source: 'upgrade', type: 'upgrade.test' };
        await old.query(
          `INSERT INTO events (id, source, type, received_at, routed_at, routing, event)
           VALUES ($1, $2, $3, 1, $4, $5::jsonb, $6::jsonb)`,
          [
            id,
            event.source,
            event.type,
            routedAt,
            routedAt === null ? null : JSON.stringify({ matched: ['t'], errors: [], deliveries: 0 }),
            JSON.stringify(event),
          ],
        );
      }
    });

    const store = createPostgresStore({ url: TEST_DATABASE_URL, schema: upgraded, poolSize: 2 });
    try {
      await store.migrate();
      const routed = await store.events.findById('routed', 'upgrade');
      assert.equal(routed?.routedAt, 5);
      assert.deepEqual(routed?.routing, { matched: ['t'], errors: [], deliveries: 0 });
      const waiting = await store.events.unrouted(10);
      assert.deepEqual(
        waiting.map((e) => e.event.id),
        ['waiting'],
      );
      await store.routing.commit(
        [{ seq: waiting[0]!.seq, record: { matched: [], errors: [], deliveries: 0 }, deliveries: [] }],
        9,
      );
      assert.deepEqual(await store.events.unrouted(10), []);
      assert.equal((await store.events.get(waiting[0]!.seq))?.routedAt, 9);
    } finally {
      await store.close();
    }
  });
});

describe('postgres upgrade: source dead letters', () => {
  const upgraded = `herald_upgrade9_${process.pid}_${Date.now()}`;
  after(() => dropSchema(upgraded));

  it('a schema from before them keeps its events and gains the table', async () => {
    await oldSchema(upgraded, 8, async (old) => {
      const event = { specversion: '1.0', id: 'kept', source: 'upgrade', type: 'upgrade.test' };
      await old.query(
        `INSERT INTO events (id, source, type, received_at, event) VALUES ($1, $2, $3, 1, $4::jsonb)`,
        [event.id, event.source, event.type, JSON.stringify(event)],
      );
    });
    const store = createPostgresStore({ url: TEST_DATABASE_URL, schema: upgraded, poolSize: 2 });
    try {
      await store.migrate();
      assert.equal((await store.events.findById('kept', 'upgrade'))?.event.type, 'upgrade.test');
      const letter = await store.sourceDlq.add(
        {
          source: 'orders',
          position: 'ORDERS/7',
          subject: 'orders.created',
          headers: {},
          payload: '{}',
          payloadEncoding: 'utf8',
          payloadBytes: 2,
          truncated: false,
          reason: 'type renders empty',
        },
        5,
      );
      assert.deepEqual(
        (await store.sourceDlq.list({ limit: 5, source: 'orders' })).map((l) => l.id),
        [letter.id],
      );
    } finally {
      await store.close();
    }
  });
});

describe('postgres notification keys across two stores (two pools, as two processes have)', () => {
  const shared = `herald_keys_race_${process.pid}_${Date.now()}`;
  after(() => dropSchema(shared));

  it('concurrent routers never let more through a throttle or a dedupe key than it allows', async () => {
    const a = createPostgresStore({ url: TEST_DATABASE_URL, schema: shared, poolSize: 4 });
    await a.migrate();
    const b = createPostgresStore({ url: TEST_DATABASE_URL, schema: shared, poolSize: 4 });
    try {
      const ids = Array.from({ length: 40 }, (_, i) => `race-${i}`);
      const appended = await a.events.append(
        ids.map((id) => ({ specversion: '1.0', id, source: 'race', type: 'race.test' })),
        1,
      );
      // Each event is routed by one of the two stores, one routing batch per event, all at once.
      await Promise.all(
        appended.map((r, i) =>
          (i % 2 === 0 ? a : b).routing.commit(
            [
              {
                seq: r.seq,
                record: { matched: ['race'], errors: [], deliveries: 2 },
                deliveries: [
                  {
                    eventSeq: r.seq,
                    trigger: 'race',
                    action: 0,
                    channel: 'race',
                    recipient: 'U1',
                    idempotencyKey: `throttle:${ids[i]}`,
                    maxAttempts: 3,
                    notBefore: 1_000,
                    gates: {
                      scope: 'race#0',
                      eventId: ids[i]!,
                      at: 1_000,
                      throttle: { key: 'U1', limit: 7, perMs: 60_000 },
                    },
                  },
                  {
                    eventSeq: r.seq,
                    trigger: 'race',
                    action: 1,
                    channel: 'race',
                    recipient: 'U1',
                    idempotencyKey: `dedupe:${ids[i]}`,
                    maxAttempts: 3,
                    notBefore: 1_000,
                    gates: {
                      scope: 'race#1',
                      eventId: ids[i]!,
                      at: 1_000,
                      dedupe: { key: 'same', windowMs: 60_000 },
                    },
                  },
                ],
              },
            ],
            2,
          ),
        ),
      );
      const all = await a.deliveries.list({ limit: 200 });
      const pendingOf = (action: number) =>
        all.filter((d) => d.action === action && d.status === 'pending').length;
      assert.equal(all.length, 80);
      assert.equal(pendingOf(0), 7);
      assert.equal(pendingOf(1), 1);
      assert.equal(all.filter((d) => d.lastError === 'throttled: 7/1m for key "U1"').length, 33);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
