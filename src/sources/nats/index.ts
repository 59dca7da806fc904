import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { CheckResult, SourceContext, SourceKind, SourceMessage } from '../../engine/types.js';
import { errorMessage, HeraldError } from '../../errors.js';
import type { CloudEvent } from '../../events/types.js';
import { nats, natsConnectOptions, within } from '../../nats/index.js';
import { redactUrl } from '../../redact.js';
import { type NatsSourceConfig, natsSourceConfigSchema } from './config.js';
import { CoreReceiver } from './core.js';
import { JetStreamReceiver } from './jetstream.js';
import { natsMessageToEvents } from './message.js';

export { natsConnectOptions } from '../../nats/index.js';
// The source reads as its parts: config.ts (the schema), connection.ts, core.ts (core NATS
// subscriptions), jetstream.ts (a durable pull consumer), message.ts (mapping a message to events
// and setting it aside).
export { type NatsSourceConfig, natsSourceConfigSchema } from './config.js';
export { natsMessageToEvents } from './message.js';

export const natsSource: SourceKind<NatsSourceConfig> = {
  kind: 'nats',
  description:
    'NATS subjects (core, with queue groups, or a JetStream durable consumer); CloudEvents in structured or binary mode, other JSON mapped by config.',
  configSchema: natsSourceConfigSchema,
  create(name, config, context) {
    return new NatsSource(name, config, context);
  },
};

class NatsSource {
  private nc: NatsConnection | null = null;
  private connected = false;
  private readonly server: string;
  private readonly logger: Logger;
  /** Core subscriptions or a JetStream consumer, as configured. */
  private readonly receiver: CoreReceiver | JetStreamReceiver;

  constructor(
    private readonly name: string,
    private readonly config: NatsSourceConfig,
    context: SourceContext,
  ) {
    this.server = redactUrl(config.url);
    this.logger = context.logger;
    const receiver = { name, map: config.map, context, logger: context.logger };
    this.receiver = config.jetstream
      ? new JetStreamReceiver(receiver, config.subjects, config.jetstream, this.server)
      : new CoreReceiver(receiver, config.subjects, config.queue);
  }

  async start(): Promise<void> {
    const nc = await this.connect();
    this.nc = nc;
    this.connected = true;
    void this.watchStatus(nc);
    try {
      await this.receiver.start(nc);
    } catch (err) {
      // An open connection would keep the process alive after a failed start.
      this.nc = null;
      await nc.close().catch(() => undefined);
      throw err;
    }
    this.logger.info(
      {
        server: this.server,
        subjects: this.config.subjects,
        queue: this.config.queue,
        jetstream: this.config.jetstream
          ? { stream: this.config.jetstream.stream, consumer: this.config.jetstream.consumer }
          : undefined,
      },
      `source ${this.name}: receiving ${this.config.subjects.join(', ')} from ${this.server}${this.config.jetstream ? ` (JetStream ${this.config.jetstream.stream}/${this.config.jetstream.consumer})` : ''}`,
    );
  }

  async stop(): Promise<void> {
    const nc = this.nc;
    if (!nc) return;
    await this.receiver.stop();
    // Drain flushes the acks still in the socket buffer before closing; while NATS is
    // unreachable it cannot, and what was not acknowledged is redelivered anyway.
    if (!(await within(nc.drain(), 5000))) await nc.close().catch(() => undefined);
    this.nc = null;
  }

  async check(): Promise<CheckResult> {
    if (this.nc) {
      return this.connected
        ? { ok: true, detail: `connected to ${this.server}` }
        : {
            ok: false,
            detail: `disconnected from ${this.server}; reconnecting`,
            fix: 'check that NATS runs',
          };
    }
    let nc: NatsConnection;
    try {
      const [{ connect }] = await nats();
      nc = await connect({
        ...natsConnectOptions(this.config.url, this.name),
        maxReconnectAttempts: 0,
        timeout: 3000,
      });
    } catch (err) {
      return {
        ok: false,
        detail: `cannot connect to ${this.server}: ${errorMessage(err)}`,
        fix: 'check the URL, the credentials and that NATS runs',
      };
    }
    try {
      if (this.config.jetstream) {
        const [, { jetstreamManager }] = await nats();
        const jsm = await jetstreamManager(nc);
        await jsm.streams.info(this.config.jetstream.stream);
        return {
          ok: true,
          detail: `connected to ${this.server}; stream ${this.config.jetstream.stream} exists`,
        };
      }
      return { ok: true, detail: `connected to ${this.server}` };
    } catch (err) {
      return {
        ok: false,
        detail: `connected to ${this.server}, but JetStream stream ${this.config.jetstream?.stream}: ${errorMessage(err)}`,
        fix: 'create the stream (nats stream add) or correct jetstream.stream',
      };
    } finally {
      await nc.close();
    }
  }

  private async connect(): Promise<NatsConnection> {
    try {
      const [{ connect }] = await nats();
      return await connect(natsConnectOptions(this.config.url, this.name));
    } catch (err) {
      throw new HeraldError(
        'SOURCE_ERROR',
        `cannot connect to NATS at ${this.server}: ${errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        this.logger.warn(
          { server: this.server },
          `source ${this.name}: lost the NATS connection; reconnecting`,
        );
      } else if (status.type === 'reconnect') {
        this.connected = true;
        this.logger.info({ server: this.server }, `source ${this.name}: reconnected to NATS`);
      } else if (status.type === 'close') this.connected = false;
    }
  }

  /** A message set aside earlier, mapped again with the current config; its id default is its position. */
  replayDeadLetter(message: SourceMessage & { payload: Uint8Array }): CloudEvent[] {
    return natsMessageToEvents(
      { subject: message.subject ?? '', data: message.payload, headers: message.headers ?? {} },
      { sourceName: this.name, map: this.config.map, defaultId: () => message.position },
    );
  }
}
