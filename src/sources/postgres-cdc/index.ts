import type {
  CheckResult,
  Source,
  SourceContext,
  SourceKind,
  SourceLag,
  SourceMessage,
} from '../../engine/types.js';
import type { CloudEvent } from '../../events/types.js';
import { validateEvent } from '../../events/validate.js';
import { type PostgresCdcConfig, postgresCdcConfigSchema } from './config.js';
import type { PostgresCdc } from './connector.js';

export { type PostgresCdcConfig, postgresCdcConfigSchema } from './config.js';

/**
 * A postgres-cdc source whose connector (and with it the PostgreSQL client and the logical
 * replication library) is loaded when it is first started, checked or sampled: a Herald without
 * such a source does not load them.
 */
class PostgresCdcSource implements Source {
  private connector: Promise<PostgresCdc> | null = null;

  constructor(
    private readonly name: string,
    private readonly config: PostgresCdcConfig,
    private readonly context: SourceContext,
  ) {}

  private load(): Promise<PostgresCdc> {
    this.connector ??= import('./connector.js').then(
      ({ PostgresCdc }) => new PostgresCdc(this.name, this.config, this.context),
    );
    return this.connector;
  }

  async start(): Promise<void> {
    await (await this.load()).start();
  }

  async stop(): Promise<void> {
    if (this.connector) await (await this.connector).stop();
  }

  async check(): Promise<CheckResult> {
    return (await this.load()).check();
  }

  async lag(): Promise<SourceLag> {
    return (await this.load()).lag();
  }

  /** A change set aside earlier: its event as it was made (its data is the row as it was then). */
  replayDeadLetter(message: SourceMessage & { payload: Uint8Array }): CloudEvent[] {
    return [validateEvent(JSON.parse(Buffer.from(message.payload).toString('utf8')))];
  }
}

export const postgresCdcSource: SourceKind<PostgresCdcConfig> = {
  kind: 'postgres-cdc',
  description:
    'Row changes of PostgreSQL tables (logical replication, pgoutput) as Debezium-shaped CloudEvents: a snapshot first, then the stream.',
  configSchema: postgresCdcConfigSchema,
  create(name, config, context) {
    return new PostgresCdcSource(name, config, context);
  },
};
