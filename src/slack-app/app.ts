import type { App as BoltApp, Receiver, ReceiverEvent, RespondFn, Logger as SlackLogger } from '@slack/bolt';
import bolt from '@slack/bolt';
import { type KnownBlock, WebClient } from '@slack/web-api';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Subscriber } from '../engine/store.js';
import { HeraldError } from '../errors.js';
import type { Subscriptions } from '../subscriptions/index.js';
import { compileTemplate } from '../templates/index.js';
import type { SlackAppConfig } from './config.js';
import { homeRenderers } from './home.js';
import { createKeyLabeler, keyText } from './labels.js';
import { SeenSignatures } from './replay.js';
import { isValidSlackSignature } from './signature.js';

const { App, LogLevel, SocketModeReceiver } = bolt;

const markdownBlock = (text: string): KnownBlock => ({ type: 'section', text: { type: 'mrkdwn', text } });

/** Slack waits 3 s for an answer; Herald answers well before, and finishes the work afterwards. */
const ACK_DEADLINE_MS = 2500;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
/** The longest address SMTP allows; it also bounds EMAIL, whose backtracking is quadratic. */
const EMAIL_MAX_LENGTH = 254;
const isEmailAddress = (text: string) => text.length <= EMAIL_MAX_LENGTH && EMAIL.test(text);

/** Bolt logs through Herald's logger (JSON lines, redaction) instead of the console. */
function boltLogger(logger: Logger): SlackLogger {
  let level = LogLevel.WARN;
  const child = logger.child({ component: 'slack-app' });
  const text = (msg: unknown[]) => msg.map((m) => (m instanceof Error ? m.message : String(m))).join(' ');
  return {
    debug: (...msg) => child.debug(text(msg)),
    info: (...msg) => child.info(text(msg)),
    warn: (...msg) => child.warn(text(msg)),
    error: (...msg) => child.error(text(msg)),
    setLevel: (l) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}

/** Turns a signed request body into what Bolt expects: form fields, or the `payload` JSON inside. */
function parseSlackBody(raw: string, contentType: string | undefined): Record<string, unknown> {
  if ((contentType ?? '').includes('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  const form = Object.fromEntries(new URLSearchParams(raw));
  if (typeof form.payload === 'string') return JSON.parse(form.payload) as Record<string, unknown>;
  return form;
}

/**
 * Bolt's HTTP side on Herald's own Fastify server: `/slack/commands`, `/slack/interactions` and
 * `/slack/events` verify the signature (v0, 5-minute window), then hand the body to Bolt and
 * answer with whatever the listener acked, at the latest just before Slack's 3 s deadline.
 */
class FastifyReceiver implements Receiver {
  private bolt?: BoltApp;
  private readonly seen = new SeenSignatures();
  constructor(
    private readonly signingSecret: string,
    private readonly logger: Logger,
  ) {}

  init(app: BoltApp): void {
    this.bolt = app;
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  register(app: FastifyInstance): void {
    for (const path of ['/slack/commands', '/slack/interactions', '/slack/events']) {
      app.post(path, async (req, reply) => {
        const raw = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
        const valid = isValidSlackSignature(this.signingSecret, raw, {
          signature: req.headers['x-slack-signature'],
          timestamp: req.headers['x-slack-request-timestamp'],
        });
        if (!valid) {
          this.logger.warn({ path }, 'rejected a Slack request with a missing, wrong or stale signature');
          return reply.status(401).send({ error: 'invalid Slack signature', code: 'UNAUTHORIZED' });
        }
        // A captured request sent again within its window verifies too: answer it, do nothing.
        const signature = String(req.headers['x-slack-signature']);
        if (!this.seen.firstTime(signature, Number(req.headers['x-slack-request-timestamp']))) {
          this.logger.warn({ path }, 'ignored a replayed Slack request (same signature seen before)');
          return reply.status(200).send('');
        }
        let body: Record<string, unknown>;
        try {
          body = parseSlackBody(raw, req.headers['content-type']);
        } catch (err) {
          throw new HeraldError('REQUEST_INVALID', `Slack request body: ${(err as Error).message}`, {
            status: 400,
          });
        }
        if (body.type === 'url_verification') return { challenge: body.challenge };
        if (!this.bolt)
          throw new HeraldError('SOURCE_ERROR', 'the Slack app is not ready yet', { status: 503 });

        let answer: (response: unknown) => void = () => undefined;
        const acked = new Promise<unknown>((resolve) => {
          answer = resolve;
        });
        const event: ReceiverEvent = {
          body,
          ack: async (response?: unknown) => answer(response),
          retryNum: req.headers['x-slack-retry-num'] ? Number(req.headers['x-slack-retry-num']) : undefined,
          retryReason: req.headers['x-slack-retry-reason'] as string | undefined,
        };
        this.bolt.processEvent(event).catch((err: Error) => {
          this.logger.warn({ path, err: err.message }, 'Slack listener failed');
        });
        let timer: NodeJS.Timeout | undefined;
        const response = await Promise.race([
          acked,
          new Promise((resolve) => {
            timer = setTimeout(() => resolve(undefined), ACK_DEADLINE_MS);
          }),
        ]);
        clearTimeout(timer);
        if (response === undefined || response === '') return reply.status(200).send('');
        if (typeof response === 'string') return reply.status(200).type('text/plain').send(response);
        return reply.status(200).send(response);
      });
    }
  }
}

export interface SlackApp {
  /** Mounts the HTTP endpoints (HTTP mode) on Herald's server. */
  extension(app: FastifyInstance): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Re-renders and publishes this person's App Home. */
  publishHome(slackUserId: string): Promise<void>;
  /** Resolves when no Home publish is scheduled or running (tests, shutdown). */
  idle(): Promise<void>;
}

/** Rows of materialized views, for `/herald search` and key labels (the projections store). */
export interface ViewReader {
  list(
    view: string,
    query: { limit: number; q?: string },
  ): Promise<{ key: string; value: Record<string, unknown> }[]>;
  get(view: string, key: string): Promise<{ key: string; value: Record<string, unknown> } | null>;
}

export function createSlackApp(
  config: SlackAppConfig,
  subscriptions: Subscriptions,
  logger: Logger,
  env: NodeJS.ProcessEnv,
  views?: ViewReader,
): SlackApp {
  const slackApiUrl = config.apiUrl || env.SLACK_API_URL || undefined;
  const log = logger.child({ component: 'slack-app' });
  const socketMode = Boolean(config.appToken);
  const httpReceiver = socketMode ? null : new FastifyReceiver(config.signingSecret, log);
  const receiver: Receiver = socketMode
    ? new SocketModeReceiver({
        appToken: config.appToken!,
        logger: boltLogger(logger),
        installerOptions: { clientOptions: { slackApiUrl } },
      })
    : httpReceiver!;
  const client = new WebClient(config.token, { slackApiUrl, logger: boltLogger(logger) });
  const app = new App({
    token: config.token,
    receiver,
    logger: boltLogger(logger),
    clientOptions: { slackApiUrl },
    // auth.test is called at start (and its failure reported) instead of in the constructor.
    deferInitialization: true,
  });
  const subscribeKey = compileTemplate(config.subscribeKey);
  const renderer = homeRenderers[config.home.renderer];
  const store = subscriptions.store;
  const labelsOf = createKeyLabeler(
    config.labels,
    views ? (view, key) => views.get(view, key) : undefined,
    (key, err) => log.warn({ key, err: err.message }, 'could not label a followed key; showing the key'),
  );
  const keyList = async (keys: string[]) => {
    const labels = await labelsOf(keys);
    return keys.map((k) => keyText(k, labels)).join(', ');
  };

  const subscriberFor = async (userId: string, name?: string): Promise<Subscriber> => {
    const existing = await store.getSubscriber(`slack:${userId}`);
    if (existing?.email) return existing;
    let email: string | undefined;
    try {
      const info = await client.users.info({ user: userId });
      email = info.user?.profile?.email ?? undefined;
      name ??= info.user?.real_name ?? info.user?.name;
    } catch (err) {
      log.warn({ user: userId, err: (err as Error).message }, 'users.info failed');
    }
    return store.upsertSubscriber({ id: `slack:${userId}`, slackUserId: userId, name, email }, Date.now());
  };

  // Home publishes are coalesced per person: a burst of feed changes renders the view once.
  const scheduled = new Map<string, NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  const publishHome = async (userId: string) => {
    const subscriber = await store.getSubscriber(`slack:${userId}`);
    const preferences = subscriptions.preferencesOf(subscriber ?? { preferences: {} });
    const keys = subscriber ? await store.keysOf(subscriber.id) : [];
    const feeds = await Promise.all(keys.map((key) => store.feed(key, { limit: 200 })));
    const items = feeds.flat().sort((a, b) => b.eventSeq - a.eventSeq);
    const blocks = renderer({
      items,
      keys,
      labels: await labelsOf(keys),
      preferences,
      specs: subscriptions.config.preferences,
      config: config.home,
      command: config.command,
      now: Date.now(),
    });
    await client.views.publish({ user_id: userId, view: { type: 'home', blocks } });
  };
  const schedulePublish = (userId: string, delayMs = 50) => {
    clearTimeout(scheduled.get(userId));
    scheduled.set(
      userId,
      setTimeout(() => {
        scheduled.delete(userId);
        const work = publishHome(userId)
          .catch((err: Error) =>
            log.warn({ user: userId, err: err.message }, 'could not publish the App Home'),
          )
          .finally(() => running.delete(work));
        running.add(work);
      }, delayMs),
    );
  };
  const unsubscribeFeed = subscriptions.onFeedChanged((keys) => {
    void (async () => {
      for (const key of keys) {
        for (const s of await store.subscribersOf(key)) if (s.slackUserId) schedulePublish(s.slackUserId);
      }
    })().catch((err: Error) => log.warn({ err: err.message }, 'could not find whose Home to refresh'));
  });

  const search = config.search
    ? {
        ...config.search,
        keyOf: compileTemplate(config.search.key),
        titleOf: compileTemplate(config.search.title),
        textOf: compileTemplate(config.search.text),
      }
    : null;
  /** Search results as Block Kit: one section per row with a Notify me / Stop button. */
  const searchBlocks = async (userId: string, words: string): Promise<KnownBlock[]> => {
    if (!search || !views) return [];
    const rows = await views.list(search.view, { limit: search.limit, q: words || undefined });
    const following = new Set(await store.keysOf(`slack:${userId}`));
    if (rows.length === 0) return [markdownBlock(`Nothing in ${search.view} matches “${words}”.`)];
    return rows.map((row) => {
      const scope = { key: row.key, row: row.value };
      const key = search.keyOf.render(scope);
      const on = following.has(key);
      const details = search.textOf.render(scope);
      return {
        type: 'section',
        block_id: `row-${key}`.slice(0, 255),
        text: {
          type: 'mrkdwn',
          text: `*${search.titleOf.render(scope)}*${details ? `\n${details}` : ''}`.slice(0, 3000),
        },
        accessory: {
          type: 'button',
          action_id: on ? 'sub:off' : 'sub:on',
          text: { type: 'plain_text', text: on ? 'Stop' : 'Notify me' },
          ...(on ? { style: 'danger' as const } : { style: 'primary' as const }),
          value: JSON.stringify({ key, q: words }),
        },
      } satisfies KnownBlock;
    });
  };

  const help = [
    ...(search
      ? [`*${config.command} search <words>* find in ${search.view} and follow with Notify me`]
      : []),
    `*${config.command} subscribe [email]* follow what concerns an email address (default: your Slack profile’s)`,
    `*${config.command} unsubscribe [email]* stop following it (no argument: everything)`,
    `*${config.command} status* what you follow and your preferences`,
    `*${config.command} help* this help`,
    'Your App Home shows your feed and the buttons that change your preferences.',
  ].join('\n');

  const runCommand = async (
    command: { user_id: string; user_name?: string; text?: string },
    respond: RespondFn,
  ): Promise<void> => {
    const [verb = 'help', ...rest] = (command.text ?? '').trim().split(/\s+/).filter(Boolean);
    const arg = rest.join(' ');
    const say = (text: string) => respond({ response_type: 'ephemeral', text });
    switch (verb.toLowerCase()) {
      case 'subscribe': {
        const subscriber = await subscriberFor(command.user_id, command.user_name);
        const email = arg ? arg.replace(/^<mailto:([^|>]+)(\|[^>]*)?>$/, '$1') : subscriber.email;
        if (!email) {
          await say(
            `Your Slack profile shows no email address. Give one: \`${config.command} subscribe you@example.com\``,
          );
          return;
        }
        if (!isEmailAddress(email)) {
          await say(
            `"${email.slice(0, 300)}" is not an email address. Usage: \`${config.command} subscribe [email]\``,
          );
          return;
        }
        const key = subscribeKey.render({ email: email.toLowerCase() });
        const created = await store.subscribe(subscriber.id, key, Date.now());
        await say(created ? `Subscribed to \`${key}\`.` : `You already follow \`${key}\`.`);
        schedulePublish(command.user_id, 0);
        return;
      }
      case 'unsubscribe': {
        const id = `slack:${command.user_id}`;
        const keys = await store.keysOf(id);
        const wanted = arg
          ? [isEmailAddress(arg) ? subscribeKey.render({ email: arg.toLowerCase() }) : arg]
          : keys;
        const removed: string[] = [];
        for (const key of wanted) if (await store.unsubscribe(id, key)) removed.push(key);
        await say(
          removed.length
            ? `Unsubscribed from ${await keyList(removed)}.`
            : arg
              ? `You do not follow \`${wanted[0]}\`.`
              : 'You follow nothing.',
        );
        schedulePublish(command.user_id, 0);
        return;
      }
      case 'status': {
        const subscriber = await store.getSubscriber(`slack:${command.user_id}`);
        const keys = subscriber ? await store.keysOf(subscriber.id) : [];
        const prefs = subscriptions.preferencesOf(subscriber ?? { preferences: {} });
        const prefText = Object.entries(prefs)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(', ');
        await say(
          `${keys.length ? `You follow ${await keyList(keys)}.` : 'You follow nothing.'}${prefText ? `\nPreferences: ${prefText}` : ''}`,
        );
        return;
      }
      case 'search': {
        if (!search || !views) {
          await say(`Search is not set up here.\n${help}`);
          return;
        }
        await subscriberFor(command.user_id, command.user_name);
        const blocks = await searchBlocks(command.user_id, arg);
        await respond({ response_type: 'ephemeral', text: `Results for “${arg}”`, blocks });
        return;
      }
      case 'help':
        await say(help);
        return;
      default:
        await say(`Unknown command "${verb}".\n${help}`);
    }
  };

  app.command(config.command, async ({ command, ack, respond }) => {
    await ack();
    // The answer goes to response_url, after the HTTP ack: slow Slack calls never hold up Slack's 3 s.
    void runCommand(command, respond).catch(async (err: Error) => {
      log.warn({ user: command.user_id, err: err.message }, 'slash command failed');
      await respond({ response_type: 'ephemeral', text: `Sorry, that failed: ${err.message}` }).catch(
        () => undefined,
      );
    });
  });

  app.event('app_home_opened', async ({ event }) => {
    if (event.tab && event.tab !== 'home') return;
    schedulePublish(event.user, 0);
  });

  app.action(/^pref:/, async ({ ack, body, action }) => {
    await ack();
    const name = (action as { action_id: string }).action_id.slice('pref:'.length);
    const raw = (action as { value?: string }).value;
    const userId = body.user.id;
    try {
      const subscriber = await subscriberFor(userId);
      await subscriptions.setPreferences(subscriber.id, {
        [name]: raw === undefined ? undefined : JSON.parse(raw),
      });
    } catch (err) {
      log.warn({ user: userId, preference: name, err: (err as Error).message }, 'preference change failed');
    }
    schedulePublish(userId, 0);
  });

  app.action(/^sub:(on|off)$/, async ({ ack, body, action, respond }) => {
    await ack();
    const userId = body.user.id;
    let target: { key: string; q?: string };
    try {
      target = JSON.parse((action as { value?: string }).value ?? '');
    } catch {
      return;
    }
    const subscriber = await subscriberFor(userId);
    if ((action as { action_id: string }).action_id === 'sub:on')
      await store.subscribe(subscriber.id, target.key, Date.now());
    else await store.unsubscribe(subscriber.id, target.key);
    // Redraw where the button was: search results in place, or the App Home.
    if (target.q !== undefined && 'response_url' in body && body.response_url) {
      await respond({
        replace_original: true,
        text: 'Updated',
        blocks: await searchBlocks(userId, target.q),
      });
    }
    schedulePublish(userId, 0);
  });

  app.error(async (err) => {
    log.warn({ err: err.message }, 'Slack app error');
  });

  return {
    extension(fastify) {
      httpReceiver?.register(fastify);
    },
    async start() {
      try {
        await app.init();
      } catch (err) {
        throw new HeraldError(
          'CONFIG_INVALID',
          `Slack app: the bot token was refused (${(err as Error).message})`,
        );
      }
      await app.start();
      log.info({ mode: socketMode ? 'socket' : 'http', command: config.command }, 'Slack app ready');
    },
    async stop() {
      unsubscribeFeed();
      for (const timer of scheduled.values()) clearTimeout(timer);
      scheduled.clear();
      await Promise.allSettled([...running]);
      await app.stop().catch(() => undefined);
    },
    publishHome,
    async idle() {
      while (scheduled.size > 0 || running.size > 0) {
        await new Promise((r) => setTimeout(r, 20));
        await Promise.allSettled([...running]);
      }
    },
  };
}
