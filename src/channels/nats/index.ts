import type { MsgHdrs } from '@nats-io/transport-node';
import { z } from 'zod';
import {
  type ChannelKind,
  type ChannelResult,
  delivered,
  failed,
  retry,
  templateScope,
} from '../../engine/types.js';
import { EventValidationError, errorMessage } from '../../errors.js';
import { followUpDraft, nextHop } from '../../events/hops.js';
import { toBinaryNats, toStructuredNats, validateEvent } from '../../events/index.js';
import type { CloudEvent } from '../../events/types.js';
import { nats, natsUrlSchema } from '../../nats/index.js';
import { redactUrl } from '../../redact.js';
import { renderTree, type TemplateTree, templateSchema, templateTreeSchema } from '../../templates/index.js';
import { ChannelConnection, NatsConnectError, untilAborted } from './connection.js';

/** A subject one may publish to: dot-separated tokens, no whitespace, no wildcard. */
const PUBLISH_SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;
const MAX_SUBJECT_LENGTH = 1024;

export const natsChannelConfigSchema = z.strictObject({
  url: natsUrlSchema
    .default('nats://127.0.0.1:4222')
    .describe(
      'NATS server URL (`tls://` for TLS); user:password@ or token@ credentials may be part of it (never logged).',
    ),
  mode: z
    .enum(['structured', 'binary'])
    .default('structured')
    .describe(
      'CloudEvents NATS binding: `structured` sends the whole event as JSON (content-type application/cloudevents+json); `binary` sends the data as the payload and the attributes as `ce-` headers.',
    ),
  jetstream: z
    .boolean()
    .default(false)
    .describe(
      'Publish through JetStream: a send is delivered once a stream has stored the message, and `Nats-Msg-Id` is the delivery’s idempotency key, so a retry within the stream’s duplicate window is not stored twice. Off: core NATS, delivered once the server has the message.',
    ),
  maxHops: z
    .number()
    .int()
    .positive()
    .default(16)
    .describe(
      'With a templated `event`: how many re-publishes deep a chain may go (a subject Herald also reads would loop); the next one fails to the DLQ.',
    ),
  concurrency: z.number().int().positive().default(8).describe('Publishes at once.'),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(10_000)
    .describe(
      'The most one publish may take, connecting and (with JetStream) waiting for the stream’s acknowledgement included; then it is retried.',
    ),
});
export type NatsChannelConfig = z.infer<typeof natsChannelConfigSchema>;

export const natsActionSchema = z.strictObject({
  subject: templateSchema().describe(
    'The subject to publish to (a template), e.g. "orders.{{ event.data.region }}"; it must render to a subject without wildcards.',
  ),
  event: templateTreeSchema()
    .optional()
    .describe(
      'A CloudEvent to publish instead of the triggering one; strings are templates. `type` is required; `source` defaults to herald://nats/<channel>, `id` to one derived from the delivery (so retries do not duplicate), `data` to the triggering event’s.',
    ),
});
export type NatsAction = Omit<z.infer<typeof natsActionSchema>, 'event'> & { event?: TemplateTree };

/** What the delivery record keeps of a publish. */
interface Published {
  subject: string;
  mode: NatsChannelConfig['mode'];
  event: { id: string; source: string; type: string };
  stream?: string;
  seq?: number;
  duplicate?: boolean;
}

/**
 * Publishes the triggering event, or one rendered from it, to a subject rendered from it, per the
 * CloudEvents NATS protocol binding; through core NATS or JetStream.
 */
export const natsChannel: ChannelKind<NatsChannelConfig, NatsAction> = {
  kind: 'nats',
  description:
    'Publishes the event (or a CloudEvent rendered from it) to a NATS subject rendered from it, structured or binary; core NATS or JetStream with de-duplication.',
  configSchema: natsChannelConfigSchema,
  actionSchema: natsActionSchema as unknown as z.ZodType<NatsAction>,
  create(name, config, context) {
    const connection = new ChannelConnection(name, config.url, config.timeoutMs, context.logger);
    const where = connection.server;
    return {
      concurrency: config.concurrency,
      timeoutMs: config.timeoutMs,
      async send(req): Promise<ChannelResult> {
        const scope = templateScope(req);
        const subject = req.action.subject.render(scope);
        if (subject.length > MAX_SUBJECT_LENGTH || !PUBLISH_SUBJECT.test(subject)) {
          const shown = subject.length > 80 ? `${subject.slice(0, 80)}…` : subject;
          return failed(
            `the subject rendered to "${shown}", which is not a NATS subject one can publish to (dot-separated tokens, no spaces or wildcards, at most ${MAX_SUBJECT_LENGTH} characters)`,
          );
        }
        let event: CloudEvent;
        if (req.action.event === undefined) event = req.event;
        else {
          const made = templatedEvent(name, config.maxHops, req.action.event, req);
          if ('reason' in made) return failed(made.reason, { subject });
          event = made.event;
        }
        const parts = config.mode === 'binary' ? toBinaryNats(event) : toStructuredNats(event);
        const published: Published = {
          subject,
          mode: config.mode,
          event: { id: event.id, source: event.source, type: event.type },
        };
        const [{ headers: natsHeaders }] = await nats();
        const headers: MsgHdrs = natsHeaders();
        for (const [k, v] of Object.entries(parts.headers)) headers.set(k, v);
        try {
          const { nc, js } = await connection.get(req.signal);
          const maxPayload = nc.info?.max_payload;
          if (maxPayload !== undefined && parts.payload.length > maxPayload) {
            return failed(
              `the message is ${parts.payload.length} bytes; the NATS server at ${where} takes at most ${maxPayload}`,
              published,
            );
          }
          if (config.jetstream) {
            const ack = await untilAborted(
              js.publish(subject, parts.payload, {
                headers,
                msgID: req.idempotencyKey,
                timeout: config.timeoutMs,
              }),
              req.signal,
            );
            Object.assign(published, { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate });
            return delivered(`${ack.stream}/${ack.seq}`, published);
          }
          nc.publish(subject, parts.payload, { headers });
          // The server's answer to a ping sent after the message: it has the message.
          await untilAborted(nc.flush(), req.signal);
          return delivered(undefined, published);
        } catch (err) {
          if (req.signal.aborted)
            return retry(
              `publishing to ${subject} on ${where} stopped: ${errorMessage(req.signal.reason)}`,
              undefined,
              published,
            );
          return retry(publishFailure(err, subject, where, config.jetstream), undefined, published);
        }
      },
      check: () => connection.probe(config.jetstream),
      close: () => connection.close(),
    };
  },
};

/** The CloudEvent an action's `event` renders to, or why it cannot be sent. */
function templatedEvent(
  channel: string,
  maxHops: number,
  template: TemplateTree,
  req: { event: CloudEvent; events?: CloudEvent[]; recipient: string | null; idempotencyKey: string },
): { event: CloudEvent } | { reason: string } {
  const hops = nextHop(req.event);
  if (hops > maxHops)
    return {
      reason: `hop limit of ${maxHops} reached: event ${req.event.id} (${req.event.type}) was already re-published ${hops - 1} times`,
    };
  const rendered = renderTree(template, templateScope(req));
  if (rendered === null || typeof rendered !== 'object' || Array.isArray(rendered))
    return { reason: 'the nats action’s `event` must be an object' };
  const draft = followUpDraft(req.event, rendered as Record<string, unknown>, {
    id: req.idempotencyKey,
    source: `herald://nats/${channel}`,
    inheritData: true,
  });
  try {
    return { event: validateEvent(draft) };
  } catch (err) {
    if (err instanceof EventValidationError)
      return { reason: `the event to publish is invalid: ${err.message}` };
    throw err;
  }
}

/** Why a publish failed, in words that say what to look at. */
function publishFailure(err: unknown, subject: string, where: string, jetstream: boolean): string {
  if (err instanceof NatsConnectError) return err.message;
  const name = err instanceof Error ? err.name : '';
  if (jetstream && name === 'JetStreamNotEnabled')
    return `no JetStream stream on ${where} captures ${subject} (or JetStream is not enabled): nothing acknowledged the message`;
  return `publishing to ${subject} on ${where} failed: ${redactUrl(errorMessage(err))}`;
}
