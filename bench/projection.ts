// `node --import tsx bench/projection.ts [--events N]`: throughput of the inventory-view
// projection on this machine: Debezium-shaped product and order-item events already in the log
// (SQLite, synchronous=FULL) applied by the projector, one store transaction per batch.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/load.js';
import type { CloudEvent } from '../src/events/types.js';
import { createLogger } from '../src/logger.js';
import { registries } from '../src/plugins.js';
import { Projector } from '../src/projections/projector.js';
import { createSqliteStore } from '../src/store/sqlite/index.js';
import { repoRoot, tempDir } from '../test/support/herald.js';

const argEvents = process.argv.indexOf('--events');
const EVENTS = argEvents > 0 ? Number(process.argv[argEvents + 1]) : 100_000;
const PRODUCTS = 1000;

const recipe = readFileSync(join(repoRoot, 'examples/inventory-view/herald.yaml'), 'utf8');
const config = loadConfig(recipe, registries, {
  env: { SHOP_DATABASE_URL: 'postgres://unused@127.0.0.1/x' },
});
const dir = tempDir('herald-bench-projection-');
const store = createSqliteStore({ path: join(dir.path, 'herald.db') });

const change = (i: number, table: string, after: Record<string, unknown>): CloudEvent => ({
  specversion: '1.0',
  id: `bench-${i}`,
  source: '/debezium/postgresql/bench',
  type: 'io.debezium.connector.postgresql.DataChangeEvent',
  iodebeziumtable: table,
  iodebeziumop: 'c',
  data: { before: null, after, source: { table }, op: 'c', ts_ms: 1 },
});
const events: CloudEvent[] = [];
for (let i = 1; i <= PRODUCTS; i++)
  events.push(
    change(i, 'products', { id: i, name: `product ${i}`, price: '9.99', stock_quantity: 1_000_000 }),
  );
for (let i = PRODUCTS + 1; i <= EVENTS; i++)
  events.push(change(i, 'order_items', { id: i, product_id: (i % PRODUCTS) + 1, quantity: 1 }));
for (let i = 0; i < events.length; i += 5000)
  await store.events.append(events.slice(i, i + 5000), Date.now());

let alerts = 0;
const projector = new Projector(
  store,
  config.projections,
  async (e) => {
    alerts += e.length;
  },
  createLogger({ level: 'warn' }),
);
const started = performance.now();
while ((await projector.step()) > 0) {}
const seconds = (performance.now() - started) / 1000;
const rows = await store.projections.counts();
console.log(
  JSON.stringify({
    events: EVENTS,
    seconds: Number(seconds.toFixed(2)),
    eventsPerSecond: Math.round(EVENTS / seconds),
    rows: rows.inventory,
    alerts,
    store: 'sqlite synchronous=full',
  }),
);
await store.close();
dir.remove();
