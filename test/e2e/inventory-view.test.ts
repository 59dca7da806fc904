import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { eventually, metricValue, repoRoot, startTestHerald, type TestHerald } from '../support/herald.js';
import { cdcNames, PG_URL, pgClient } from '../support/postgres.js';

const conformance = (file: string) =>
  JSON.parse(readFileSync(join(repoRoot, '../shared/conformance/debezium/postgresql', file), 'utf8'));
const recipe = readFileSync(join(repoRoot, 'examples/inventory-view/herald.yaml'), 'utf8');

type ViewRow = { key: string; value: Record<string, unknown>; updatedAt: number };

async function viewRows(h: TestHerald, name: string): Promise<ViewRow[]> {
  const out: ViewRow[] = [];
  let after = '';
  for (;;) {
    const res = await h.get(
      `/api/views/${name}?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`,
    );
    assert.equal(res.status, 200);
    const page = (await res.json()) as { rows: ViewRow[]; next: string | null };
    out.push(...page.rows);
    if (!page.next) return out;
    after = page.next;
  }
}

/** The commit time in the shop's database of the change at `lsn` (a second apart). */
const committedAt = (lsn: number) => 1_736_936_400_000 + lsn * 1000;
/** Debezium reads each change a quarter of a second after its commit. */
const readAt = (lsn: number) => committedAt(lsn) + 250;

/** A Debezium envelope for a products/order_items change posted to /debezium. */
function change(table: string, op: string, before: unknown, after: unknown, lsn: number) {
  return {
    before,
    after,
    source: {
      connector: 'postgresql',
      name: 'shop',
      db: 'shop',
      schema: 'public',
      table,
      txId: lsn,
      lsn,
      ts_ms: committedAt(lsn),
    },
    op,
    ts_ms: readAt(lsn),
  };
}

describe('inventory-view: Debezium events over HTTP (embedded store)', () => {
  let h: TestHerald;
  before(async () => {
    // The recipe without its CDC source, plus a view of the conformance files' customers table.
    const config = recipe.replace(/ {2}shop:\n(?: {4}.*\n)+/, '').replace(
      'projections:\n',
      `projections:
  customers:
    key: id
    rules:
      - filter: { sql: "iodebeziumtable = 'customers' AND iodebeziumop <> 'd'" }
        upsert: after
      - filter: { sql: "iodebeziumtable = 'customers' AND iodebeziumop = 'd'" }
        delete: true
`,
    );
    h = await startTestHerald(config);
  });
  after(() => h?.close());

  it('the conformance files, posted to /debezium, create, update and delete a view row', async () => {
    for (const file of ['create.payload-only.json', 'update.with-schema.json']) {
      const res = await h.post('/debezium', conformance(file));
      assert.equal(res.status, 202, file);
    }
    const row = await eventually(
      async () => {
        const res = await h.get('/api/views/customers/1');
        if (res.status !== 200) return undefined;
        const body = (await res.json()) as ViewRow;
        return body.value.first_name === 'Anne Marie' ? body : undefined;
      },
      5000,
      'customer 1 updated',
    );
    assert.deepEqual(row.value, {
      id: 1,
      first_name: 'Anne Marie',
      last_name: 'Kretchmar',
      email: 'annek@noanswer.org',
    });
    assert.equal((await h.post('/debezium', conformance('delete.payload-only.json'))).status, 202);
    await eventually(async () => (await h.get('/api/views/customers/1')).status === 404, 5000, 'row deleted');
    const missing = await h.get('/api/views/customers/1');
    assert.match(((await missing.json()) as { error: string }).error, /no row with key "1"/);
    const unknown = await h.get('/api/views/nope');
    assert.equal(unknown.status, 404);
    assert.match(
      ((await unknown.json()) as { error: string }).error,
      /no view named "nope" \(configured: customers, inventory\)/,
    );
  });

  it('bad input goes to the DLQ with its reason, the stream keeps flowing, and a replay after the fix applies it', async () => {
    const posts = [
      change(
        'products',
        'c',
        null,
        { id: 7, name: 'Lamp', description: 'Desk lamp, brass', price: '19.90', stock_quantity: 12 },
        100,
      ),
      // An order for a product the view does not have yet: cannot be applied.
      change('order_items', 'c', null, { id: 1, product_id: 8, quantity: 2 }, 101),
      // Without product_id: no key.
      change('order_items', 'c', null, { id: 2, quantity: 1 }, 102),
      change('warehouses', 'c', null, { id: 1 }, 103),
      change('order_items', 'c', null, { id: 3, product_id: 7, quantity: 3 }, 104),
    ];
    for (const p of posts) assert.equal((await h.post('/debezium', p)).status, 202);
    const lamp = await eventually(
      async () => {
        const res = await h.get('/api/views/inventory/7');
        const body = res.status === 200 ? ((await res.json()) as ViewRow) : undefined;
        return body?.value.stock_quantity === 9 ? body : undefined;
      },
      5000,
      'lamp decremented after the bad events',
    );
    // The seed's item shape; the order item (lsn 104) was the row's last change.
    assert.deepEqual(lamp.value, {
      id: 7,
      name: 'Lamp',
      description: 'Desk lamp, brass',
      price: 19.9,
      stock_quantity: 9,
      last_updated: new Date(committedAt(104)).toISOString(),
      cdc_timestamp: readAt(104),
    });

    const dead = await eventually(
      async () => {
        const res = await h.get('/api/dlq?channel=projection:inventory&limit=10');
        const body = (await res.json()) as { deadLetters: { id: number; lastError: string }[] };
        // The customers events of the first test are not the recipe's tables either.
        const ours = body.deadLetters.filter((d) => !/table customers/.test(d.lastError));
        return ours.length === 3 ? ours : undefined;
      },
      5000,
      'three dead letters',
    );
    const reasons = dead.map((d) => d.lastError).sort();
    assert.match(reasons[0]!, /decrement stock_quantity: row 8 does not exist in inventory/);
    assert.match(reasons[1]!, /no rule of projection inventory matches this event .*table warehouses/);
    assert.match(reasons[2]!, /rule 5: key \(\{\{ event.data.after.product_id \}\}\) gave no key/);

    // The fix: product 8 appears; replaying its order item now applies it, once.
    assert.equal(
      (
        await h.post(
          '/debezium',
          change('products', 'c', null, { id: 8, name: 'Desk', price: '120.00', stock_quantity: 11 }, 105),
        )
      ).status,
      202,
    );
    await eventually(async () => (await h.get('/api/views/inventory/8')).status === 200, 5000, 'desk');
    const orderDead = dead.find((d) => /row 8/.test(d.lastError))!;
    const replay = await h.post(`/api/dlq/${orderDead.id}/replay`, '');
    assert.equal(replay.status, 200, await replay.clone().text());
    const desk = await eventually(
      async () => {
        const body = (await (await h.get('/api/views/inventory/8')).json()) as ViewRow;
        return body.value.stock_quantity === 9 ? body : undefined;
      },
      5000,
      'desk decremented by the replayed order',
    );
    assert.equal(desk.value.stock_quantity, 9);
    // Crossing 10 on the replay raised the alert, which reached the inbox.
    await eventually(
      async () => {
        const inbox = (await (await h.get('/api/inbox?limit=50')).json()) as {
          messages: { message: { text: string } }[];
        };
        return inbox.messages.some((m) => m.message.text === 'Low stock: Desk (8) is down to 9');
      },
      5000,
      'low-stock message for the desk',
    );
    // Replaying an applied event again changes nothing.
    await eventually(
      async () => {
        const d = (await (await h.get(`/api/deliveries/${orderDead.id}`)).json()) as { status: string };
        return d.status === 'delivered';
      },
      5000,
      'replayed delivery delivered',
    );
    // What the inventory service's operators watched, on /metrics: the three customers changes of
    // the first test and the three bad events are dead letters; the replayed order item was
    // applied (lamp, its order, desk, the replay) and raised the second low-stock alert.
    const metric = (name: string) => metricValue(h, `${name}{projection="inventory"}`);
    await eventually(
      async () => (await metric('herald_projection_events_applied_total')) === 4,
      5000,
      'four changes applied to the inventory',
    );
    assert.equal(await metric('herald_projection_dead_letters_total'), 6);
    assert.equal(await metric('herald_projection_events_failed_total'), 6);
    assert.equal(await metric('herald_projection_alerts_total'), 2);
    assert.equal(await metric('herald_projection_lag_events'), 0);
    const views = (await (await h.get('/api/views')).json()) as { views: { name: string; rows: number }[] };
    assert.deepEqual(
      views.views.map((v) => [v.name, v.rows]),
      [
        ['customers', 0],
        ['inventory', 2],
      ],
    );
  });
});

describe('inventory-view: PostgreSQL CDC (the recipe as written)', () => {
  const n = cdcNames();
  const schema = `shop_${n.suffix}`;
  let db: pg.Client;
  let h: TestHerald;
  before(async () => {
    db = await pgClient();
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`SET search_path = ${schema}`);
    await db.query(readFileSync(join(repoRoot, 'examples/inventory-view/schema.sql'), 'utf8'));
    // Rows before the start arrive through the snapshot (op r).
    await db.query(
      `INSERT INTO products VALUES (1, 'Lamp', 'Desk lamp, brass', 19.90, 12), (2, 'Desk', 'Oak', 120.00, 50), (3, 'Chair', NULL, 45.50, 30)`,
    );
    await db.query('INSERT INTO order_items (product_id, quantity) VALUES (2, 5)');
    h = await startTestHerald(recipe, {
      env: {
        SHOP_DATABASE_URL: PG_URL,
        SHOP_SCHEMA: schema,
        SHOP_SLOT: n.slot,
        SHOP_PUBLICATION: n.publication,
      },
    });
  });
  after(async () => {
    await h?.close();
    await n.cleanup(db);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
  });

  const startedAt = Date.now();
  const groundTruth = async () =>
    (
      await db.query(
        `SELECT p.id, p.name, p.description, p.price::float8 AS price,
                p.stock_quantity - coalesce(sum(o.quantity), 0)::int AS stock
         FROM products p LEFT JOIN order_items o ON o.product_id = p.id GROUP BY p.id ORDER BY p.id::text`,
      )
    ).rows.map((r) => ({
      key: String(r.id),
      value: { id: r.id, name: r.name, description: r.description, price: r.price, stock_quantity: r.stock },
    }));
  /** The row without its times, which the database cannot say in advance. */
  const withoutTimes = ({ last_updated, cdc_timestamp, ...rest }: Record<string, unknown>) => rest;

  const lowStockTexts = async () => {
    const inbox = (await (await h.get('/api/inbox?limit=100')).json()) as {
      messages: { message: { text: string } }[];
    };
    return inbox.messages.map((m) => m.message.text).reverse();
  };

  it('the view equals the SQL ground truth; the low-stock alert fires once per crossing', async () => {
    const orders = [2, 1, 1]; // Lamp: 12 → 10 → 9 (crossing) → 8 (still below: no alert)
    for (const q of orders)
      await db.query('INSERT INTO order_items (product_id, quantity) VALUES (1, $1)', [q]);
    await db.query(`UPDATE products SET price = 17.50, stock_quantity = stock_quantity + 20 WHERE id = 1`); // restock → 28
    const beforeLastOrder = Date.now();
    await db.query('INSERT INTO order_items (product_id, quantity) VALUES (1, 20)'); // 8: the second crossing
    const afterLastOrder = Date.now();
    await db.query(`UPDATE products SET name = 'Big desk' WHERE id = 2`);
    await db.query(`INSERT INTO products VALUES (4, 'Shelf', 'Pine', 80.00, 9)`); // born below: no crossing
    await db.query('DELETE FROM products WHERE id = 3');
    const truth = await groundTruth();
    const rows = await eventually(
      async () => {
        const view = (await viewRows(h, 'inventory')).map((r) => ({ key: r.key, value: r.value }));
        const comparable = view.map((r) => ({ key: r.key, value: withoutTimes(r.value) }));
        return JSON.stringify(comparable) === JSON.stringify(truth) ? view : undefined;
      },
      15_000,
      'the view to equal the ground truth',
    );
    assert.equal(rows.length, 3);
    const lamp = rows.find((r) => r.key === '1')!.value;
    assert.deepEqual(withoutTimes(lamp), {
      id: 1,
      name: 'Lamp',
      description: 'Desk lamp, brass',
      price: 17.5,
      stock_quantity: 8,
    });
    // last_updated: the commit time of the row's last change; cdc_timestamp: when the change was
    // read, after its commit.
    for (const { value } of rows) {
      assert.equal(typeof value.last_updated, 'string');
      assert.equal(typeof value.cdc_timestamp, 'number');
      const committed = Date.parse(value.last_updated as string);
      assert.ok(committed >= startedAt - 60_000 && committed <= Date.now(), `${value.last_updated}`);
      assert.ok((value.cdc_timestamp as number) >= committed, 'read after the commit');
    }
    // The lamp's last change was the 20-unit order item (the same machine's clock, a second's slack).
    const lampUpdated = Date.parse(lamp.last_updated as string);
    assert.ok(
      lampUpdated >= beforeLastOrder - 1000 && lampUpdated <= afterLastOrder + 1000,
      `lamp last_updated ${lamp.last_updated} is the last order's commit`,
    );
    await eventually(async () => (await lowStockTexts()).length >= 2, 5000, 'two low-stock messages');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await lowStockTexts(), [
      'Low stock: Lamp (1) is down to 9',
      'Low stock: Lamp (1) is down to 8',
    ]);
  });
});
