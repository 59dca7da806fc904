import pg from 'pg';
import type { CheckResult, SourceContext } from '../../engine/types.js';
import { errorMessage, HeraldError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import type { PostgresCdcConfig } from './config.js';

/** Every connection that produces values sets these, so values.ts can rely on one text form. */
export const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO,MDY -c bytea_output=hex';
export const KV_NAMESPACE = 'postgres-cdc';

export interface TableInfo {
  schema: string;
  table: string;
  key: string[];
  replicaIdentity: string;
}

/** Kept in Herald's key-value store under the source's name. */
export interface SnapshotState {
  slot: string;
  snapshotDone: boolean;
  consistentPoint?: string;
}

/** What setup found: the tables to follow and whether the slot must be created (with a snapshot). */
export interface SetupResult {
  db: string;
  tables: TableInfo[];
  needSnapshot: boolean;
}

export function parseLsn(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

export const lsnNumber = (lsn: string) => Number(parseLsn(lsn));
const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
export const qualified = (t: { schema: string; table: string }) =>
  `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The wal_level check, separate so it can be tested without a second server. */
export function checkWalLevel(walLevel: string): void {
  if (walLevel !== 'logical') {
    throw new HeraldError(
      'SOURCE_ERROR',
      `wal_level is '${walLevel}'; set wal_level=logical and restart PostgreSQL`,
    );
  }
}

export function defaultName(prefix: string, sourceName: string): string {
  return `${prefix}_${sourceName.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

/**
 * How the source reaches one PostgreSQL server: connections with the session settings values.ts
 * needs, and errors that name the server without its password and say what to do.
 */
export class PostgresLink {
  /** The URL with its password redacted: the only form logs and errors show. */
  readonly where: string;

  constructor(
    private readonly url: string,
    private readonly logger: SourceContext['logger'],
  ) {
    this.where = redactUrl(url);
  }

  client(extra: Partial<pg.ClientConfig> = {}): pg.Client {
    const client = new pg.Client({
      connectionString: this.url,
      options: SESSION_OPTIONS,
      // Every value arrives as PostgreSQL's text; values.ts maps it the way Debezium does.
      types: { getTypeParser: () => (text: string) => text } as unknown as pg.CustomTypesConfig,
      ...extra,
    });
    client.on('error', (err) => this.logger.warn({ err: err.message }, 'PostgreSQL connection error'));
    return client;
  }

  async connect(client: pg.Client, what: string): Promise<void> {
    try {
      await client.connect();
    } catch (err) {
      throw this.explain(err, `cannot open ${what} to PostgreSQL at ${this.where}`);
    }
  }

  /** Turns PostgreSQL's errors into ones that say what to do. */
  explain(err: unknown, doing: string): HeraldError {
    if (err instanceof HeraldError) return err;
    const message = this.redact(errorMessage(err));
    if (
      /superuser or replication role|permission denied to start WAL sender|REPLICATION attribute/i.test(
        message,
      )
    ) {
      return new HeraldError(
        'SOURCE_ERROR',
        `${doing}: the role lacks the REPLICATION attribute logical replication needs (${message}); as a superuser run ALTER ROLE <role> WITH REPLICATION`,
        { cause: err },
      );
    }
    return new HeraldError('SOURCE_ERROR', `${doing}: ${message}`, { cause: err });
  }

  /** `text` with the URL (and its password) replaced by its redacted form. */
  redact(text: string): string {
    return text.replaceAll(this.url, this.where);
  }

  /** A replication-protocol service on this server, with the same session settings. */
  replicationOptions(): { connectionString: string; options: string } {
    return { connectionString: this.url, options: SESSION_OPTIONS };
  }
}

/** The slot and publication one source uses, and where it keeps its snapshot state. */
export interface SetupTarget {
  name: string;
  slot: string;
  publication: string;
  config: PostgresCdcConfig;
  link: PostgresLink;
  context: SourceContext;
}

/** `herald doctor`: wal_level and whether the slot exists, without changing anything. */
export async function checkSetup(target: SetupTarget): Promise<CheckResult> {
  const { link, slot } = target;
  const admin = link.client();
  try {
    await link.connect(admin, 'a connection');
    const level = (await admin.query('SHOW wal_level')).rows[0]?.wal_level as string;
    checkWalLevel(level);
    const found = await admin.query('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    return {
      ok: true,
      detail: `PostgreSQL at ${link.where}: wal_level logical, slot ${slot} ${found.rowCount ? 'exists' : 'not created yet'}`,
    };
  } catch (err) {
    return { ok: false, detail: errorMessage(err), fix: 'see the message' };
  } finally {
    await admin.end().catch(() => {});
  }
}

/**
 * Checks wal_level and the role, resolves the tables, creates or extends the publication, and
 * decides whether a snapshot is needed: a slot without a finished snapshot in this Herald's
 * store is dropped, to be created again with one.
 */
export async function setUp(target: SetupTarget): Promise<SetupResult> {
  const { link, context, slot } = target;
  const admin = link.client();
  await link.connect(admin, 'a connection');
  try {
    const level = (await admin.query('SHOW wal_level')).rows[0]?.wal_level as string;
    checkWalLevel(level);
    const role = await admin.query(
      'SELECT current_user AS name, current_database() AS db, rolreplication OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user',
    );
    const { name: roleName, db, ok } = role.rows[0] as { name: string; db: string; ok: boolean | string };
    if (ok !== true && ok !== 't') {
      throw new HeraldError(
        'SOURCE_ERROR',
        `role "${roleName}" lacks the REPLICATION attribute logical replication needs; as a superuser run ALTER ROLE ${quoteIdent(roleName)} WITH REPLICATION`,
      );
    }
    const tables = await resolveTables(target, admin);
    await ensurePublication(target, tables, admin);
    const state = await context.kv.get<SnapshotState>(KV_NAMESPACE, target.name);
    const existing = await admin.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [
      slot,
    ]);
    const slotExists = (existing.rowCount ?? 0) > 0;
    const needSnapshot = !(slotExists && state?.snapshotDone && state.slot === slot);
    if (needSnapshot && slotExists) {
      // A slot without a finished snapshot in this Herald's store: its snapshot cannot be
      // re-read (an exported snapshot dies with its connection), so start over.
      context.logger.warn({ slot }, `slot ${slot} has no completed snapshot in this Herald; recreating it`);
      await dropSlot(slot, admin);
    }
    return { db, tables, needSnapshot };
  } catch (err) {
    throw link.explain(err, `source ${target.name}`);
  } finally {
    await admin.end().catch(() => {});
  }
}

async function resolveTables(target: SetupTarget, admin: pg.Client): Promise<TableInfo[]> {
  const log = target.context.logger;
  const tables: TableInfo[] = [];
  for (const entry of target.config.tables) {
    const [schema, table] = entry.includes('.') ? (entry.split('.') as [string, string]) : ['public', entry];
    const found = await admin.query(
      `SELECT c.oid, c.relreplident,
              coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i
                 CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS key
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [schema, table],
    );
    const row = found.rows[0] as { relreplident: string; key: string | string[] } | undefined;
    if (!row) {
      throw new HeraldError(
        'SOURCE_ERROR',
        `source ${target.name}: table ${schema}.${table} does not exist in ${target.link.where}`,
      );
    }
    const key = Array.isArray(row.key) ? row.key : parseTextArray(row.key);
    const info: TableInfo = { schema, table, key, replicaIdentity: row.relreplident };
    if (key.length === 0) {
      log.warn(
        { table: `${schema}.${table}` },
        `table ${schema}.${table} has no primary key: its changes have no key and are skipped; add one with ALTER TABLE ${qualified(info)} ADD PRIMARY KEY (…)`,
      );
    }
    if (row.relreplident !== 'f') {
      log.warn(
        { table: `${schema}.${table}`, replicaIdentity: row.relreplident },
        `table ${schema}.${table} does not have REPLICA IDENTITY FULL, so updates and deletes carry no full "before"; fix: ALTER TABLE ${qualified(info)} REPLICA IDENTITY FULL`,
      );
    }
    tables.push(info);
  }
  return tables;
}

async function ensurePublication(target: SetupTarget, tables: TableInfo[], admin: pg.Client): Promise<void> {
  const { publication } = target;
  const pub = await admin.query('SELECT puballtables FROM pg_publication WHERE pubname = $1', [publication]);
  const list = tables.map(qualified).join(', ');
  if (pub.rowCount === 0) {
    try {
      await admin.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${list}`);
    } catch (err) {
      throw target.link.explain(
        err,
        `cannot create publication ${publication} (create it as the tables' owner: CREATE PUBLICATION ${publication} FOR TABLE ${list})`,
      );
    }
    target.context.logger.info({ publication }, `created publication ${publication}`);
    return;
  }
  if (pub.rows[0].puballtables === true || pub.rows[0].puballtables === 't') return;
  const have = await admin.query(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [publication],
  );
  const present = new Set(have.rows.map((r) => `${r.schemaname}.${r.tablename}`));
  const missing = tables.filter((t) => !present.has(`${t.schema}.${t.table}`));
  if (missing.length > 0) {
    await admin.query(
      `ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${missing.map(qualified).join(', ')}`,
    );
  }
}

async function dropSlot(slot: string, admin: pg.Client): Promise<void> {
  // A killed Herald's walsender may hold the slot for a moment after the kill.
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
      return;
    } catch (err) {
      if (attempt >= 40 || !/is active/i.test(errorMessage(err))) throw err;
      await sleep(250);
    }
  }
}

/** A slot just created with its exported snapshot, and the connection that must stay open until the snapshot is imported. */
export interface CreatedSlot {
  consistentPoint: string;
  snapshotName: string;
  exporter: pg.Client;
}

/** CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT: the snapshot and the slot's start are one instant. */
export async function createSlotWithSnapshot(target: SetupTarget): Promise<CreatedSlot> {
  const { link, slot } = target;
  const replication = link.client({ replication: 'database' } as Partial<pg.ClientConfig>);
  await link.connect(replication, 'a replication connection');
  try {
    const result = await replication.query(
      `CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput EXPORT_SNAPSHOT`,
    );
    const row = result.rows[0] as { consistent_point: string; snapshot_name: string };
    target.context.logger.info(
      { slot, consistentPoint: row.consistent_point },
      `created replication slot ${slot}`,
    );
    await target.context.kv.set(KV_NAMESPACE, target.name, {
      slot,
      snapshotDone: false,
      consistentPoint: row.consistent_point,
    } satisfies SnapshotState);
    return { consistentPoint: row.consistent_point, snapshotName: row.snapshot_name, exporter: replication };
  } catch (err) {
    await replication.end().catch(() => {});
    throw link.explain(err, `cannot create replication slot ${slot}`);
  }
}

/** `{a,b}` as PostgreSQL prints a name[] when no array parser ran. */
function parseTextArray(text: string): string[] {
  const inner = text.replace(/^\{|\}$/g, '');
  if (inner === '') return [];
  return inner.split(',').map((s) => s.replace(/^"|"$/g, ''));
}
