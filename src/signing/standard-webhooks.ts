import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/** Shorter keys are guessable; Standard Webhooks asks for 24 to 64 random bytes. */
export const MIN_SECRET_BYTES = 24;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;

/**
 * What is wrong with a Standard Webhooks secret (`whsec_` + base64 of the key), or null. The
 * message never contains the secret.
 */
export function secretProblem(secret: string): string | null {
  const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  if (encoded === '') return 'is empty: write `whsec_` followed by the base64 of at least 24 random bytes';
  if (!BASE64.test(encoded))
    return 'is not valid base64 after `whsec_` (only A-Z a-z 0-9 + / and = padding; no spaces)';
  const bytes = Buffer.from(encoded, 'base64').length;
  if (bytes < MIN_SECRET_BYTES)
    return `decodes to ${bytes} bytes; a signing key needs at least ${MIN_SECRET_BYTES} (e.g. \`whsec_$(openssl rand -base64 32)\`)`;
  return null;
}

/** A config value holding a Standard Webhooks secret, checked when the config loads. */
export const standardWebhooksSecretSchema = z.string().superRefine((secret, ctx) => {
  const problem = secretProblem(secret);
  if (problem) ctx.addIssue({ code: 'custom', message: `the signing secret ${problem}` });
});

/**
 * Standard Webhooks (symmetric, v1): HMAC-SHA256 over `{id}.{timestamp}.{body}` with the
 * base64-decoded secret (the `whsec_` prefix is optional).
 */
export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

export function signWebhook(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string | Buffer,
): string {
  // The body goes in as the bytes received: a verifier must not re-encode what it checks.
  const mac = createHmac('sha256', secretKey(secret))
    .update(`${id}.${timestampSeconds}.`)
    .update(body)
    .digest('base64');
  return `v1,${mac}`;
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

/** Verifies Standard Webhooks headers; tolerance in seconds both ways (default 300). */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string | Buffer,
  nowSeconds = Math.floor(Date.now() / 1000),
  toleranceSeconds = 300,
): VerifyResult {
  const id = single(headers['webhook-id']);
  const timestamp = single(headers['webhook-timestamp']);
  const signatures = single(headers['webhook-signature']);
  if (!id || !timestamp || !signatures) return { ok: false, reason: 'missing required headers' };
  const ts = Number(timestamp);
  if (!Number.isInteger(ts)) return { ok: false, reason: 'invalid timestamp' };
  if (ts < nowSeconds - toleranceSeconds) return { ok: false, reason: 'message timestamp too old' };
  if (ts > nowSeconds + toleranceSeconds) return { ok: false, reason: 'message timestamp too new' };
  const expected = Buffer.from(signWebhook(secret, id, ts, body).slice(3), 'base64');
  for (const entry of signatures.split(' ')) {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
  }
  return { ok: false, reason: 'no matching signature' };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
