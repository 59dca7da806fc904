#!/usr/bin/env node
// Step "save": writes the registered customer (with its subscription tier), its users and their
// role assignments in one transaction, then prints the follow-up CloudEvents (one JSON per line)
// that Herald appends to its log. Idempotent: a redelivered event finds its rows and reports them
// again without duplicating. Exit 3 (permanent) when the event itself is malformed; exit 1
// (retried) when the database refuses it, e.g. a tier or role missing from the catalogue: adding
// it and replaying the dead letter completes the step.
import pg from 'pg';

const event = JSON.parse(process.argv[2] ?? '{}');
const customerId = event.subject;
const data = event.data ?? {};
if (!customerId || !data.company_name || !data.subscription_tier || !Array.isArray(data.users)) {
  console.error(
    'customer-registered needs subject (customer UUID), data.company_name, data.subscription_tier and data.users',
  );
  process.exit(3); // permanent: listed in permanentExitCodes
}
const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
await client.connect();
try {
  await client.query('BEGIN');
  await client.query(
    `INSERT INTO corporate_customers (id, company_name, contact_email, subscription_tier) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO NOTHING`,
    [customerId, data.company_name, data.contact_email, data.subscription_tier],
  );
  for (const user of data.users) {
    await client.query(
      `INSERT INTO users (id, customer_id, name, email) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
      [user.id, customerId, user.name, user.email],
    );
    for (const role of user.roles ?? []) {
      await client.query(
        'INSERT INTO user_role_assignments (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [user.id, role],
      );
    }
  }
  await client.query('COMMIT');
} catch (err) {
  await client.query('ROLLBACK').catch(() => {});
  console.error(
    `could not save customer ${customerId}: ${err.message}${err.detail ? ` (${err.detail})` : ''}`,
  );
  process.exit(1); // retried
} finally {
  await client.end();
}
const base = { specversion: '1.0', source: 'knapscen.disco', datacontenttype: 'application/json' };
console.log(
  JSON.stringify({
    ...base,
    id: `customer-saved-${customerId}`,
    type: 'disco.knapscen.customer.saved',
    subject: customerId,
    data: {
      company_name: data.company_name,
      contact_email: data.contact_email,
      subscription_tier: data.subscription_tier,
      users: data.users.length,
    },
  }),
);
for (const user of data.users) {
  console.log(
    JSON.stringify({
      ...base,
      id: `user-saved-${user.id}`,
      type: 'disco.knapscen.user.saved',
      subject: customerId,
      data: { user_id: user.id, name: user.name, email: user.email, roles: user.roles ?? [] },
    }),
  );
}
