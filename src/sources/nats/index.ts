import { randomUUID } from 'node:crypto';
import type { ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type {
  Msg,
  MsgHdrs,
  NatsConnection,
  NodeConnectionOptions,
  Subscription,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { CheckResult, SourceContext, SourceKind, SourceMessage } from '../../engine/types.js';
import { errorMessage, HeraldError } from '../../errors.js';
import { NotACloudEventError, parseNatsMessage } from '../../events/index.js';
import type { CloudEvent } from '../../events/types.js';
import { redactUrl } from '../../redact.js';
import { ingestIsolating } from '../isolate.js';
import { type EventMap, eventMapSchema, mapToEvent, urlSchema } from '../map.js';
import { TickBatcher } from '../tick-batcher.js';

const natsUrl = urlSchema(['nats:', 'tls:'], 'must be a nats:// or tls:// URL, e.g. nats://127.0.0.1:4222');

const jetstreamSchema = z.strictObject({
  stream: z.string().min(1).describe('Name of an existing JetStream stream holding the subjects.'),
  consumer: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only')
    .describe(
      'Durable pull consumer; created when missing (explicit acks, filtered to `subjects`). Herald processes using the same consumer share its messages.',
    ),
  batch: z.number().int().min(1).max(10_000).default(100).describe('Messages pulled per request.'),
  ackWaitMs: z
    .number()
    .int()
    .min(1000)
    .default(30_000)
    .describe(
      'When Herald creates the consumer: how long a message may stay unacknowledged before JetStream redelivers it. Well above the time a batch takes to be stored, so only the messages of a process that stopped or crashed come back, within half a minute.',
    ),
  maxDeliver: z
    .number()
    .int()
    .min(-1)
    .refine((n) => n !== 0, 'at least 1, or -1 for no limit')
    .default(-1)
    .describe(
      'When Herald creates the consumer: deliveries per message before JetStream gives up on it (-1: no limit). No limit by default on purpose: a message that fails mapping or validation, or whose event ingest refuses, is set aside in the source dead-letter table and terminated at its first delivery, so redelivery only follows a store outage or a stopped process, and a limit would make JetStream give up on messages during a long outage (those are then set aside too, named by JetStream’s advisory).',
    ),
  nakDelayMs: z
    .number()
    .int()
    .min(0)
    .default(1000)
    .describe(
      'When a batch cannot be stored (the store is unavailable), how long JetStream waits before redelivering it.',
    ),
});

export const natsSourceConfigSchema = z.strictObject({
  url: natsUrl
    .default('nats://127.0.0.1:4222')
    .describe('NATS server URL; user:password@ or token@ credentials may be part of it (never logged).'),
  subjects: z
    .array(z.string().min(1))
    .min(1, 'list at least one subject')
    .describe(
      'Subjects to receive (wildcards allowed). With `jetstream`, the consumer’s filter (several need NATS 2.10).',
    ),
  queue: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Queue group for core subscriptions: Herald processes with the same queue each get a share of the messages.',
    ),
  jetstream: jetstreamSchema
    .optional()
    .describe(
      'Consume from a JetStream stream instead of core NATS: messages are acknowledged only once their events are stored, so none is lost. Recommended.',
    ),
  map: eventMapSchema(
    '`subject` (the NATS subject), `body` (the JSON payload) and `headers`',
    'with JetStream `<stream>/<stream sequence>` (the same on redelivery), else the `Nats-Msg-Id` header or a new UUID',
  ).optional(),
});
export type NatsSourceConfig = z.infer<typeof natsSourceConfigSchema>;

// Loaded on first use, so a Herald without NATS sources does not pay for the client at start.
let modules: Promise<[typeof import('@nats-io/transport-node'), typeof import('@nats-io/jetstream')]> | null =
  null;
const nats = () => {
  modules ??= Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);
  return modules;
};

/** Connection options from a URL: credentials move to options so the server list holds none. */
export function natsConnectOptions(url: string, name: string): NodeConnectionOptions {
  const parsed = new URL(url);
  const options: NodeConnectionOptions = {
    servers: parsed.host,
    name: `herald/${name}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
  };
  if (parsed.protocol === 'tls:') options.tls = {};
  if (parsed.password) {
    options.user = decodeURIComponent(parsed.username);
    options.pass = decodeURIComponent(parsed.password);
  } else if (parsed.username) options.token = decodeURIComponent(parsed.username);
  return options;
}

function headerRecord(headers: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const key of headers.keys()) out[key] = headers.get(key);
  return out;
}

function msgIdOf(headers: Record<string, string>): string | undefined {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === 'nats-msg-id' && v) return v;
  return undefined;
}

/** The events a message carries (CloudEvents binding first, then the `map` block). */
export function natsMessageToEvents(
  message: { subject: string; data: Uint8Array; headers: Record<string, string> },
  options: { sourceName: string; map?: EventMap; defaultId: () => string },
): CloudEvent[] {
  try {
    return parseNatsMessage({ headers: message.headers, payload: message.data }).events;
  } catch (err) {
    if (!(err instanceof NotACloudEventError)) throw err;
    if (!options.map)
      throw new NotACloudEventError(`not a CloudEvent (${err.message}) and no map is configured`);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(message.data).toString('utf8'));
  } catch {
    throw new NotACloudEventError('the payload is not JSON, so the map cannot read it');
  }
  return [
    mapToEvent(
      options.map,
      { subject: message.subject, body, headers: message.headers },
      { id: options.defaultId(), source: `herald://${options.sourceName}`, data: body },
    ),
  ];
}

/** Whether `promise` settled within `ms` (a rejection counts as settled). */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return settled;
}

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
  private subscriptions: Subscription[] = [];
  private consumeMessages: ConsumerMessages | null = null;
  private readonly server: string;
  private readonly logger: Logger;
  private readonly core: TickBatcher<Msg>;
  private readonly js: TickBatcher<JsMsg>;

  constructor(
    private readonly name: string,
    private readonly config: NatsSourceConfig,
    private readonly context: SourceContext,
  ) {
    this.server = redactUrl(config.url);
    this.logger = context.logger;
    this.core = new TickBatcher((batch) => this.ingestCore(batch));
    this.js = new TickBatcher((batch) => this.ingestJetStream(batch), config.jetstream?.batch ?? 1000);
  }

  async start(): Promise<void> {
    const nc = await this.connect();
    this.nc = nc;
    this.connected = true;
    void this.watchStatus(nc);
    try {
      if (this.config.jetstream) await this.startJetStream(nc, this.config.jetstream);
      else {
        for (const subject of this.config.subjects) {
          this.subscriptions.push(
            nc.subscribe(subject, {
              queue: this.config.queue,
              callback: (err, msg) => {
                if (err)
                  this.logger.warn({ subject, err: err.message }, `NATS subscription ${subject} failed`);
                else this.core.push(msg);
              },
            }),
          );
        }
      }
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
    for (const sub of this.subscriptions) sub.unsubscribe();
    if (this.consumeMessages) await within(this.consumeMessages.close(), 5000);
    // Pulled but not yet handed to ingest: give them straight back for another process.
    for (const msg of this.js.take()) msg.nak();
    const dropped = this.core.take().length;
    if (dropped > 0) {
      this.logger.warn(
        { dropped },
        `source ${this.name}: ${dropped} core NATS messages arrived during shutdown and were not stored (core NATS is at-most-once; use jetstream to keep them)`,
      );
    }
    await Promise.all([this.core.idle(), this.js.idle()]);
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

  private async startJetStream(nc: NatsConnection, js: NonNullable<NatsSourceConfig['jetstream']>) {
    const [{ nanos }, { AckPolicy, DeliverPolicy, jetstream, jetstreamManager }] = await nats();
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(js.stream);
    } catch (err) {
      throw new HeraldError(
        'SOURCE_ERROR',
        `JetStream stream ${js.stream} is not available on ${this.server}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    const exists = await jsm.consumers.info(js.stream, js.consumer).then(
      () => true,
      () => false,
    );
    if (!exists) {
      const subjects = this.config.subjects;
      await jsm.consumers
        .add(js.stream, {
          durable_name: js.consumer,
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(js.ackWaitMs),
          max_deliver: js.maxDeliver,
          ...(subjects.length === 1 ? { filter_subject: subjects[0] } : { filter_subjects: subjects }),
        })
        .catch((err) => {
          throw new HeraldError(
            'SOURCE_ERROR',
            `cannot create JetStream consumer ${js.consumer} on stream ${js.stream}: ${errorMessage(err)}`,
            { cause: err },
          );
        });
      this.logger.info({ stream: js.stream, consumer: js.consumer }, 'created the JetStream consumer');
    }
    this.watchMaxDeliveries(nc, jsm, js);
    const consumer = await jetstream(nc).consumers.get(js.stream, js.consumer);
    this.consumeMessages = await consumer.consume({
      max_messages: js.batch,
      callback: (msg) => this.js.push(msg),
    });
  }

  /**
   * With a `maxDeliver` limit, JetStream gives up on a message silently; its advisory names it, and
   * the message (still in the stream) is set aside here so it is not lost from sight. One process
   * of those sharing the consumer handles each advisory (a queue group).
   */
  private watchMaxDeliveries(
    nc: NatsConnection,
    jsm: JetStreamManager,
    js: NonNullable<NatsSourceConfig['jetstream']>,
  ): void {
    this.subscriptions.push(
      nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${js.stream}.${js.consumer}`, {
        queue: `herald-max-deliveries-${js.consumer}`,
        callback: (err, advisory) => {
          if (err) return;
          void this.setAsideGivenUp(jsm, js.stream, advisory.data);
        },
      }),
    );
  }

  private async setAsideGivenUp(jsm: JetStreamManager, stream: string, advisory: Uint8Array): Promise<void> {
    let seq = 0;
    let deliveries = 0;
    try {
      const parsed = JSON.parse(Buffer.from(advisory).toString('utf8')) as {
        stream_seq?: unknown;
        deliveries?: unknown;
      };
      seq = Number(parsed.stream_seq);
      deliveries = Number(parsed.deliveries);
      if (!Number.isSafeInteger(seq) || seq <= 0) return;
      const stored = await jsm.streams.getMessage(stream, { seq });
      if (!stored) return;
      await this.context.deadLetter(
        {
          position: `${stream}/${seq}`,
          subject: stored.subject,
          headers: headerRecord(stored.header),
          payload: stored.data,
        },
        `JetStream gave up on it after ${deliveries} deliveries (maxDeliver)`,
      );
    } catch (err) {
      this.logger.error(
        { position: `${stream}/${seq}`, err: errorMessage(err) },
        `source ${this.name}: JetStream gave up on the message at ${stream}/${seq} after ${deliveries} deliveries and it could not be set aside: ${errorMessage(err)}`,
      );
    }
  }

  private toEvents(
    msg: { subject: string; data: Uint8Array; headers: Record<string, string> },
    defaultId: () => string,
  ) {
    return natsMessageToEvents(msg, { sourceName: this.name, map: this.config.map, defaultId });
  }

  /** A message set aside earlier, mapped again with the current config; its id default is its position. */
  replayDeadLetter(message: SourceMessage & { payload: Uint8Array }): CloudEvent[] {
    return this.toEvents(
      { subject: message.subject ?? '', data: message.payload, headers: message.headers ?? {} },
      () => message.position,
    );
  }

  /**
   * Core NATS is at-most-once: a message that cannot become a stored event is set aside in the
   * source dead-letter table; a batch that cannot be stored (the store is down) is lost, and the
   * log says so.
   */
  private async ingestCore(batch: Msg[]): Promise<void> {
    const mapped: { message: NatsMessage; events: CloudEvent[] }[] = [];
    for (const msg of batch) {
      const headers = headerRecord(msg.headers);
      // The position of a core message is the id its events get by default: nothing else names it.
      const message = {
        subject: msg.subject,
        data: msg.data,
        headers,
        position: msgIdOf(headers) ?? randomUUID(),
      };
      try {
        mapped.push({ message, events: this.toEvents(message, () => message.position) });
      } catch (err) {
        await this.setAsideCore(message, errorMessage(err));
      }
    }
    let refused: { item: { message: NatsMessage }; reason: string }[];
    try {
      refused = await ingestIsolating(
        mapped,
        (m) => m.events,
        (events) => this.context.ingest(events),
      );
    } catch (err) {
      const lost = mapped.reduce((n, m) => n + m.events.length, 0);
      this.logger.error(
        { lost, err: errorMessage(err) },
        `source ${this.name}: ${lost} events from core NATS could not be stored and are lost: ${errorMessage(err)} (use jetstream for redelivery)`,
      );
      return;
    }
    for (const { item, reason } of refused) await this.setAsideCore(item.message, reason);
  }

  private async setAsideCore(message: NatsMessage, reason: string): Promise<void> {
    await this.context.deadLetter(deadLetterOf(message), reason).catch((err) => {
      this.logger.error(
        { subject: message.subject, reason, err: errorMessage(err) },
        `source ${this.name}: dropped a message on ${message.subject} (${reason}); it could not be set aside either: ${errorMessage(err)}`,
      );
    });
  }

  /**
   * Acknowledged once stored. A message that cannot become a stored event (its mapping or
   * validation fails, or ingest refuses its event) is set aside in the source dead-letter table
   * and terminated, alone: its companions are acknowledged. Only an outage (the store cannot take
   * the batch, or cannot keep a dead letter) naks, for JetStream to redeliver after `nakDelayMs`.
   */
  private async ingestJetStream(batch: JsMsg[]): Promise<void> {
    const js = this.config.jetstream!;
    const mapped: { msg: JsMsg; message: NatsMessage; events: CloudEvent[] }[] = [];
    const failed: { msg: JsMsg; message: NatsMessage; reason: string }[] = [];
    for (const msg of batch) {
      const message: NatsMessage = {
        subject: msg.subject,
        data: msg.data,
        headers: headerRecord(msg.headers),
        position: `${msg.info.stream}/${msg.info.streamSequence}`,
      };
      try {
        mapped.push({ msg, message, events: this.toEvents(message, () => message.position) });
      } catch (err) {
        failed.push({ msg, message, reason: errorMessage(err) });
      }
    }
    let refused: typeof failed;
    try {
      refused = (
        await ingestIsolating(
          mapped,
          (m) => m.events,
          (events) => this.context.ingest(events),
        )
      ).map(({ item, reason }) => ({ ...item, reason }));
    } catch (err) {
      const count = mapped.reduce((n, m) => n + m.events.length, 0);
      this.logger.warn(
        { count, err: errorMessage(err) },
        `source ${this.name}: could not store ${count} events (${errorMessage(err)}); JetStream redelivers them`,
      );
      for (const { msg } of mapped) msg.nak(js.nakDelayMs);
      await this.setAsideJetStream(failed);
      return;
    }
    const set = new Set(refused.map((r) => r.msg));
    for (const { msg } of mapped) if (!set.has(msg)) msg.ack();
    await this.setAsideJetStream([...failed, ...refused]);
  }

  private async setAsideJetStream(messages: { msg: JsMsg; message: NatsMessage; reason: string }[]) {
    const js = this.config.jetstream!;
    for (const { msg, message, reason } of messages) {
      try {
        await this.context.deadLetter(deadLetterOf(message), reason);
      } catch (err) {
        // Not kept anywhere yet: it must come back rather than be terminated.
        this.logger.warn(
          { position: message.position, err: errorMessage(err) },
          `source ${this.name}: could not set aside the message at ${message.position} (${errorMessage(err)}); JetStream redelivers it`,
        );
        msg.nak(js.nakDelayMs);
        continue;
      }
      // Without a reason: servers before 2.10.4 do not understand "+TERM <reason>".
      msg.term();
    }
  }
}

/** A NATS message as the source reads it, with its position (JetStream) or default id (core). */
interface NatsMessage {
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  position: string;
}

const deadLetterOf = (message: NatsMessage): SourceMessage => ({
  position: message.position,
  subject: message.subject,
  headers: message.headers,
  payload: message.data,
});
