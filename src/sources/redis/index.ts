import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { CheckResult, SourceContext, SourceKind, SourceMessage } from '../../engine/types.js';
import { errorMessage, HeraldError } from '../../errors.js';
import { newEventId } from '../../events/ids.js';
import { validateEvent } from '../../events/index.js';
import type { CloudEvent } from '../../events/types.js';
import { redactUrl } from '../../redact.js';
import { ingestIsolating } from '../isolate.js';
import { type EventMap, eventMapSchema, mapToEvent, urlSchema } from '../map.js';
import { TickBatcher } from '../tick-batcher.js';

const redisUrl = urlSchema(
  ['redis:', 'rediss:'],
  'must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379',
);

const streamSchema = z.strictObject({
  key: z.string().min(1).describe('The stream’s key.'),
  group: z
    .string()
    .min(1)
    .default('herald')
    .describe('Consumer group; created when missing. Herald processes in one group share the entries.'),
  consumer: z
    .string()
    .min(1)
    .optional()
    .describe('This process’s consumer name in the group. Default: <hostname>-<pid>.'),
  batch: z.number().int().min(1).max(10_000).default(100).describe('Entries read per XREADGROUP.'),
  blockMs: z
    .number()
    .int()
    .min(1)
    .default(5000)
    .describe('How long one XREADGROUP waits for new entries before asking again.'),
  claimIdleMs: z
    .number()
    .int()
    .min(1)
    .default(30_000)
    .describe(
      'Entries another consumer read but left unacknowledged this long (it crashed) are claimed and processed here; checked at start and then as often.',
    ),
  startAt: z
    .enum(['new', 'oldest'])
    .default('new')
    .describe(
      'When Herald creates the group: `new` reads entries added from then on (`$`), `oldest` also those already in the stream (`0`).',
    ),
});

export const redisSourceConfigSchema = z
  .strictObject({
    url: redisUrl
      .default('redis://127.0.0.1:6379')
      .describe('Redis server URL; a password in it (redis://:pw@host) is never logged.'),
    streams: z
      .array(streamSchema)
      .default([])
      .describe(
        'Streams read through a consumer group: an entry is acknowledged (XACK) only once its event is stored, and entries of a crashed consumer are claimed.',
      ),
    channels: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Pub/Sub channels (SUBSCRIBE). Fire-and-forget: a message published while Herald is down or cannot store it is lost; use streams to keep them.',
      ),
    map: eventMapSchema(
      '`fields`, `stream` and `entryId` for stream entries; `channel` and `body` (the JSON message) for Pub/Sub',
      '`<stream key>/<entry id>` for a stream entry (the same when it is read again), a new time-ordered UUID (version 7) for a Pub/Sub message',
    ).optional(),
  })
  .superRefine((config, ctx) => {
    if (config.streams.length === 0 && config.channels.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['streams'], message: 'list at least one stream or channel' });
    }
  });
export type RedisSourceConfig = z.infer<typeof redisSourceConfigSchema>;
type StreamConfig = RedisSourceConfig['streams'][number];

/** A stream entry as XREADGROUP / XAUTOCLAIM return it; fields are null when it was deleted. */
type Entry = [id: string, fields: string[] | null];

class BadEntry extends Error {}

/**
 * The event a stream entry holds: a JSON CloudEvent in an `event` or `cloudevent` field, else the
 * fields mapped by config. The default id is the stream key and entry id, so a redelivered entry
 * is recognised by ingest as the same event.
 */
export function entryToEvent(
  entry: { key: string; id: string; fields: Record<string, string> },
  options: { sourceName: string; map?: EventMap },
): CloudEvent {
  const embedded = entry.fields.event ?? entry.fields.cloudevent;
  if (embedded !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(embedded);
    } catch (err) {
      throw new BadEntry(`the "event" field is not JSON: ${(err as Error).message}`);
    }
    return validateEvent(parsed);
  }
  if (!options.map) throw new BadEntry('no "event" or "cloudevent" field and no map is configured');
  return mapToEvent(
    options.map,
    { fields: entry.fields, stream: entry.key, entryId: entry.id },
    { id: `${entry.key}/${entry.id}`, source: `herald://${options.sourceName}`, data: entry.fields },
  );
}

/** The event a Pub/Sub message holds: a JSON CloudEvent, else the message mapped by config. */
export function pubsubMessageToEvent(
  message: { channel: string; text: string },
  options: { sourceName: string; map?: EventMap },
): CloudEvent {
  let body: unknown = message.text;
  try {
    body = JSON.parse(message.text);
  } catch {
    // Not JSON: a map may still use the text as `body`.
  }
  if (body !== null && typeof body === 'object' && !Array.isArray(body) && 'specversion' in body) {
    return validateEvent(body);
  }
  if (!options.map) throw new BadEntry('not a JSON CloudEvent and no map is configured');
  return mapToEvent(
    options.map,
    { channel: message.channel, body },
    { id: newEventId(), source: `herald://${options.sourceName}`, data: body },
  );
}

function fieldsOf(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

/** The entries of one stream in an XREADGROUP reply (RESP2 `[[key, entries]]` or a flattened map). */
function entriesOf(reply: unknown): Entry[] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  if (typeof reply[0] === 'string') return (reply[1] as Entry[]) ?? [];
  return ((reply[0] as [string, Entry[]])[1] ?? []) as Entry[];
}

// Loaded on first use, so a Herald without Redis sources does not pay for the client at start.
let redisClass: Promise<typeof Redis> | null = null;
const loadRedis = () => {
  redisClass ??= import('ioredis').then((m) => m.Redis);
  return redisClass;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const redisSource: SourceKind<RedisSourceConfig> = {
  kind: 'redis',
  description:
    'Redis Streams through consumer groups (acknowledged once stored, crashed consumers’ entries claimed) and Pub/Sub channels (fire-and-forget).',
  configSchema: redisSourceConfigSchema,
  create(name, config, context) {
    return new RedisSource(name, config, context);
  },
};

class RedisSource {
  private commands: Redis | null = null;
  private readonly readers: Redis[] = [];
  private subscriber: Redis | null = null;
  private readonly loops: Promise<void>[] = [];
  private stopping = false;
  /** ioredis rejects a failed connect with "Connection is closed"; the cause is in the error event. */
  private lastError = '';
  private readonly server: string;
  private readonly logger: Logger;
  private readonly pubsub: TickBatcher<{ channel: string; text: string }>;

  constructor(
    private readonly name: string,
    private readonly config: RedisSourceConfig,
    private readonly context: SourceContext,
  ) {
    this.server = redactUrl(config.url);
    this.logger = context.logger;
    this.pubsub = new TickBatcher((batch) => this.ingestPubSub(batch));
  }

  private async client(role: string): Promise<Redis> {
    const RedisClient = await loadRedis();
    const client = new RedisClient(this.config.url, {
      lazyConnect: true,
      protocol: 2,
      connectionName: `herald-${this.name}-${role}`,
      // Reconnect forever, at most every 2 s; the loops retry what failed meanwhile.
      retryStrategy: (times) => Math.min(times * 100, 2000),
      maxRetriesPerRequest: null,
    });
    let up = false;
    let lost = false;
    client.on('ready', () => {
      if (lost) this.logger.info({ server: this.server, role }, `source ${this.name}: reconnected to Redis`);
      up = true;
      lost = false;
    });
    client.on('close', () => {
      if (up && !this.stopping) {
        lost = true;
        this.logger.warn(
          { server: this.server, role },
          `source ${this.name}: lost the Redis connection; reconnecting`,
        );
      }
      up = false;
    });
    client.on('error', (err) => {
      this.lastError = err.message;
      this.logger.debug({ server: this.server, role, err: err.message }, 'Redis error');
    });
    return client;
  }

  async start(): Promise<void> {
    const commands = await this.client('commands');
    this.commands = commands;
    try {
      await commands.connect();
    } catch (err) {
      this.commands = null;
      commands.disconnect();
      throw new HeraldError(
        'SOURCE_ERROR',
        `cannot connect to Redis at ${this.server}: ${this.lastError || errorMessage(err)}`,
        {
          cause: err,
        },
      );
    }
    try {
      for (const stream of this.config.streams) {
        await this.ensureGroup(commands, stream);
        const reader = await this.client(`reader-${stream.key}`);
        this.readers.push(reader);
        await reader.connect();
        this.loops.push(this.consume(stream, reader, commands));
      }
      if (this.config.channels.length > 0) {
        const subscriber = await this.client('subscriber');
        this.subscriber = subscriber;
        await subscriber.connect();
        subscriber.on('message', (channel: string, text: string) => this.pubsub.push({ channel, text }));
        await subscriber.subscribe(...this.config.channels);
      }
    } catch (err) {
      // Open connections would keep the process alive after a failed start.
      this.stopping = true;
      for (const client of [commands, ...this.readers, this.subscriber]) client?.disconnect();
      await Promise.all(this.loops);
      this.commands = null;
      throw err;
    }
    this.logger.info(
      {
        server: this.server,
        streams: this.config.streams.map((s) => s.key),
        channels: this.config.channels,
      },
      `source ${this.name}: reading ${[
        ...this.config.streams.map((s) => `stream ${s.key} (group ${s.group})`),
        ...this.config.channels.map((c) => `channel ${c}`),
      ].join(', ')} from ${this.server}`,
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // Interrupts blocked XREADGROUPs; an ingest in flight still finishes and acknowledges.
    for (const reader of this.readers) reader.disconnect();
    this.subscriber?.disconnect();
    await Promise.all(this.loops);
    const dropped = this.pubsub.take().length;
    if (dropped > 0) {
      this.logger.warn(
        { dropped },
        `source ${this.name}: ${dropped} Pub/Sub messages arrived during shutdown and were not stored (Pub/Sub is fire-and-forget; use streams to keep them)`,
      );
    }
    await this.pubsub.idle();
    await this.commands?.quit().catch(() => undefined);
    this.commands = null;
  }

  async check(): Promise<CheckResult> {
    if (this.commands && this.commands.status !== 'ready') {
      // A command now would wait in the offline queue until Redis is back.
      return {
        ok: false,
        detail: `disconnected from ${this.server} (${this.lastError || this.commands.status}); reconnecting`,
        fix: 'check that Redis runs',
      };
    }
    const client = this.commands ?? (await this.client('check'));
    try {
      if (!this.commands) await client.connect();
      await client.ping();
      return { ok: true, detail: `connected to ${this.server}` };
    } catch (err) {
      return {
        ok: false,
        detail: `cannot reach Redis at ${this.server}: ${this.lastError || errorMessage(err)}`,
        fix: 'check the URL, the password and that Redis runs',
      };
    } finally {
      if (!this.commands) client.disconnect();
    }
  }

  private async ensureGroup(commands: Redis, stream: StreamConfig): Promise<void> {
    try {
      await commands.call('XGROUP', [
        'CREATE',
        stream.key,
        stream.group,
        stream.startAt === 'new' ? '$' : '0',
        'MKSTREAM',
      ]);
      this.logger.info({ stream: stream.key, group: stream.group }, 'created the Redis consumer group');
    } catch (err) {
      if (errorMessage(err).startsWith('BUSYGROUP')) return;
      throw new HeraldError(
        'SOURCE_ERROR',
        `cannot create consumer group ${stream.group} on stream ${stream.key}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
  }

  /**
   * One stream's loop: first this consumer's own pending entries (a previous run with the same
   * name stopped before acknowledging), then entries other consumers left idle, then new ones.
   * After a failure it starts over from its pending entries, so nothing read is skipped.
   */
  private async consume(stream: StreamConfig, reader: Redis, commands: Redis): Promise<void> {
    const consumer = stream.consumer ?? `${hostname()}-${process.pid}`;
    const read = async (id: string, block: boolean) =>
      entriesOf(
        await reader.call('XREADGROUP', [
          'GROUP',
          stream.group,
          consumer,
          'COUNT',
          stream.batch,
          ...(block ? ['BLOCK', stream.blockMs] : []),
          'STREAMS',
          stream.key,
          id,
        ]),
      );
    let ownPending = true;
    let lastClaim = 0;
    while (!this.stopping) {
      try {
        if (ownPending) {
          const entries = await read('0', false);
          if (entries.length > 0) {
            await this.handleEntries(stream, entries, commands);
            continue;
          }
          ownPending = false;
        }
        if (Date.now() - lastClaim >= stream.claimIdleMs) {
          await this.claimIdle(stream, consumer, commands);
          lastClaim = Date.now();
          continue;
        }
        const entries = await read('>', true);
        if (entries.length > 0) await this.handleEntries(stream, entries, commands);
      } catch (err) {
        if (this.stopping) break;
        ownPending = true;
        if (errorMessage(err).startsWith('NOGROUP')) {
          // The stream or group is gone (deleted, or Redis restarted without its data).
          await this.ensureGroup(commands, stream).catch(() => undefined);
        }
        this.logger.warn(
          { stream: stream.key, err: errorMessage(err) },
          `source ${this.name}: reading stream ${stream.key} failed (${errorMessage(err)}); retrying its pending entries in 1 s`,
        );
        await sleep(1000);
      }
    }
  }

  private async claimIdle(stream: StreamConfig, consumer: string, commands: Redis): Promise<void> {
    let cursor = '0-0';
    do {
      const reply = (await commands.call('XAUTOCLAIM', [
        stream.key,
        stream.group,
        consumer,
        stream.claimIdleMs,
        cursor,
        'COUNT',
        stream.batch,
      ])) as [string, Entry[], string[]?];
      cursor = reply[0];
      const entries = reply[1] ?? [];
      if (entries.length > 0) {
        this.logger.info(
          { stream: stream.key, claimed: entries.length },
          `source ${this.name}: claimed ${entries.length} entries of ${stream.key} another consumer left unacknowledged`,
        );
        await this.handleEntries(stream, entries, commands);
      }
    } while (cursor !== '0-0' && !this.stopping);
  }

  /**
   * Stores the batch's events, then acknowledges every entry. An entry that cannot become a stored
   * event (its mapping or validation fails, or ingest refuses its event) is set aside in the source
   * dead-letter table first, so the entries behind it keep flowing. Only an outage throws: nothing
   * is acknowledged and the loop reads the batch again from the pending entries.
   */
  private async handleEntries(stream: StreamConfig, entries: Entry[], commands: Redis): Promise<void> {
    const mapped: { id: string; fields: Record<string, string>; event: CloudEvent }[] = [];
    for (const [id, list] of entries) {
      if (list === null) continue; // deleted from the stream after it was read: only the ack is left
      const fields = fieldsOf(list);
      try {
        mapped.push({
          id,
          fields,
          event: entryToEvent(
            { key: stream.key, id, fields },
            { sourceName: this.name, map: this.config.map },
          ),
        });
      } catch (err) {
        await this.setAside(stream, id, fields, errorMessage(err));
      }
    }
    const refused = await ingestIsolating(
      mapped,
      (entry) => [entry.event],
      (events) => this.context.ingest(events),
    );
    for (const { item, reason } of refused) await this.setAside(stream, item.id, item.fields, reason);
    await commands.call('XACK', [stream.key, stream.group, ...entries.map(([id]) => id)]);
  }

  private setAside(stream: StreamConfig, id: string, fields: Record<string, string>, reason: string) {
    return this.context.deadLetter(
      { position: `${stream.key}/${id}`, subject: stream.key, payload: JSON.stringify(fields) },
      reason,
    );
  }

  /** A stream entry set aside earlier, mapped again with the current config. */
  replayDeadLetter(message: SourceMessage & { payload: Uint8Array }): CloudEvent[] {
    const key = message.subject ?? '';
    const id = message.position.slice(key.length + 1);
    if (!key || !message.position.startsWith(`${key}/`) || !id)
      throw new BadEntry(`${message.position} is not a stream entry of this source`);
    const fields = JSON.parse(Buffer.from(message.payload).toString('utf8')) as Record<string, string>;
    return [entryToEvent({ key, id, fields }, { sourceName: this.name, map: this.config.map })];
  }

  private async ingestPubSub(batch: { channel: string; text: string }[]): Promise<void> {
    const events: CloudEvent[] = [];
    for (const message of batch) {
      try {
        events.push(pubsubMessageToEvent(message, { sourceName: this.name, map: this.config.map }));
      } catch (err) {
        this.logger.warn(
          { channel: message.channel, reason: errorMessage(err) },
          `source ${this.name}: dropped a message on channel ${message.channel}: ${errorMessage(err)}`,
        );
      }
    }
    if (events.length === 0) return;
    try {
      await this.context.ingest(events);
    } catch (err) {
      this.logger.error(
        { lost: events.length, err: errorMessage(err) },
        `source ${this.name}: ${events.length} Pub/Sub events could not be stored and are lost: ${errorMessage(err)} (use streams to keep them)`,
      );
    }
  }
}
