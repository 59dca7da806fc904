import { join } from 'node:path';
import type { Logger } from 'pino';
import type { StoreConfig } from '../config/schema.js';
import { HeraldError } from '../errors.js';
import { createSqliteStore } from './sqlite/index.js';
import type { Store } from './types.js';

export type { Store } from './types.js';

/** Opens the store the config names. `dataDir` holds the SQLite file when no path is given. */
export async function openStore(config: StoreConfig, dataDir: string, logger: Logger): Promise<Store> {
  if (config.kind === 'sqlite') {
    return createSqliteStore({ path: config.path ?? join(dataDir, 'herald.db'), synchronous: config.synchronous, logger });
  }
  throw new HeraldError('CONFIG_INVALID', `store kind "${config.kind}" is not available in this build`);
}
