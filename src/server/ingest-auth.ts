import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { HeraldError } from '../errors.js';
import type { IngestAuth } from '../signing/ingest-auth.js';
import { verifyWebhook } from '../signing/standard-webhooks.js';

type Headers = Record<string, string | string[] | undefined>;

/** Standard Webhooks' tolerance for `webhook-timestamp`, both directions. */
export const STANDARD_WEBHOOKS_TOLERANCE_S = 300;

/** Throws a 401 HeraldError naming what is wrong with the request's signature. */
export type RequestVerifier = (rawBody: Buffer, headers: Headers) => void;

export function requestVerifier(auth: IngestAuth, nowMs: () => number = Date.now): RequestVerifier {
  if (auth.hmac) return hmacVerifier(auth.hmac);
  const { secret } = auth.standardWebhooks!;
  return (rawBody, headers) => {
    const missing = ['webhook-id', 'webhook-timestamp', 'webhook-signature'].filter(
      (name) => !single(headers[name]),
    );
    if (missing.length > 0) refuse(`the request is not signed: missing header ${missing.join(', ')}`);
    const result = verifyWebhook(
      secret,
      headers,
      rawBody,
      Math.floor(nowMs() / 1000),
      STANDARD_WEBHOOKS_TOLERANCE_S,
    );
    if (result.ok) return;
    switch (result.reason) {
      case 'invalid timestamp':
        refuse('webhook-timestamp is not a whole number of seconds');
        break;
      case 'message timestamp too old':
        refuse('webhook-timestamp is more than 5 minutes in the past');
        break;
      case 'message timestamp too new':
        refuse('webhook-timestamp is more than 5 minutes in the future');
        break;
      default:
        refuse('webhook-signature does not match the request (wrong secret, or the body was changed)');
    }
  };
}

function hmacVerifier(config: NonNullable<IngestAuth['hmac']>): RequestVerifier {
  const digitsPattern = config.encoding === 'hex' ? /^[0-9a-fA-F]+$/ : /^[A-Za-z0-9+/]+={0,2}$/;
  // Node hands header names over in lower case.
  const header = config.header.toLowerCase();
  return (rawBody, headers) => {
    const value = single(headers[header])?.trim();
    if (!value) refuse(`the request is not signed: missing header ${header}`);
    if (!value.startsWith(config.prefix)) {
      refuse(`${header} must start with ${JSON.stringify(config.prefix)}`);
    }
    const digits = value.slice(config.prefix.length);
    const expected = createHmac(config.algorithm, config.secret).update(rawBody).digest();
    const given = digitsPattern.test(digits) ? Buffer.from(digits, config.encoding) : Buffer.alloc(0);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      refuse(`${header} does not match the body (wrong secret, or the body was changed)`);
    }
  };
}

/**
 * Whether an Authorization header carries `token` as a bearer token. Both sides are hashed first,
 * so the comparison takes the same time whatever the given token's length or content.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer +(\S+) *$/i.exec(header ?? '')?.[1];
  if (given === undefined) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(token));
}

function refuse(reason: string): never {
  throw new HeraldError('UNAUTHORIZED', reason);
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
