import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Subscriber } from '../engine/store.js';
import { HeraldError } from '../errors.js';
import { parseJsonBody } from '../http-input.js';
import type { Feed, KeySubscribers, SubscriberPage, SubscriberView, SubscriptionAdded } from './api-types.js';
import type { Subscriptions } from './index.js';

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const at = issue.path.length ? `${what}.${issue.path.join('.')}` : what;
    throw new HeraldError('REQUEST_INVALID', `${at}: ${issue.message}`, { status: 400 });
  }
  return result.data;
}

const subscriberBody = z.strictObject({
  id: z.string().min(1).max(200).optional(),
  name: z.string().max(200).optional(),
  email: z.string().email().optional(),
  slackUserId: z
    .string()
    .regex(/^[UW][A-Z0-9]+$/, 'a Slack user id looks like U012ABCDEF')
    .optional(),
});

/** Admin API for people and what they follow: /api/subscribers, /api/subscriptions, /api/feeds. */
export function registerSubscriptionRoutes(app: FastifyInstance, subscriptions: Subscriptions): void {
  const store = subscriptions.store;
  const view = async (s: Subscriber): Promise<SubscriberView> => ({
    ...s,
    preferences: subscriptions.preferencesOf(s),
    keys: await store.keysOf(s.id),
  });
  const mustGet = async (id: string) => {
    const s = await store.getSubscriber(id);
    if (!s) throw new HeraldError('NOT_FOUND', `no subscriber ${JSON.stringify(id)}`);
    return s;
  };

  app.get('/api/subscribers', async (req): Promise<SubscriberPage> => {
    const q = parse(
      z.object({
        limit: z.coerce.number().int().min(1).max(1000).default(100),
        after: z.string().optional(),
      }),
      req.query,
      'query',
    );
    const list = await store.listSubscribers({ limit: q.limit, afterId: q.after });
    return {
      subscribers: await Promise.all(list.map(view)),
      preferences: subscriptions.config.preferences,
      next: list.length === q.limit ? list[list.length - 1]!.id : null,
    };
  });

  app.post('/api/subscribers', async (req, reply) => {
    const body = parse(subscriberBody, parseJsonBody(req.body, req.headers['content-type']), 'body');
    const id = body.id ?? (body.slackUserId ? `slack:${body.slackUserId}` : randomUUID());
    const created = await store.upsertSubscriber({ ...body, id }, Date.now());
    return reply.status(201).send(await view(created));
  });

  app.get('/api/subscribers/:id', async (req) => view(await mustGet((req.params as { id: string }).id)));

  app.delete('/api/subscribers/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!(await store.deleteSubscriber(id)))
      throw new HeraldError('NOT_FOUND', `no subscriber ${JSON.stringify(id)}`);
    return reply.status(204).send();
  });

  app.patch('/api/subscribers/:id/preferences', async (req) => {
    const { id } = req.params as { id: string };
    const patch = parse(
      z.record(z.string(), z.union([z.boolean(), z.string()])),
      parseJsonBody(req.body, req.headers['content-type']),
      'body',
    );
    return view(await subscriptions.setPreferences(id, patch));
  });

  app.post('/api/subscribers/:id/subscriptions', async (req, reply) => {
    const { id } = req.params as { id: string };
    const { key } = parse(
      z.strictObject({ key: z.string().min(1).max(500) }),
      parseJsonBody(req.body, req.headers['content-type']),
      'body',
    );
    await mustGet(id);
    const created = await store.subscribe(id, key, Date.now());
    const answer: SubscriptionAdded = { subscriber: id, key, created };
    return reply.status(created ? 201 : 200).send(answer);
  });

  app.delete('/api/subscribers/:id/subscriptions/:key', async (req, reply) => {
    const { id, key } = req.params as { id: string; key: string };
    if (!(await store.unsubscribe(id, key)))
      throw new HeraldError(
        'NOT_FOUND',
        `subscriber ${JSON.stringify(id)} does not follow ${JSON.stringify(key)}`,
      );
    return reply.status(204).send();
  });

  app.get('/api/subscriptions/:key/subscribers', async (req): Promise<KeySubscribers> => {
    const { key } = req.params as { key: string };
    const list = await store.subscribersOf(key);
    return { key, subscribers: list.map((s) => ({ ...s, preferences: subscriptions.preferencesOf(s) })) };
  });

  app.get('/api/feeds/:key', async (req): Promise<Feed> => {
    const { key } = req.params as { key: string };
    const q = parse(
      z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }),
      req.query,
      'query',
    );
    return { key, items: await store.feed(key, { limit: q.limit }) };
  });
}
