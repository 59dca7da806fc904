import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './ports.js';

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

const PG_BIN = process.env.HERALD_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const runFile = promisify(execFile);

/** A PostgreSQL cluster of the test's own, which it may stop and start (the shared one on :5432 may not). */
export interface PrivatePostgres {
  port: number;
  /** The `postgres` database, user postgres, trust auth. */
  url: string;
  dataDir: string;
  running: boolean;
  /** `fast` ends every session cleanly; `immediate` is a crash (recovery runs at the next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts again on the same port. */
  start(): Promise<void>;
  /** Stops the cluster if it runs and deletes its files. */
  remove(): Promise<void>;
}

/**
 * initdb and start a throwaway cluster on a free port, with `settings` as server parameters (e.g.
 * `{ wal_level: 'logical' }`). PostgreSQL refuses to run as root, so under root the cluster's
 * files belong to the `postgres` user and every command runs as it.
 */
export async function startPrivatePostgres(settings: Record<string, string> = {}): Promise<PrivatePostgres> {
  const root = mkdtempSync(join(tmpdir(), 'herald-pg-'));
  const dataDir = join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  const run = async (bin: string, args: string[]) => {
    const [file, argv] = asRoot
      ? ['runuser', ['-u', 'postgres', '--', join(PG_BIN, bin), ...args]]
      : [join(PG_BIN, bin), args];
    try {
      return await runFile(file, argv, { timeout: 120_000 });
    } catch (err) {
      const e = err as Error & { stderr?: string; stdout?: string };
      throw new Error(`${bin} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  };
  if (asRoot) {
    const id = async (flag: string) => Number((await runFile('id', [flag, 'postgres'])).stdout.trim());
    chownSync(root, await id('-u'), await id('-g'));
  }
  const port = await freePort();
  const cluster: PrivatePostgres = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dataDir,
    running: false,
    async start() {
      await run('pg_ctl', [
        '-D',
        dataDir,
        '-l',
        join(root, 'server.log'),
        '-o',
        [
          `-p ${port} -k ${root} -c listen_addresses=127.0.0.1`,
          ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`),
        ].join(' '),
        '-w',
        '-t',
        '120',
        'start',
      ]);
      cluster.running = true;
    },
    async stop(mode = 'fast') {
      await run('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '120', 'stop']);
      cluster.running = false;
    },
    async remove() {
      if (cluster.running) await cluster.stop('immediate').catch(() => undefined);
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    await run('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
    await cluster.start();
  } catch (err) {
    await cluster.remove();
    throw err;
  }
  return cluster;
}
