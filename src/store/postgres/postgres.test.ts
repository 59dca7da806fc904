import pg from 'pg';
import { runStoreContract } from '../contract.js';
import { createPostgresStore } from './index.js';

export const TEST_DATABASE_URL =
  process.env.HERALD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

// Each run gets its own schema so parallel runs and leftovers never collide.
const schema = `herald_contract_${process.pid}_${Date.now()}`;

runStoreContract(
  'postgres',
  async () => createPostgresStore({ url: TEST_DATABASE_URL, schema, poolSize: 4 }),
  async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  },
);
