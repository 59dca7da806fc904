import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import {
  DELIVERY_STATUSES,
  type DeadLetterFilter,
  type Delivery,
  type SourceDeadLetter,
  type StoredEvent,
} from '../engine/store.js';
import { HeraldError } from '../errors.js';
import { parseJsonBody, parseQuery } from '../http-input.js';
import { redactUrl } from '../redact.js';
import type {
  ConfigView,
  DeadLetterFilterReplay,
  DeadLetterPage,
  DeadLetterReplay,
  DeliveryDetail,
  DeliveryPage,
  EventDetail,
  EventExplanation,
  EventPage,
  InboxMessagePage,
  SourceDeadLetterPage,
  SourceDeadLetterReplay,
  Status,
} from './api-types.js';
import { redactedConfigFile } from './config-view.js';
import { compileEventFilter } from './event-filter.js';

/** Events a CESQL-filtered list reads per request at most, and per store query. */
const SQL_SCAN_BUDGET = 20_000;
const SQL_SCAN_PAGE = 1000;

const limit = z.coerce.number().int().min(1).max(1000).default(50);
const cursor = z.coerce.number().int().positive().optional();

/** The filter of the event list and the live stream; empty values mean "any". */
export const eventFilterQuery = z.object({
  type: z.string().optional(),
  source: z.string().optional(),
  subject: z.string().optional(),
  sql: z.string().optional(),
});

/** Dead deliveries one filtered replay re-renders at most (each is planned on its own). */
const FILTER_REPLAY_MAX = 10_000;
const FILTER_REPLAY_PAGE = 200;

const replayOptions = z.strictObject({
  asRecorded: z
    .boolean()
    .optional()
    .describe('Retry the recipient the delivery was planned for instead of planning it again.'),
});

/** A JSON body (absent or empty is `{}`) checked against `schema`; names what is wrong. */
function parseBody<T extends z.ZodType>(
  schema: T,
  body: unknown,
  contentType: string | undefined,
): z.infer<T> {
  const raw =
    body === undefined || (Buffer.isBuffer(body) && body.length === 0)
      ? {}
      : parseJsonBody(body, contentType);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.join('.');
    throw new HeraldError(
      'REQUEST_INVALID',
      issue.code === 'unrecognized_keys'
        ? `unknown key ${issue.keys.join(', ')} in the request body`
        : `${at ? `${at}: ` : ''}${issue.message}`,
    );
  }
  return parsed.data;
}

const dlqFilter = z.strictObject({
  channel: z.string().optional(),
  trigger: z.string().optional(),
  eventType: z.string().optional(),
  reason: z.string().optional(),
});

/**
 * The admin API under /api: read the log, deliveries, DLQ and inbox; replay dead letters, and the
 * messages stream sources set aside (`/api/dlq?source=`).
 */
export function registerAdminRoutes(app: FastifyInstance, engine: Engine): void {
  const store = engine.store;

  app.get('/api/events', async (req): Promise<EventPage> => {
    const q = parseQuery(eventFilterQuery.extend({ limit, before: cursor }), req.query);
    const attributes = {
      type: q.type || undefined,
      source: q.source || undefined,
      subject: q.subject || undefined,
    };
    if (!q.sql?.trim()) {
      const events = await store.events.list({ limit: q.limit, beforeSeq: q.before, ...attributes });
      return { events, next: events.length === q.limit ? events[events.length - 1]!.seq : null };
    }
    // The store cannot run CESQL: scan newest first in pages, within a budget per request, and
    // hand back the cursor where the scan stopped so a rare match never makes one request slow.
    const matches = compileEventFilter({ sql: q.sql });
    const events: StoredEvent[] = [];
    let before = q.before;
    let scanned = 0;
    let exhausted = false;
    scan: while (scanned < SQL_SCAN_BUDGET) {
      const page = await store.events.list({ limit: SQL_SCAN_PAGE, beforeSeq: before, ...attributes });
      for (const stored of page) {
        scanned++;
        before = stored.seq;
        if (matches(stored.event)) {
          events.push(stored);
          if (events.length === q.limit) break scan;
        }
      }
      if (page.length < SQL_SCAN_PAGE) {
        exhausted = true;
        break;
      }
    }
    return { events, next: exhausted ? null : (before ?? null), scanned };
  });

  // With every delivery and its attempts: what the event detail page shows.
  const detail = async (stored: StoredEvent): Promise<EventDetail> => {
    const deliveries = await store.deliveries.list({ limit: 1000, eventSeq: stored.seq });
    const withAttempts = await Promise.all(
      deliveries.map(async (d) => ({ ...shown(d), attemptLog: await store.deliveries.attempts(d.id) })),
    );
    return { ...stored, deliveries: withAttempts };
  };

  app.get('/api/events/:id', async (req) => {
    const { id } = req.params as { id: string };
    const { source } = parseQuery(z.object({ source: z.string().optional() }), req.query);
    const stored = await store.events.findById(id, source);
    if (!stored) throw new HeraldError('NOT_FOUND', `no event with id ${JSON.stringify(id)}`);
    return detail(stored);
  });

  // Why the event did or did not notify, under the current config (engine/explain.ts).
  const recipientQuery = z.object({ recipient: z.string().min(1).max(500).optional() });
  app.get('/api/events/:id/explain', async (req): Promise<EventExplanation> => {
    const { id } = req.params as { id: string };
    const q = parseQuery(recipientQuery.extend({ source: z.string().optional() }), req.query);
    const stored = await store.events.findById(id, q.source);
    if (!stored) throw new HeraldError('NOT_FOUND', `no event with id ${JSON.stringify(id)}`);
    return engine.explain(stored, { recipient: q.recipient });
  });

  app.get('/api/events/by-seq/:seq/explain', async (req): Promise<EventExplanation> => {
    const seq = parseQuery(z.object({ seq: z.coerce.number().int().positive() }), req.params).seq;
    const q = parseQuery(recipientQuery, req.query);
    const stored = await store.events.get(seq);
    if (!stored) throw new HeraldError('NOT_FOUND', `no event at position ${seq} of the log`);
    return engine.explain(stored, { recipient: q.recipient });
  });

  app.get('/api/events/by-seq/:seq', async (req) => {
    const seq = parseQuery(z.object({ seq: z.coerce.number().int().positive() }), req.params).seq;
    const stored = await store.events.get(seq);
    if (!stored) throw new HeraldError('NOT_FOUND', `no event at position ${seq} of the log`);
    return detail(stored);
  });

  app.get('/api/deliveries', async (req): Promise<DeliveryPage> => {
    const q = parseQuery(
      z.object({
        limit,
        before: cursor,
        status: z.enum(DELIVERY_STATUSES).optional(),
        channel: z.string().optional(),
        trigger: z.string().optional(),
      }),
      req.query,
    );
    const deliveries = await store.deliveries.list({
      limit: q.limit,
      beforeId: q.before,
      status: q.status,
      channel: q.channel,
      trigger: q.trigger,
    });
    return { deliveries: deliveries.map(shown), next: nextCursor(deliveries, q.limit) };
  });

  app.get('/api/deliveries/:id', async (req): Promise<DeliveryDetail> => {
    const id = parseQuery(z.object({ id: z.coerce.number().int().positive() }), req.params).id;
    const delivery = await store.deliveries.get(id);
    if (!delivery) throw new HeraldError('NOT_FOUND', `no delivery ${id}`);
    return { ...shown(delivery), attemptLog: await store.deliveries.attempts(id) };
  });

  app.get('/api/dlq', async (req): Promise<DeadLetterPage | SourceDeadLetterPage> => {
    const q = parseQuery(
      dlqFilter.extend({ limit, before: cursor, source: z.string().min(1).optional() }),
      req.query,
    );
    const { limit: n, before, source, ...filter } = q;
    if (source !== undefined) {
      // Messages a stream source set aside, not dead deliveries: the delivery filters do not apply.
      const named = Object.entries(filter).find(([, value]) => value !== undefined);
      if (named) {
        throw new HeraldError(
          'REQUEST_INVALID',
          `query parameter ${named[0]}: filters dead deliveries and cannot be combined with source`,
        );
      }
      const sourceDeadLetters = await store.sourceDlq.list({ limit: n, beforeId: before, source });
      return {
        source,
        sourceDeadLetters,
        total: await store.sourceDlq.count(source),
        next: sourceDeadLetters.length === n ? sourceDeadLetters[n - 1]!.id : null,
      };
    }
    const deadLetters = await store.dlq.list({ limit: n, beforeId: before, ...filter });
    return {
      deadLetters: deadLetters.map(shown),
      total: await store.dlq.count(),
      next: nextCursor(deadLetters, n),
    };
  });

  app.get('/api/dlq/source/:id', async (req): Promise<SourceDeadLetter> => {
    const id = parseQuery(z.object({ id: z.coerce.number().int().positive() }), req.params).id;
    const letter = await store.sourceDlq.get(id);
    if (!letter) throw new HeraldError('NOT_FOUND', `no source dead letter ${id}`);
    return letter;
  });

  app.post('/api/dlq/source/:id/replay', async (req): Promise<SourceDeadLetterReplay> => {
    const id = parseQuery(z.object({ id: z.coerce.number().int().positive() }), req.params).id;
    return engine.replaySourceDeadLetter(id);
  });

  app.post('/api/dlq/:id/replay', async (req): Promise<DeadLetterReplay> => {
    const id = parseQuery(z.object({ id: z.coerce.number().int().positive() }), req.params).id;
    const { asRecorded } = parseBody(replayOptions, req.body, req.headers['content-type']);
    const delivery = await store.deliveries.get(id);
    if (!delivery) throw new HeraldError('NOT_FOUND', `no delivery ${id}`);
    if (delivery.status !== 'dead') {
      throw new HeraldError(
        'REQUEST_INVALID',
        `delivery ${id} is ${delivery.status}, not in the dead-letter queue`,
        {
          status: 409,
        },
      );
    }
    return engine.replayDeadLetter(delivery, { asRecorded });
  });

  app.post('/api/dlq/replay', async (req): Promise<DeadLetterFilterReplay> => {
    const { asRecorded, ...filter } = parseBody(
      dlqFilter.extend(replayOptions.shape),
      req.body,
      req.headers['content-type'],
    ) as DeadLetterFilter & { asRecorded?: boolean };
    if (asRecorded) {
      const replayed = await store.dlq.replay({ filter }, Date.now());
      engine.wakeDispatcher();
      return { replayed: replayed.length, ids: replayed, mode: 'as-recorded', skipped: [] };
    }
    // Each one planned again on its own: within a bound per request, oldest last like the list.
    const ids: number[] = [];
    const skipped: { id: number; reason: string }[] = [];
    let before: number | undefined;
    let seen = 0;
    while (seen < FILTER_REPLAY_MAX) {
      const page = await store.dlq.list({ limit: FILTER_REPLAY_PAGE, beforeId: before, ...filter });
      for (const delivery of page) {
        seen++;
        before = delivery.id;
        try {
          ids.push(...(await engine.replayDeadLetter(delivery, {})).replayed);
        } catch (err) {
          if (!(err instanceof HeraldError) || err.code !== 'REPLAY_CONFLICT') throw err;
          skipped.push({ id: delivery.id, reason: err.message });
        }
      }
      if (page.length < FILTER_REPLAY_PAGE) break;
    }
    return { replayed: ids.length, ids, mode: 're-rendered', skipped };
  });

  app.get('/api/inbox', async (req): Promise<InboxMessagePage> => {
    const q = parseQuery(z.object({ limit, before: cursor, channel: z.string().optional() }), req.query);
    const messages = await store.inbox.list({ limit: q.limit, beforeId: q.before, channel: q.channel });
    return {
      // A webhook channel's inbox fallback keeps the recipient, which may be a URL.
      messages: messages.map((m) => ({
        ...m,
        recipient: m.recipient === null ? null : redactUrl(m.recipient),
      })),
      next: messages.length === q.limit ? messages[messages.length - 1]!.id : null,
    };
  });

  app.get('/api/config', async (): Promise<ConfigView> => {
    const file = engine.config.file;
    return { file: file ?? null, store: store.kind, config: file ? redactedConfigFile(file) : null };
  });

  app.get('/api/status', async (): Promise<Status> => {
    const [deliveries, dlq, events, sourceDeadLetters] = await Promise.all([
      store.deliveries.counts(),
      store.dlq.count(),
      store.events.count(),
      store.sourceDlq.count(),
    ]);
    return {
      state: engine.status,
      store: store.kind,
      events,
      deliveries,
      deadLetters: dlq,
      sourceDeadLetters,
      inFlight: engine.inFlight,
      channels: engine.config.channels.map((c) => ({
        name: c.name,
        kind: c.kind.kind,
        fallback: c.fallbackReason ?? null,
      })),
      sources: engine.config.sources.map((s) => ({ name: s.name, kind: s.kind.kind })),
      triggers: engine.config.triggers.map((t) => ({
        name: t.name,
        description: t.description ?? null,
        actions: t.actions.map((a) => a.channel),
      })),
    };
  });
}

/**
 * A delivery as the API shows it: a recipient that is a URL (`to:` rendered from event data) and
 * the URL in its record keep no credential. Channels store their URLs redacted already; this also
 * covers deliveries recorded before they did, and recipients, which the store keeps as sent.
 */
function shown<D extends Delivery>(delivery: D): D {
  const rendered = delivery.rendered as { url?: unknown } | null;
  return {
    ...delivery,
    recipient: delivery.recipient === null ? null : redactUrl(delivery.recipient),
    rendered:
      rendered && typeof rendered === 'object' && typeof rendered.url === 'string'
        ? { ...rendered, url: redactUrl(rendered.url) }
        : delivery.rendered,
  };
}

function nextCursor(rows: Delivery[], n: number): number | null {
  return rows.length === n ? rows[rows.length - 1]!.id : null;
}
