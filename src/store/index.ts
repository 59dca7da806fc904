import { join } from 'node:path';
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import type { StoreConfig } from './config.js';
import { createSqliteStore } from './sqlite/index.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

/** `HERALD_STORE=postgres://…` selects the PostgreSQL store without editing the config. */
export function storeFromEnv(config: StoreConfig, env: NodeJS.ProcessEnv): StoreConfig {
  const url = env.HERALD_STORE;
  if (!url) return config;
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url, poolSize: 10, schema: 'herald' };
  if (url === 'sqlite') return { kind: 'sqlite', synchronous: 'full' };
  throw new HeraldError('CONFIG_INVALID', 'HERALD_STORE must be a postgres:// URL or "sqlite"');
}

/** Opens the store the config names. `dataDir` holds the SQLite file when no path is given. */
export async function openStore(config: StoreConfig, dataDir: string, logger: Logger): Promise<Store> {
  if (config.kind === 'sqlite') {
    return createSqliteStore({
      path: config.path ?? join(dataDir, 'herald.db'),
      synchronous: config.synchronous,
      logger,
    });
  }
  if (config.kind === 'postgres') {
    // Loaded only for a postgres store: an embedded Herald does not load the PostgreSQL client.
    const { createPostgresStore } = await import('./postgres/index.js');
    return createPostgresStore({ url: config.url, poolSize: config.poolSize, schema: config.schema, logger });
  }
  throw new HeraldError('CONFIG_INVALID', `unknown store kind "${(config as { kind: string }).kind}"`);
}
