import type { SourceKind } from '../../engine/types.js';
import { type PostgresCdcConfig, postgresCdcConfigSchema } from './config.js';

export { type PostgresCdcConfig, postgresCdcConfigSchema } from './config.js';

// The connector, and with it the PostgreSQL client and the logical replication library, is loaded
// by `prepare`, only when a postgres-cdc source is configured: a Herald without one does not load them.
let connector: typeof import('./connector.js') | undefined;

export const postgresCdcSource: SourceKind<PostgresCdcConfig> = {
  kind: 'postgres-cdc',
  description:
    'Row changes of PostgreSQL tables (logical replication, pgoutput) as Debezium-shaped CloudEvents: a snapshot first, then the stream.',
  configSchema: postgresCdcConfigSchema,
  async prepare() {
    connector ??= await import('./connector.js');
  },
  create(name, config, context) {
    if (!connector)
      throw new Error('a postgres-cdc source was created before its kind was prepared (SourceKind.prepare)');
    return new connector.PostgresCdc(name, config, context);
  },
};
