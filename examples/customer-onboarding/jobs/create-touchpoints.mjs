#!/usr/bin/env node
// Step "touchpoints": records the onboarding touchpoints of a customer and reports them.
import pg from 'pg';

const customerId = process.argv[2];
const kinds = process.argv.slice(3);
if (!customerId || kinds.length === 0) {
  console.error('usage: create-touchpoints.mjs <customer id> <kind>…');
  process.exit(3);
}
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
try {
  for (const kind of kinds) {
    await client.query('INSERT INTO touchpoints (customer_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
      customerId,
      kind,
    ]);
  }
} finally {
  await client.end();
}
console.log(
  JSON.stringify({
    specversion: '1.0',
    id: `touchpoints-created-${customerId}-${kinds.join('-')}`,
    source: 'knapscen.disco',
    type: 'disco.knapscen.touchpoints.created',
    subject: customerId,
    data: { kinds },
  }),
);
