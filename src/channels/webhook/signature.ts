import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Standard Webhooks (symmetric, v1): HMAC-SHA256 over `{id}.{timestamp}.{body}` with the
 * base64-decoded secret (the `whsec_` prefix is optional).
 */
export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secretKey(secret))
    .update(`${id}.${timestampSeconds}.${body}`)
    .digest('base64');
  return `v1,${mac}`;
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

/** Verifies Standard Webhooks headers; tolerance in seconds both ways (default 300). */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
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
