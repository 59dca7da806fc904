import { AsyncLocalStorage } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebAPICallResult } from '@slack/web-api';
import { z } from 'zod';
import { type ChannelKind, delivered, failed, retry, templateScope } from '../../engine/types.js';
import { errorMessage } from '../../errors.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../../templates/index.js';
import { ChannelTurns } from './pacing.js';

/** Users whose DM channel id is remembered per channel instance. */
const DM_CACHE_SIZE = 50_000;

/** Slack errors that will not get better by retrying: the delivery goes to the DLQ with the code. */
const PERMANENT = new Set([
  'invalid_auth',
  'not_authed',
  'account_inactive',
  'token_revoked',
  'token_expired',
  'no_permission',
  'missing_scope',
  'channel_not_found',
  'not_in_channel',
  'is_archived',
  'user_not_found',
  'users_not_found',
  'msg_too_long',
  'no_text',
  'invalid_blocks',
  'invalid_arguments',
  'message_not_found',
  'cant_update_message',
]);

export const slackConfigSchema = z.strictObject({
  token: z.string().min(1).describe('Bot token (xoxb-…), e.g. ${SLACK_BOT_TOKEN}.'),
  apiUrl: z
    .string()
    .url()
    .optional()
    .describe(
      'Web API base URL (default: SLACK_API_URL, else Slack’s), to talk to any Slack-compatible server.',
    ),
  concurrency: z
    .number()
    .int()
    .positive()
    .default(32)
    .describe(
      'Sends at once. Pacing waits inside a send, so this is kept high: one busy Slack channel must not hold the others back.',
    ),
  perChannelIntervalMs: z
    .number()
    .int()
    .nonnegative()
    .default(1000)
    .describe('Least time between two messages to one Slack channel (Slack allows about one per second).'),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(60_000)
    .describe(
      'Total time one message may take: its wait for the Slack channel’s turn (`perChannelIntervalMs`) and every Web API call it makes. Keep it above `concurrency` × `perChannelIntervalMs`, the longest that wait can be.',
    ),
  emailCacheMs: z
    .number()
    .int()
    .nonnegative()
    .default(600_000)
    .describe('How long an email → user id lookup is remembered.'),
  emailCacheSize: z
    .number()
    .int()
    .positive()
    .default(10_000)
    .describe(
      'Most email → user id lookups remembered. When full they are all forgotten at once and looked up again as needed: recipients come from event data, so the cache must not grow with every new address.',
    ),
});
export type SlackConfig = z.infer<typeof slackConfigSchema>;

export const slackActionSchema = z.strictObject({
  text: templateSchema()
    .optional()
    .describe('Message text (template); the notification text when blocks are given.'),
  blocks: templateTreeSchema().optional().describe('Block Kit blocks (a list; strings are templates).'),
  thread: templateSchema()
    .optional()
    .describe('Thread key (template): later messages with the same key reply in the first one’s thread.'),
  update: templateSchema()
    .optional()
    .describe(
      'Update key (template): a later message with the same key replaces the earlier one (chat.update).',
    ),
});
export type SlackAction = z.infer<typeof slackActionSchema>;

type Address = { channel: string; dmUser?: string } | { error: string };

/**
 * The signal of the send a Web API call is made for. The client takes no signal per call, only
 * a `fetch`, so that fetch looks the send's signal up here.
 */
const sendSignal = new AsyncLocalStorage<AbortSignal>();

const abortableFetch: typeof fetch = (input, init) => {
  const signal = sendSignal.getStore();
  if (!signal) return fetch(input, init);
  return fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });
};

// The Web API client is loaded by `prepare`, only when a Slack channel is configured: a Herald
// without one does not load it at start.
let webApi: typeof import('@slack/web-api') | undefined;

function slackWebApi(): typeof import('@slack/web-api') {
  if (!webApi)
    throw new Error('a Slack channel was created before its kind was prepared (ChannelKind.prepare)');
  return webApi;
}

/**
 * Posts to Slack through the official Web API client. Recipients: `#name` or a channel id, a user
 * id (a DM), or an email address (looked up, then a DM). Rate limits (HTTP 429) come back as retry
 * at Retry-After; Slack error codes in `PERMANENT` fail the delivery with the code in the reason.
 */
export const slackChannel: ChannelKind<SlackConfig, SlackAction> = {
  kind: 'slack',
  description: 'Posts, threads and updates Slack messages (Web API); DMs users by id or email.',
  configSchema: slackConfigSchema,
  actionSchema: slackActionSchema,
  updatesMessages: true,
  async prepare() {
    webApi ??= await import('@slack/web-api');
  },
  create(name, config, context) {
    const { ErrorCode, WebClient } = slackWebApi();
    const client = new WebClient(config.token, {
      slackApiUrl: config.apiUrl ?? context.env.SLACK_API_URL ?? undefined,
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      logger: undefined,
      fetch: abortableFetch,
      // Room for every send's call at once: a call the client queues would run in the context of
      // another send, with that send's signal.
      maxRequestConcurrency: config.concurrency + 8,
    });
    const turns = new ChannelTurns(config.perChannelIntervalMs);
    const emailCache = new Map<string, { userId: string; until: number }>();

    /** Waits for this Slack channel's turn, or until the send is aborted; other channels are not affected. */
    const pace = async (channel: string, signal: AbortSignal) => {
      const now = Date.now();
      const at = turns.take(channel, now);
      if (at > now) await sleep(at - now, undefined, { signal });
    };

    // A user's DM channel never changes, so one conversations.open per user (not per message)
    // halves the Web API calls of a DM.
    const dmChannels = new Map<string, string>();
    const dmChannel = async (userId: string): Promise<string> => {
      const known = dmChannels.get(userId);
      if (known) return known;
      const res = (await client.conversations.open({ users: userId })) as WebAPICallResult & {
        channel?: { id?: string };
      };
      const id = res.channel?.id;
      if (!id) return userId;
      // Starting afresh when full is cheaper than evicting from the front of a Map one by one.
      if (dmChannels.size >= DM_CACHE_SIZE) dmChannels.clear();
      dmChannels.set(userId, id);
      return id;
    };

    const address = async (recipient: string): Promise<Address> => {
      if (recipient.includes('@') && !recipient.startsWith('#')) {
        const cached = emailCache.get(recipient);
        if (cached && cached.until > Date.now())
          return { channel: await dmChannel(cached.userId), dmUser: cached.userId };
        const res = (await client.users.lookupByEmail({ email: recipient })) as WebAPICallResult & {
          user?: { id?: string };
        };
        if (!res.user?.id) return { error: 'users_not_found' };
        if (emailCache.size >= config.emailCacheSize) emailCache.clear();
        emailCache.set(recipient, { userId: res.user.id, until: Date.now() + config.emailCacheMs });
        return { channel: await dmChannel(res.user.id), dmUser: res.user.id };
      }
      if (/^[UW][A-Z0-9]+$/.test(recipient))
        return { channel: await dmChannel(recipient), dmUser: recipient };
      return { channel: recipient };
    };

    return {
      concurrency: config.concurrency,
      timeoutMs: config.timeoutMs,
      send: (req) =>
        sendSignal.run(req.signal, async () => {
          if (!req.recipient)
            return failed(`channel ${name}: the action has no \`to\` (a #channel, a user id or an email)`);
          const scope = templateScope(req);
          const text = req.action.text?.render(scope);
          const blocks =
            req.action.blocks === undefined
              ? undefined
              : renderTree(req.action.blocks as TemplateTree, scope);
          const rendered = { to: req.recipient, text, blocks };
          if (text === undefined && blocks === undefined)
            return failed('a Slack action needs text or blocks', rendered);
          let dmUser: string | undefined;
          try {
            const target = await address(req.recipient);
            if ('dmUser' in target) dmUser = target.dmUser;
            if ('error' in target)
              return failed(`slack error ${target.error} for ${req.recipient}`, rendered);
            // A digest with `update: true` edits the message of the first digest of its key, for
            // this trigger, action and recipient; otherwise the action's own `update` key decides.
            const updateKey = req.digest?.update
              ? `digest:${JSON.stringify([req.trigger, req.digest.action, req.recipient, req.digest.key])}`
              : req.action.update?.render(scope);
            const threadKey = req.action.thread?.render(scope);
            if (updateKey) {
              const earlier = await context.kv.get<{ channel: string; ts: string }>(
                'slack-messages',
                `${name}:${updateKey}`,
              );
              if (earlier) {
                await pace(earlier.channel, req.signal);
                await client.chat.update({
                  channel: earlier.channel,
                  ts: earlier.ts,
                  text: text ?? '',
                  blocks: blocks as never,
                });
                return delivered(earlier.ts, rendered);
              }
            }
            const thread = threadKey
              ? await context.kv.get<{ channel: string; ts: string }>('slack-threads', `${name}:${threadKey}`)
              : null;
            await pace(target.channel, req.signal);
            const res = (await client.chat.postMessage({
              channel: target.channel,
              text: text ?? '',
              ...(blocks !== undefined ? { blocks: blocks as never } : {}),
              ...(thread ? { thread_ts: thread.ts } : {}),
            })) as WebAPICallResult & { ts?: string; channel?: string };
            const posted = { channel: res.channel ?? target.channel, ts: res.ts ?? '' };
            if (threadKey && !thread)
              await context.kv.setIfAbsent('slack-threads', `${name}:${threadKey}`, posted);
            if (updateKey) await context.kv.set('slack-messages', `${name}:${updateKey}`, posted);
            return delivered(posted.ts, rendered);
          } catch (err) {
            if (req.signal.aborted)
              return retry(`Slack request stopped: ${errorMessage(req.signal.reason)}`, undefined, rendered);
            const e = err as {
              code?: string;
              retryAfter?: number;
              data?: { error?: string };
              message: string;
            };
            if (e.code === ErrorCode.RateLimitedError) {
              return retry(
                `Slack rate limit (retry after ${e.retryAfter ?? 1} s)`,
                Date.now() + (e.retryAfter ?? 1) * 1000,
                rendered,
              );
            }
            if (e.code === ErrorCode.PlatformError) {
              const code = e.data?.error ?? 'unknown_error';
              // A remembered DM channel that Slack no longer knows: open it afresh on the retry.
              if (code === 'channel_not_found' && dmUser && dmChannels.delete(dmUser))
                return retry(`slack error ${code} (the DM channel is opened again)`, undefined, rendered);
              const reason = `slack error ${code}`;
              return PERMANENT.has(code) ? failed(reason, rendered) : retry(reason, undefined, rendered);
            }
            return retry(`Slack request failed: ${e.message}`, undefined, rendered);
          }
        }),
      async check() {
        try {
          const res = (await client.auth.test()) as WebAPICallResult & { team?: string; user?: string };
          return { ok: true, detail: `auth.test: ${res.user ?? 'bot'} in ${res.team ?? 'workspace'}` };
        } catch (err) {
          const code = (err as { data?: { error?: string } }).data?.error;
          return {
            ok: false,
            detail: `auth.test failed: ${code ?? (err as Error).message}`,
            fix: 'check SLACK_BOT_TOKEN and SLACK_API_URL',
          };
        }
      },
    };
  },
};
