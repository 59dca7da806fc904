import { z } from 'zod';
import { type ChannelKind, delivered, failed, retry, templateScope } from '../../engine/types.js';
import { errorMessage } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import { templateSchema } from '../../templates/index.js';

export const emailConfigSchema = z.strictObject({
  url: z
    .string()
    .regex(/^smtps?:\/\//, 'an smtp:// or smtps:// URL')
    .describe('SMTP server, e.g. smtp://user:pass@mail.example.com:587 (smtps:// for TLS from the start).'),
  from: z.string().min(1).describe('Default From address, e.g. "Herald <alerts@example.com>".'),
  requireTLS: z.boolean().default(false).describe('Refuse to send unless the server offers STARTTLS.'),
  rejectUnauthorized: z.boolean().default(true).describe('Verify the server’s TLS certificate.'),
  timeoutMs: z
    .number()
    .int()
    .positive()
    .default(30_000)
    .describe(
      'Total time one message may take: connecting, the greeting, TLS, authentication and the transfer. A server still busy then is cut off and the attempt retried.',
    ),
  concurrency: z.number().int().positive().default(4).describe('Messages sent at once.'),
});
export type EmailConfig = z.infer<typeof emailConfigSchema>;

export const emailActionSchema = z.strictObject({
  subject: templateSchema().describe('Subject line (template).'),
  text: templateSchema().optional().describe('Plain-text body (template).'),
  html: templateSchema().optional().describe('HTML body (template).'),
  from: templateSchema().optional().describe('Overrides the channel’s From address.'),
  cc: templateSchema().optional().describe('Cc addresses, comma-separated (template).'),
  bcc: templateSchema().optional().describe('Bcc addresses, comma-separated (template).'),
  replyTo: templateSchema().optional().describe('Reply-To address (template).'),
});
export type EmailAction = z.infer<typeof emailActionSchema>;

/** An SMTP reply code from a nodemailer error, when the server gave one. */
function replyCode(err: unknown): number | undefined {
  const e = err as { responseCode?: number };
  return typeof e.responseCode === 'number' ? e.responseCode : undefined;
}

// nodemailer is loaded by `prepare`, only when an email channel is configured: a Herald without
// one does not load it at start.
let nodemailer: typeof import('nodemailer') | undefined;

function mailer(): typeof import('nodemailer') {
  if (!nodemailer)
    throw new Error('an email channel was created before its kind was prepared (ChannelKind.prepare)');
  return nodemailer;
}

/**
 * Email over SMTP with nodemailer. The delivery's `to` is the recipient (comma-separated for
 * several). A 4xx reply or a connection problem is retried; a 5xx reply fails permanently with
 * the server's words. Retries carry the same Message-ID, derived from the idempotency key.
 */
export const emailChannel: ChannelKind<EmailConfig, EmailAction> = {
  kind: 'email',
  description: 'Sends email over SMTP (nodemailer): subject, text and HTML bodies from templates.',
  configSchema: emailConfigSchema,
  actionSchema: emailActionSchema,
  async prepare() {
    nodemailer ??= await import('nodemailer');
  },
  create(name, config) {
    const transport = mailer().default.createTransport({
      url: config.url,
      requireTLS: config.requireTLS,
      tls: { rejectUnauthorized: config.rejectUnauthorized },
      connectionTimeout: config.timeoutMs,
      greetingTimeout: config.timeoutMs,
      socketTimeout: config.timeoutMs,
    });
    const host = (() => {
      try {
        return new URL(config.url).hostname;
      } catch {
        return 'smtp';
      }
    })();
    return {
      concurrency: config.concurrency,
      timeoutMs: config.timeoutMs,
      async send(req) {
        if (!req.recipient) return failed(`channel ${name}: the action has no \`to\` address`);
        const scope = templateScope(req);
        const message = {
          from: req.action.from?.render(scope) || config.from,
          to: req.recipient,
          cc: req.action.cc?.render(scope) || undefined,
          bcc: req.action.bcc?.render(scope) || undefined,
          replyTo: req.action.replyTo?.render(scope) || undefined,
          subject: req.action.subject.render(scope),
          text: req.action.text?.render(scope),
          html: req.action.html?.render(scope),
        };
        try {
          const info = await transport.sendMail({
            ...message,
            messageId: `<${req.idempotencyKey}@${host}>`,
            headers: { 'X-Herald-Idempotency-Key': req.idempotencyKey },
            // Ends the SMTP session at the send's deadline or shutdown, wherever it is.
            signal: req.signal,
          });
          return delivered(info.messageId, message);
        } catch (err) {
          if (req.signal.aborted)
            return retry(`SMTP session stopped: ${errorMessage(req.signal.reason)}`, undefined, message);
          const code = replyCode(err);
          const reason = redactUrl(`SMTP${code ? ` ${code}` : ''}: ${(err as Error).message}`);
          if (code !== undefined && code >= 500) return failed(reason, message);
          return retry(reason, undefined, message);
        }
      },
      async check() {
        try {
          await transport.verify();
          return { ok: true, detail: `${host} completed the SMTP handshake` };
        } catch (err) {
          return {
            ok: false,
            detail: redactUrl(`${host}: ${(err as Error).message}`),
            fix: 'check the SMTP URL, credentials and TLS settings',
          };
        }
      },
      async close() {
        transport.close();
      },
    };
  },
};
