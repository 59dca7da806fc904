import type { IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import type { Agent, Dispatcher } from 'undici';
import { z } from 'zod';
import { type ChannelKind, delivered, failed, retry, templateScope } from '../../engine/types.js';
import { errorMessage } from '../../errors.js';
import { toStructuredHttp } from '../../events/index.js';
import { redactUrl } from '../../redact.js';
import { signWebhook, standardWebhooksSecretSchema } from '../../signing/standard-webhooks.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../../templates/index.js';
import {
  checkBeforeConnect,
  hostAllowed,
  type Lookup,
  outboundAgent,
  outboundPolicySchema,
  refusalOf,
} from '../outbound.js';

export const webhookConfigSchema = z.strictObject({
  url: z
    .string()
    .url()
    .describe(
      'Where to POST. May be overridden per action. `user:password@` in it is sent as an `Authorization: Basic` header.',
    )
    .optional(),
  secret: standardWebhooksSecretSchema
    .optional()
    .describe(
      'Standard Webhooks signing secret: `whsec_` and base64 of at least 24 random bytes. When set, every request is signed.',
    ),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(10_000)
    .describe(
      'Total time one request may take: connecting, sending, and the answer’s headers and whole body. A receiver still answering then is cut off and the attempt retried.',
    ),
  headers: z.record(z.string(), z.string()).default({}).describe('Extra request headers.'),
  concurrency: z
    .number()
    .int()
    .positive()
    .default(16)
    .describe('Requests in flight at once for this channel.'),
  ...outboundPolicySchema,
});
export type WebhookConfig = z.infer<typeof webhookConfigSchema>;

export const webhookActionSchema = z.strictObject({
  url: templateSchema()
    .optional()
    .describe(
      'Overrides the channel URL for this action (a template). Rendered from event data, it may only reach public addresses unless the channel allows the host.',
    ),
  body: templateTreeSchema()
    .optional()
    .describe(
      'A JSON body whose strings are templates. Without it, the event is sent as a structured CloudEvent.',
    ),
  headers: z.record(z.string(), templateSchema()).optional().describe('Extra headers (templates).'),
});
export type WebhookAction = z.infer<typeof webhookActionSchema>;

const RETRY_STATUSES = new Set([408, 429]);

/** Parses `Retry-After` (seconds or an HTTP date) into epoch ms. */
export function retryAfterToEpoch(
  value: string | string[] | undefined,
  now = Date.now(),
): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return now + Math.ceil(Math.max(0, seconds) * 1000);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : date;
}

export interface WebhookChannelOptions {
  /** Resolves host names for every request (tests make names resolve where they like). */
  lookup?: Lookup;
}

/** The webhook channel kind; `webhookChannel` is the one Herald registers. */
export function createWebhookChannelKind(
  options: WebhookChannelOptions = {},
): ChannelKind<WebhookConfig, WebhookAction> {
  return {
    kind: 'webhook',
    description:
      'POSTs the event (structured CloudEvent or a templated JSON body) to a URL, signed per Standard Webhooks.',
    configSchema: webhookConfigSchema,
    actionSchema: webhookActionSchema,
    create(name, config) {
      const agentOptions = {
        keepAliveTimeout: 10_000,
        connections: config.concurrency * 2,
        lookup: options.lookup,
      };
      const trusted = outboundAgent({ ...agentOptions, guarded: false });
      // URLs rendered from event data go through this one: public addresses only.
      const guarded = outboundAgent({ ...agentOptions, guarded: true });
      // Parsed once: most actions post to the channel's URL.
      const channelUrl = config.url ? new URL(config.url) : undefined;
      const channelUrlShown = config.url ? redactUrl(config.url) : undefined;
      const channelAuthorization = channelUrl ? basicAuthorization(channelUrl) : undefined;
      const configuredAuthorization = Object.keys(config.headers).some(
        (k) => k.toLowerCase() === 'authorization',
      );
      return {
        concurrency: config.concurrency,
        timeoutMs: config.timeoutMs,
        async send(req) {
          const scope = templateScope(req);
          // A constant action URL was written in the config; a template or a recipient was not.
          const fromConfig = req.action.url ? req.action.url.constant : req.recipient === null;
          const url = req.action.url ? req.action.url.render(scope) : (req.recipient ?? config.url);
          if (!url) return failed(`channel ${name}: no URL configured`);
          const isChannelUrl = url === config.url;
          let target: URL;
          try {
            target = isChannelUrl ? channelUrl! : new URL(url);
          } catch {
            return failed(`channel ${name}: not a URL: ${JSON.stringify(redactUrl(url).slice(0, 200))}`);
          }
          const rendered = {
            url: isChannelUrl ? channelUrlShown! : redactUrl(url),
            body: undefined as unknown,
          };
          let agent = trusted;
          if (!fromConfig && !hostAllowed(target.hostname, config)) {
            const refusal = checkBeforeConnect(target);
            if (refusal) return failed(refusal.message, rendered);
            agent = guarded;
          }
          let body: string;
          let contentType: string;
          if (req.action.body !== undefined) {
            // The templated body as sent, kept for the delivery's record (a CloudEvent body is not).
            rendered.body = renderTree(req.action.body as TemplateTree, scope);
            body = JSON.stringify(rendered.body);
            contentType = 'application/json';
          } else {
            const structured = toStructuredHttp(req.event);
            body = structured.body;
            contentType = structured.headers['content-type'] ?? 'application/cloudevents+json';
          }
          const headers: Record<string, string> = { ...config.headers, 'content-type': contentType };
          for (const [k, v] of Object.entries(req.action.headers ?? {}))
            headers[k.toLowerCase()] = v.render(scope);
          const authorization = isChannelUrl ? channelAuthorization : basicAuthorization(target);
          if (authorization && !configuredAuthorization && !('authorization' in headers))
            headers.authorization = authorization;
          if (config.secret) {
            const ts = Math.floor(Date.now() / 1000);
            headers['webhook-id'] = req.idempotencyKey;
            headers['webhook-timestamp'] = String(ts);
            headers['webhook-signature'] = signWebhook(config.secret, req.idempotencyKey, ts, body);
          } else {
            headers['idempotency-key'] = req.idempotencyKey;
          }
          try {
            const res = await post(agent, target, {
              body,
              headers,
              timeoutMs: config.timeoutMs,
              signal: req.signal,
            });
            const status = res.status;
            if (status >= 200 && status < 300)
              return delivered(res.headers['x-request-id']?.toString().slice(0, 200), rendered);
            const reason = `HTTP ${status}${res.summary ? `: ${res.summary}` : ''}`;
            if (RETRY_STATUSES.has(status) || status >= 500) {
              return retry(reason, retryAfterToEpoch(res.headers['retry-after']), rendered);
            }
            return failed(reason, rendered);
          } catch (err) {
            const refusal = refusalOf(err);
            if (refusal) return failed(refusal.message, rendered);
            return retry(`request failed: ${redactUrl(errorMessage(err))}`, undefined, rendered);
          }
        },
        async check() {
          if (!config.url) return { ok: true, detail: 'URL comes from each action' };
          const target = new URL(config.url);
          const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
          return new Promise((resolve) => {
            const socket = connect({ host: target.hostname, port, timeout: 3000 });
            const done = (ok: boolean, detail: string) => {
              socket.destroy();
              resolve(
                ok
                  ? { ok, detail }
                  : { ok, detail, fix: `check that ${target.host} is up and reachable from here` },
              );
            };
            socket.once('connect', () => done(true, `${target.host} accepts connections`));
            socket.once('timeout', () => done(false, `${target.host} did not answer within 3 s`));
            socket.once('error', (err) =>
              done(false, `${target.host}: ${(err as NodeJS.ErrnoException).code ?? err.message}`),
            );
          });
        },
        async close() {
          await Promise.all([trusted.close(), guarded.close()]);
        },
      };
    },
  };
}

export const webhookChannel = createWebhookChannelKind();

/** `https://user:pw@host/` → `Basic dXNlcjpwdw==`; the URL's origin, which is what is sent, has no userinfo. */
function basicAuthorization(url: URL): string | undefined {
  if (!url.username && !url.password) return undefined;
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  };
  const credentials = `${decode(url.username)}:${decode(url.password)}`;
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

/** What the receiver answered: all a send needs to decide its outcome. */
interface WebhookResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** What the body says went wrong, short and only from JSON or plain text, for the reason. */
  summary: string;
}

const SUMMARY_CHARS = 100;
/** Bytes of an answer read at most: a JSON error object or the start of a text. */
const BODY_BYTES = 2048;

/**
 * A failed answer's body in a delivery's reason shows in the DLQ and the dashboard, so it must
 * not turn Herald into a way to read other servers' pages: only a JSON `error`/`message` field
 * or the start of a plain-text body, on one line and capped; nothing from HTML or anything else.
 */
export function summarizeBody(contentType: string | undefined, body: string): string {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  let text = '';
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      const parsed = JSON.parse(body) as unknown;
      if (parsed !== null && typeof parsed === 'object') {
        const fields = parsed as Record<string, unknown>;
        const nested = fields.error as Record<string, unknown> | undefined;
        const candidates = [
          fields.error,
          nested !== null && typeof nested === 'object' ? nested.message : undefined,
          fields.message,
          fields.error_description,
          fields.detail,
          fields.title,
        ];
        text = (candidates.find((c) => typeof c === 'string' && c.trim() !== '') as string) ?? '';
      }
    } catch {
      // Cut short or not JSON after all: nothing to quote.
    }
  } else if (type === 'text/plain') {
    text = body;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  const line = text.replace(/[\u0000-\u001f\u007f\s]+/g, ' ').trim();
  return line.length > SUMMARY_CHARS ? `${line.slice(0, SUMMARY_CHARS)}…` : line;
}

/**
 * POSTs through undici's dispatcher interface, keeping only the status, the headers and the start
 * of the body. undici's `request()` wraps each answer's body in a stream and its own abort
 * handling; for an answer of which this channel reads 2 KB at most that cost about twice the
 * CPU per request (46 µs against 22 µs over loopback on the 2-core benchmark machine), and a busy
 * dispatcher spends much of its time here.
 */
function post(
  agent: Agent,
  url: URL,
  request: { body: string; headers: Record<string, string>; timeoutMs: number; signal: AbortSignal },
): Promise<WebhookResponse> {
  const { signal } = request;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | null = null;
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let received = 0;
    // Aborts the request whether it is on a socket already or still waiting for one.
    const onAbort = () => controller?.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = (err: Error | null) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else {
        // Only a failure's body is ever looked at.
        const summary =
          received > 0 && (status < 200 || status >= 300)
            ? summarizeBody(headers['content-type']?.toString(), Buffer.concat(chunks).toString('utf8'))
            : '';
        resolve({ status, headers, summary });
      }
    };
    try {
      agent.dispatch(
        {
          origin: url.origin,
          path: url.pathname + url.search,
          method: 'POST',
          body: request.body,
          headers: request.headers,
          headersTimeout: request.timeoutMs,
          bodyTimeout: request.timeoutMs,
        },
        {
          onRequestStart(c) {
            controller = c;
            if (signal.aborted) c.abort(signal.reason);
          },
          onResponseStart(_c, statusCode, responseHeaders) {
            status = statusCode;
            headers = responseHeaders;
          },
          onResponseData(_c, chunk) {
            if (received < BODY_BYTES) {
              chunks.push(chunk);
              received += chunk.length;
            }
          },
          onResponseEnd: () => settle(null),
          onResponseError: (_c, err) => settle(err),
        },
      );
    } catch (err) {
      settle(err as Error);
    }
  });
}
