import { z } from 'zod';
import { standardWebhooksSecretSchema } from './standard-webhooks.js';

// How a route's requests are signed: the sources that add routes declare it (config), the engine
// carries it on the route, and the server verifies it (src/server/ingest-auth.ts).

const hmacAuthSchema = z
  .strictObject({
    secret: z.string().min(1).describe('The secret shared with the sender, e.g. ${GITHUB_WEBHOOK_SECRET}.'),
    header: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/, 'an HTTP header name')
      .default('x-hub-signature-256')
      .describe('Header carrying the signature (GitHub: x-hub-signature-256).'),
    prefix: z
      .string()
      .default('sha256=')
      .describe('What the header value starts with before the digest (GitHub: `sha256=`; "" for none).'),
    algorithm: z.enum(['sha256', 'sha1', 'sha512']).default('sha256').describe('HMAC hash function.'),
    encoding: z
      .enum(['hex', 'base64'])
      .default('hex')
      .describe('How the digest is written in the header (GitHub: hex).'),
  })
  .describe('HMAC of the raw request body with a shared secret, in a header: GitHub-style signed webhooks.');

export const ingestAuthSchema = z
  .strictObject({
    hmac: hmacAuthSchema.optional(),
    standardWebhooks: z
      .strictObject({
        secret: standardWebhooksSecretSchema.describe(
          'The sender’s signing secret, `whsec_` + base64 of at least 24 bytes, e.g. ${PARTNER_WEBHOOK_SECRET}.',
        ),
      })
      .optional()
      .describe(
        'Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature), timestamps within 5 minutes.',
      ),
  })
  .refine((auth) => (auth.hmac ? 1 : 0) + (auth.standardWebhooks ? 1 : 0) === 1, {
    message: 'give exactly one of hmac or standardWebhooks',
  })
  .describe(
    'Verify signed requests instead of the ingest token: `hmac` (e.g. GitHub) or `standardWebhooks`. A request that fails gets 401 and is not stored.',
  );
export type IngestAuth = z.infer<typeof ingestAuthSchema>;
