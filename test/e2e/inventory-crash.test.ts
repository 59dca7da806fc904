import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { eventually, type HeraldProcess, repoRoot, spawnHerald, tempDir } from '../support/herald.js';
import { dropSlot, PG_URL, pgClient, uniqueSuffix } from '../support/postgres.js';

const PRODUCTS = 200;
const ROUNDS = 40;
const ORDER_ITEMS_PER_ROUND = 400;
const RESTOCKS_PER_ROUND = 100;
const CHANGES = ROUNDS * (ORDER_ITEMS_PER_ROUND + RESTOCKS_PER_ROUND); // 20,000

type Row = { key: string; value: { stock_quantity: number } };

async function view(url: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let after = '';
  for (;;) {
    const page = (await (await fetch(`${url}/api/views/inventory?limit=1000${after}`)).json()) as {
      rows: Row[];
      next: string | null;
    };
    for (const r of page.rows) out.set(r.key, Number(r.value.stock_quantity));
    if (!page.next) break;
    after = `&after=${encodeURIComponent(page.next)}`;
  }
  return out;
}

describe('inventory-view crash: 20,000 changes while Herald is SIGKILLed twice', () => {
  const suffix = uniqueSuffix();
  const schema = `inventory_crash_${suffix}`;
  const slot = `herald_inv_crash_${suffix}`;
  const dir = tempDir('herald-inventory-crash-');
  let db: pg.Client;

  before(async () => {
    db = await pgClient();
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query(`SET search_path TO ${schema}`);
    await db.query(readFileSync(join(repoRoot, 'examples/inventory-view/schema.sql'), 'utf8'));
    await db.query(
      `INSERT INTO products (id, name, price, stock_quantity) SELECT g, 'product ' || g, 10 + g, 1000000 FROM generate_series(1, ${PRODUCTS}) g`,
    );
  });
  after(async () => {
    await dropSlot(db, slot).catch(() => undefined);
    await db.query(`DROP PUBLICATION IF EXISTS ${slot}`);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    dir.remove();
  });

  it('after the final restart the view equals the SQL ground truth: no double decrement, nothing lost', async () => {
    const args = [
      '--config',
      join(repoRoot, 'examples/inventory-view/herald.yaml'),
      '--data',
      join(dir.path, 'data'),
      '--port',
      '0',
    ];
    const env = { SHOP_DATABASE_URL: PG_URL, SHOP_SCHEMA: schema, SHOP_SLOT: slot, SHOP_PUBLICATION: slot };
    let herald: HeraldProcess = await spawnHerald(args, env);
    const writer = await pgClient();
    try {
      await writer.query(`SET search_path TO ${schema}`);
      for (let round = 1; round <= ROUNDS; round++) {
        await writer.query('BEGIN');
        await writer.query(
          `INSERT INTO order_items (product_id, quantity)
           SELECT 1 + (g * 7 + $1) % ${PRODUCTS}, 1 + g % 3 FROM generate_series(1, ${ORDER_ITEMS_PER_ROUND}) g`,
          [round],
        );
        await writer.query(
          `UPDATE products SET stock_quantity = stock_quantity + 5 WHERE id IN
           (SELECT 1 + (g * 13 + $1) % ${PRODUCTS} FROM generate_series(1, ${RESTOCKS_PER_ROUND}) g)`,
          [round],
        );
        await writer.query('COMMIT');
        if (round === Math.floor(ROUNDS / 3) || round === Math.floor((2 * ROUNDS) / 3)) {
          await herald.kill('SIGKILL');
          herald = await spawnHerald(args, env);
        }
      }
    } finally {
      await writer.end();
    }
    const { rows: changed } = await db.query(`SELECT (SELECT count(*) FROM order_items)::int AS items`);
    assert.equal(changed[0].items, ROUNDS * ORDER_ITEMS_PER_ROUND);
    const truth = new Map(
      (
        await db.query(
          `SELECT p.id, p.stock_quantity - coalesce(sum(o.quantity), 0)::int AS stock
           FROM products p LEFT JOIN order_items o ON o.product_id = p.id GROUP BY p.id`,
        )
      ).rows.map((r) => [String(r.id), Number(r.stock)]),
    );
    try {
      const final = await eventually(
        async () => {
          const v = await view(herald.url);
          return [...truth].every(([k, stock]) => v.get(k) === stock) ? v : undefined;
        },
        120_000,
        `the view to reach the ground truth after ${CHANGES} changes`,
      ).catch(async (err) => {
        const v = await view(herald.url);
        const wrong = [...truth].filter(([k, s]) => v.get(k) !== s).slice(0, 5);
        throw new Error(
          `${(err as Error).message}; e.g. ${JSON.stringify(wrong.map(([k, s]) => [k, s, v.get(k)]))}`,
        );
      });
      assert.equal(final.size, PRODUCTS);
      const dlq = (await (await fetch(`${herald.url}/api/status`)).json()) as { deadLetters: number };
      assert.equal(dlq.deadLetters, 0, 'nothing failed to apply');
    } finally {
      await herald.kill('SIGTERM');
    }
  });
});
