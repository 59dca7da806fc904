import type { z } from 'zod';
import { HeraldError } from './errors.js';
import { eventLimits, parseJsonText } from './events/limits.js';

// Parsing of what an HTTP request carries, shared by the server and by the plugins that add
// routes to it (subscriptions, views), so none of them reaches up into src/server for it.

/** Parses a JSON request body, naming the problem on failure. */
export function parseJsonBody(body: unknown, contentType: string | undefined): unknown {
  if (body === undefined || (Buffer.isBuffer(body) && body.length === 0)) {
    throw new HeraldError('REQUEST_INVALID', 'expected a JSON body', { status: 400 });
  }
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new HeraldError(
      'REQUEST_INVALID',
      `expected content-type application/json, got ${type || 'none'}`,
      {
        status: 415,
      },
    );
  }
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : String(body);
  return parseJsonText(text, 'body', eventLimits().jsonDepth);
}

/** Parses a query string with its schema, naming the first parameter that is wrong. */
export function parseQuery<T extends z.ZodType>(schema: T, query: unknown): z.infer<T> {
  const result = schema.safeParse(query);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new HeraldError(
      'REQUEST_INVALID',
      `query parameter ${issue.path.join('.') || '?'}: ${issue.message}`,
    );
  }
  return result.data;
}
