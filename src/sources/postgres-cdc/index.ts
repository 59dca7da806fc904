import type { SourceKind } from '../../engine/types.js';
import { type PostgresCdcConfig, postgresCdcConfigSchema } from './config.js';
import { PostgresCdc } from './connector.js';

export { type PostgresCdcConfig, postgresCdcConfigSchema } from './config.js';

export const postgresCdcSource: SourceKind<PostgresCdcConfig> = {
  kind: 'postgres-cdc',
  description:
    'Row changes of PostgreSQL tables (logical replication, pgoutput) as Debezium-shaped CloudEvents: a snapshot first, then the stream.',
  configSchema: postgresCdcConfigSchema,
  create(name, config, context) {
    return new PostgresCdc(name, config, context);
  },
};
