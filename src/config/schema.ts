import { z } from 'zod';
import { busSchema } from '../bus/config.js';
import { DEFAULT_BACKOFF } from '../engine/backoff.js';
import { parseDuration } from '../engine/duration.js';
import type { RateLimit } from '../engine/model.js';
import { formatLocalTime, parseLocalTime } from '../engine/quiet-hours.js';
import { projectionsSchema } from '../projections/config.js';
import { slackAppSchema } from '../slack-app/config.js';
import { storeSchema } from '../store/config.js';
import { subscriptionsSchema } from '../subscriptions/config.js';
import { templateSchema } from '../templates/index.js';

/** Names the user gives to sources, channels and triggers. */
export const nameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'names use letters, digits, ".", "_" and "-"');

export const serverSchema = z
  .strictObject({
    host: z
      .string()
      .default('127.0.0.1')
      .describe('Interface to listen on. Use 0.0.0.0 to accept remote connections.'),
    port: z.number().int().min(0).max(65535).default(8080).describe('HTTP port (`--port` overrides it).'),
    bodyLimit: z
      .number()
      .int()
      .positive()
      .default(1_048_576)
      .describe('Largest request body in bytes; larger requests get 413.'),
    adminToken: z
      .string()
      .min(1)
      .optional()
      .describe(
        'When set (or HERALD_ADMIN_TOKEN), the admin API (/api/*, the live stream, the dashboard’s data) and /metrics require `Authorization: Bearer <token>`.',
      ),
    allowedHosts: z
      .array(z.string().regex(/^[A-Za-z0-9.:[\]-]+$/, 'a host name or address, without scheme, port or path'))
      .default([])
      .describe(
        'Without an admin token, the admin API answers only requests whose Host is the bound address, localhost, 127.0.0.1 or [::1] (any port); list other names it may be reached by here, e.g. [herald.internal].',
      ),
    allowUnauthenticatedAdmin: z
      .boolean()
      .default(false)
      .describe(
        'Herald refuses to listen on a non-loopback address without an admin token; set true (or pass --insecure-admin) to allow it anyway, e.g. behind a proxy that authenticates.',
      ),
    publicMetrics: z
      .boolean()
      .default(false)
      .describe('Serve /metrics without the admin token (for a Prometheus that cannot send one).'),
    ingestToken: z
      .string()
      .min(1)
      .optional()
      .describe(
        'When set (or HERALD_INGEST_TOKEN), POST /events, every `http` source route and the `debezium` route require `Authorization: Bearer <token>`, except routes with their own `auth` block. Slack’s endpoints keep their signature check.',
      ),
    requestTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(30_000)
      .describe(
        'A request’s headers and body must have arrived within this time; a slower client gets 408 and its connection is closed.',
      ),
    headersTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(10_000)
      .describe('A request’s headers must have arrived within this time (at most requestTimeoutMs).'),
    shutdownTimeoutMs: z
      .number()
      .int()
      .nonnegative()
      .default(10_000)
      .describe(
        'On SIGTERM/SIGINT, how long in-flight sends and requests may finish before Herald stops; connections still open then are closed.',
      ),
  })
  .refine((server) => server.headersTimeoutMs <= server.requestTimeoutMs, {
    path: ['headersTimeoutMs'],
    message: 'must not be larger than requestTimeoutMs',
  })
  .describe('The HTTP server: events, custom routes, admin API, health, metrics and dashboard.');

export const templateLimitsSchema = z
  .strictObject({
    renderLimitMs: z
      .number()
      .int()
      .positive()
      .default(250)
      .describe(
        'Longest one template render may take, in milliseconds; past it the render fails with a template error (a delivery fails to the DLQ, a mapped message is rejected).',
      ),
    memoryLimit: z
      .number()
      .int()
      .positive()
      .default(10_000_000)
      .describe(
        'Most characters (and array elements) one render may create, through filters such as `join`, `append` or `json`.',
      ),
    parseLimit: z
      .number()
      .int()
      .positive()
      .default(100_000)
      .describe('Longest template source, in characters; a longer template in the config is a config error.'),
  })
  .describe('Bounds on Liquid templates, which run on event data.');

export const limitsSchema = z
  .strictObject({
    jsonDepth: z
      .number()
      .int()
      .min(2)
      .default(64)
      .describe(
        'Deepest nesting of objects and arrays in any JSON Herald reads (request bodies, message payloads, event data; the outermost level counts as 1). Deeper input is refused: 400 `NESTING_TOO_DEEP` naming the path.',
      ),
    attributeLength: z
      .number()
      .int()
      .min(64)
      .default(4096)
      .describe(
        'Longest value of a context attribute or extension (`type`, `source`, `subject`, `id`, …; not `data`), in UTF-8 bytes. Longer: 413 `ATTRIBUTE_TOO_LONG` naming the attribute.',
      ),
    extensions: z
      .number()
      .int()
      .nonnegative()
      .default(64)
      .describe('Most extension attributes one event may carry. More: 413 `TOO_MANY_EXTENSIONS`.'),
    batchSize: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe(
        'Most events in one batch (`application/cloudevents-batch+json`, a NATS batch, a Debezium array). More: 413 `BATCH_TOO_LARGE`, nothing stored.',
      ),
    templates: templateLimitsSchema.default(templateLimitsSchema.parse({})),
  })
  .describe(
    'What one request, message or event may hold, checked where it enters (HTTP and stream sources alike), so one hostile input cannot stall the pipeline.',
  );

export type LimitsConfig = z.infer<typeof limitsSchema>;

export const backoffSchema = z
  .union([
    z.enum(['exponential', 'fixed']),
    z.strictObject({
      kind: z
        .enum(['exponential', 'fixed'])
        .default(DEFAULT_BACKOFF.kind)
        .describe('How the delay grows between attempts.'),
      initialMs: z
        .number()
        .int()
        .nonnegative()
        .default(DEFAULT_BACKOFF.initialMs)
        .describe('Delay before the second attempt.'),
      maxMs: z
        .number()
        .int()
        .positive()
        .default(DEFAULT_BACKOFF.maxMs)
        .describe('Longest delay between attempts.'),
      multiplier: z
        .number()
        .min(1)
        .default(DEFAULT_BACKOFF.multiplier)
        .describe('Growth factor per attempt (exponential).'),
      jitter: z
        .number()
        .min(0)
        .max(1)
        .default(DEFAULT_BACKOFF.jitter)
        .describe('Fraction of the delay randomised away (0 = none).'),
    }),
  ])
  .describe('Retry backoff: `exponential`, `fixed`, or an object with the details.');

export const deliveryPolicySchema = z
  .strictObject({
    maxAttempts: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(8)
      .describe('Attempts before the delivery goes to the DLQ.'),
    backoff: backoffSchema.default(DEFAULT_BACKOFF.kind),
  })
  .describe('Retry policy of the trigger’s deliveries.');

export const recipientSchema = z
  .union([
    templateSchema(),
    z.array(templateSchema()).min(1),
    z.strictObject({
      subscribersOf: templateSchema().describe(
        'Subscription key whose subscribers receive it, e.g. "product:{{ event.subject }}".',
      ),
      where: z.string().optional().describe('Condition over each subscriber’s preferences.'),
    }),
  ])
  .describe('Recipient(s): a channel, user, email or URL (templates), a list of them, or { subscribersOf }.');

/** `500ms`, `30s`, `10m`, `24h`, `7d`, converted to milliseconds. */
export function durationSchema() {
  return z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms instanceof Error) {
      ctx.addIssue({ code: 'custom', message: ms.message });
      return z.NEVER;
    }
    return ms;
  });
}

export const dedupeSchema = z
  .strictObject({
    key: templateSchema().describe(
      'What makes two notifications the same (a template; `event` and `recipient` in scope), e.g. "{{ event.data.run_id }}:{{ event.data.status }}". Compared per recipient.',
    ),
    window: durationSchema().describe(
      'How long a key stays taken, from its first notified occurrence (500ms, 30s, 10m, 24h, 7d).',
    ),
  })
  .describe('Drops a notification whose key was notified to the same recipient within the window.');

export const throttleSchema = z
  .strictObject({
    key: templateSchema().describe(
      'Whose budget a notification takes (a template), e.g. "{{ recipient }}"; a constant key is one budget for the whole action.',
    ),
    limit: z.number().int().min(1).max(1_000_000).describe('Notifications allowed per key and period.'),
    per: durationSchema().describe('The period, counted from the first notification of the key in it.'),
  })
  .describe(
    'At most `limit` notifications per key in each period; the rest are dropped (recorded as throttled).',
  );

export const delaySchema = z
  .union([
    z.string(),
    z.strictObject({
      until: templateSchema().describe(
        'A time to send at (a template rendering an ISO 8601 time with a zone, or epoch milliseconds); a time past sends now.',
      ),
    }),
  ])
  // The duration is parsed after the union, so a bad one is reported as such, not as "Invalid input".
  .transform((delay, ctx) => {
    if (typeof delay !== 'string') return delay;
    const ms = parseDuration(delay);
    if (ms instanceof Error) {
      ctx.addIssue({ code: 'custom', message: ms.message });
      return z.NEVER;
    }
    return ms;
  })
  .describe(
    'Sends later: after a duration (`5m`) or at a time (`{ until: "{{ … }}" }`). Durable across restarts.',
  );

export const replaceSchema = z
  .strictObject({
    key: templateSchema().describe(
      'What a newer notification replaces (a template), e.g. "{{ event.data.run_id }}". Compared per recipient.',
    ),
  })
  .describe(
    'A newer event with the same key replaces a notification of that key that is still waiting (e.g. delayed).',
  );

export const digestSchema = z
  .strictObject({
    key: templateSchema().describe(
      'Which events share a message (a template; `event` and `recipient` in scope), e.g. "{{ recipient }}" or "{{ event.data.repo }}". Compared per recipient.',
    ),
    window: durationSchema().describe(
      'How long a digest collects, from its first event; it is sent when the window ends, later by `delay` if given (500ms, 30s, 10m, 24h, 7d).',
    ),
    max: z
      .number()
      .int()
      .min(2, 'a digest must be able to hold at least 2 events')
      .max(1000, 'a digest holds at most 1000 events')
      .default(100)
      .describe('Most events in one digest (2–1000); the event that fills it sends it at once.'),
    update: z
      .boolean()
      .default(false)
      .describe(
        'Edit the message of the key’s first digest instead of posting a new one (channels that can edit a message: slack).',
      ),
  })
  .describe(
    'Collects the events of a key into one message per window: templates see `events` (oldest first) and `event` (the newest). Not together with `replace`.',
  );

/** A local time `HH:MM` (24h), as minutes after midnight. */
function localTimeSchema() {
  return z.string().transform((text, ctx) => {
    const minute = parseLocalTime(text);
    if (minute instanceof Error) {
      ctx.addIssue({ code: 'custom', message: minute.message });
      return z.NEVER;
    }
    return minute;
  });
}

export const quietHoursSchema = z
  .strictObject({
    from: localTimeSchema().describe(
      'Local time the quiet period starts, `HH:MM` (24h); a delivery due exactly then is held.',
    ),
    to: localTimeSchema().describe(
      'Local time it ends, `HH:MM`; earlier than `from` spans midnight. A delivery due exactly then is sent.',
    ),
    timezone: templateSchema()
      .optional()
      .describe(
        "IANA time zone the hours are read in (a template rendered per delivery, or a name), e.g. \"{{ recipient.preferences.timezone | default: 'UTC' }}\". Default UTC; a name that is not an IANA zone falls back to UTC and the event's routing errors say so.",
      ),
  })
  .superRefine((hours, ctx) => {
    if (hours.from === hours.to)
      ctx.addIssue({
        code: 'custom',
        path: ['to'],
        message: `\`from\` and \`to\` are both ${formatLocalTime(hours.to)}: quiet hours need a period between them`,
      });
  })
  .describe(
    "Holds a delivery due in the recipient's quiet hours until they end (`to`, local time), checked last. Durable across restarts.",
  );

/** Channel-independent part of an action; the rest is checked against the channel kind's schema. */
export const actionBaseSchema = z
  .object({
    channel: nameSchema.describe('Name of a channel under `channels`.'),
    to: recipientSchema.optional(),
    dedupe: dedupeSchema.optional(),
    replace: replaceSchema.optional(),
    throttle: throttleSchema.optional(),
    digest: digestSchema.optional(),
    delay: delaySchema.optional(),
    quietHours: quietHoursSchema.optional(),
    followUp: z
      .record(z.string(), z.unknown())
      .optional()
      .describe(
        'A CloudEvent (strings are templates; `event`, `recipient` and `result` in scope) appended to Herald once this action is delivered — the next step of a workflow. `type` is required; `id` defaults to one derived from the delivery, `data` to the triggering event’s.',
      ),
  })
  .passthrough();

export const triggerSchema = z.strictObject({
  description: z.string().optional().describe('What the trigger is for.'),
  filter: z
    .unknown()
    .optional()
    .describe(
      'Subscriptions-API filter: one dialect key (see the dialect table), or a list meaning all. Absent = every event.',
    ),
  actions: z
    .array(actionBaseSchema)
    .min(1, 'a trigger needs at least one action')
    .describe('What to do per matching event.'),
  delivery: deliveryPolicySchema.default({ maxAttempts: 8, backoff: DEFAULT_BACKOFF.kind }),
  enabled: z.boolean().default(true).describe('Set false to keep a trigger in the file without running it.'),
});

export const pluginBlockSchema = z.object({ kind: z.string().describe('The plugin kind.') }).passthrough();

export const dispatcherSchema = z
  .strictObject({
    leaseMs: z
      .number()
      .int()
      .positive()
      .default(120_000)
      .describe(
        'How long a claimed delivery stays reserved for the process sending it. A send under way has its lease renewed every third of this, so a send may outlast it; it is how long the deliveries of a process that died wait before another process takes them.',
      ),
    pollIntervalMs: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('How often idle dispatchers look for due deliveries they were not woken for.'),
  })
  .describe('Delivery dispatch settings.');

/**
 * `rateLimit` is accepted on a channel of every kind: it is taken off the block before the kind's
 * own schema checks the rest (see compilePlugins), so no channel kind has to declare it.
 */
export const rateLimitSchema = z
  .strictObject({
    perSecond: z
      .number()
      .positive('must be a positive number of sends per second')
      .describe('Sustained sends per second (0.5 = one every 2 s).'),
    burst: z
      .number()
      .min(1, 'must be at least 1 (each send takes one whole token)')
      .optional()
      .describe('Sends allowed back to back after a quiet spell. Default: `perSecond` (at least 1).'),
  })
  .transform((r): RateLimit => ({ perSecond: r.perSecond, burst: r.burst ?? Math.max(1, r.perSecond) }))
  .describe(
    'Sends through this channel, in total over every Herald process on the store: a token bucket holding up to `burst` sends, refilled at `perSecond`. Absent = unlimited. A `fallback` block that replaces the channel uses its own `rateLimit`, if any.',
  );

/** Keys every channel block may have, whatever its kind (documented once for all kinds). */
export const channelCommonSchema = z.object({ rateLimit: rateLimitSchema.optional() });

export const rootSchema = z.strictObject({
  server: serverSchema.default(serverSchema.parse({})),
  limits: limitsSchema.default(limitsSchema.parse({})),
  store: storeSchema.default({ kind: 'sqlite', synchronous: 'full' }),
  bus: busSchema.default({ kind: 'embedded' }),
  sources: z.record(nameSchema, pluginBlockSchema).default({}).describe('Where events come from, by name.'),
  channels: z
    .record(nameSchema, pluginBlockSchema)
    .default({})
    .describe(
      'Where messages can go, by name. A `fallback` block replaces a channel whose ${VARS} are unset.',
    ),
  triggers: z.record(nameSchema, triggerSchema).default({}).describe('Rules: filter → actions, by name.'),
  dispatcher: dispatcherSchema.default(dispatcherSchema.parse({})),
  projections: projectionsSchema,
  subscriptions: subscriptionsSchema.default({ preferences: {}, feeds: {} }),
  slack: slackAppSchema.optional(),
});

export type RawConfig = z.infer<typeof rootSchema>;
export type BackoffConfig = z.infer<typeof backoffSchema>;
