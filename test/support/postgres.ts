import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The test server: trust auth, wal_level=logical. Other worktrees share it, so names are unique. */
export const PG_URL = process.env.HERALD_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export async function pgClient(url = PG_URL): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}

export const uniqueSuffix = () => randomBytes(4).toString('hex');

/** A CDC fixture: unique table prefix, slot and publication names, and their removal. */
export interface CdcNames {
  suffix: string;
  slot: string;
  publication: string;
  table(name: string): string;
  /** Drops the slot (waiting for its walsender to let go), the publication and every table made. */
  cleanup(db: pg.Client): Promise<void>;
}

export function cdcNames(): CdcNames {
  const suffix = uniqueSuffix();
  const tables: string[] = [];
  const names: CdcNames = {
    suffix,
    slot: `herald_test_${suffix}`,
    publication: `herald_test_${suffix}`,
    table(name) {
      const full = `${name}_${suffix}`;
      tables.push(full);
      return full;
    },
    async cleanup(db) {
      await dropSlot(db, names.slot);
      await db.query(`DROP PUBLICATION IF EXISTS ${names.publication}`);
      for (const t of tables) await db.query(`DROP TABLE IF EXISTS ${t} CASCADE`);
    },
  };
  return names;
}

export async function dropSlot(db: pg.Client, slot: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const found = await db.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    if (found.rowCount === 0) return;
    const pid = found.rows[0].active_pid as number | null;
    if (pid === null) {
      await db.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => {});
    } else if (attempt > 20) {
      // A walsender whose client was killed can linger until its timeout; end it.
      await db.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => {});
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`replication slot ${slot} could not be dropped`);
}

/** The confirmed position of a slot, as a bigint (null when the slot does not exist). */
export async function confirmedFlush(db: pg.Client, slot: string): Promise<bigint | null> {
  const r = await db.query(
    'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  if (r.rowCount === 0 || !r.rows[0].lsn) return null;
  const [hi, lo] = (r.rows[0].lsn as string).split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}
