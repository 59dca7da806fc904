import { EventValidationError, HeraldError } from '../errors.js';
import { checkBatchSize, type EventLimits, eventLimits, parseJsonText } from './limits.js';
import { eventJsonForSend } from './serialize.js';
import type { CloudEvent } from './types.js';
import { validateEvent } from './validate.js';

export type HttpMode = 'structured' | 'binary' | 'batch';
type Headers = Record<string, string | string[] | undefined>;

const STRUCTURED = 'application/cloudevents+json';
const BATCH = 'application/cloudevents-batch+json';

function header(headers: Headers, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** The media type of a Content-Type value, lower-cased, without parameters. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

export function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type === 'text/json' || type.endsWith('+json');
}

export function isCloudEventContentType(contentType: string | undefined): boolean {
  const type = mediaType(contentType);
  return type === STRUCTURED || type === BATCH;
}

function isTextMediaType(type: string): boolean {
  return (
    type.startsWith('text/') ||
    type === 'application/xml' ||
    type.endsWith('+xml') ||
    type === 'application/x-www-form-urlencoded' ||
    type === 'application/javascript'
  );
}

/** Percent-decoding of binary-mode header values (HTTP binding §3.1.3.2). */
export function decodeHeaderValue(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    throw new HeraldError(
      'REQUEST_INVALID',
      `header value is not valid percent-encoded UTF-8: ${value.slice(0, 80)}`,
    );
  }
}

/** Percent-encodes space, `"`, `%` and anything outside printable ASCII, as the binding requires. */
export function encodeHeaderValue(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (code > 0x20 && code < 0x7f && ch !== '"' && ch !== '%') out += ch;
    else
      for (const byte of Buffer.from(ch, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Reads the CloudEvents in an HTTP request, in whichever mode it uses: structured
 * (`application/cloudevents+json`), batch (`application/cloudevents-batch+json`) or binary
 * (`ce-*` headers). Throws EventValidationError naming the attribute, or a REQUEST_INVALID error
 * (400 for malformed JSON, 415 for a request that is not a CloudEvent).
 */
export function parseHttpEvents(
  req: { headers: Headers; body: Buffer },
  limits: Readonly<EventLimits> = eventLimits(),
): {
  mode: HttpMode;
  events: CloudEvent[];
} {
  const contentType = header(req.headers, 'content-type');
  const type = mediaType(contentType);
  if (type === STRUCTURED) {
    const parsed = parseJsonText(req.body.toString('utf8'), '', limits.jsonDepth);
    return { mode: 'structured', events: [validateEvent(parsed, '', limits)] };
  }
  if (type === BATCH) {
    const parsed = parseJsonText(req.body.toString('utf8'), '', limits.jsonDepth);
    if (!Array.isArray(parsed)) {
      throw new HeraldError('REQUEST_INVALID', 'a batch must be a JSON array of CloudEvents', {
        status: 400,
      });
    }
    checkBatchSize(parsed.length, 'the batch', limits.batchSize);
    return { mode: 'batch', events: parsed.map((e, i) => validateEvent(e, `[${i}]`, limits)) };
  }
  if (header(req.headers, 'ce-specversion') !== undefined) {
    return { mode: 'binary', events: [parseBinary(req.headers, contentType, req.body, limits)] };
  }
  throw new HeraldError(
    'REQUEST_INVALID',
    `not a CloudEvent: use content-type ${STRUCTURED} or ${BATCH}, or binary mode with ce-* headers (got content-type ${type || 'none'})`,
    { status: 415 },
  );
}

function parseBinary(
  headers: Headers,
  contentType: string | undefined,
  body: Buffer,
  limits: Readonly<EventLimits>,
): CloudEvent {
  const attrs: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.startsWith('ce-') || raw === undefined) continue;
    const attr = name.slice(3).toLowerCase();
    if (attr === 'data' || attr === 'data_base64' || attr === 'datacontenttype') {
      throw new EventValidationError(attr, `"${attr}" cannot be sent as a ce- header`);
    }
    attrs[attr] = decodeHeaderValue(Array.isArray(raw) ? raw.join(',') : raw);
  }
  if (contentType) attrs.datacontenttype = contentType;
  const type = mediaType(contentType);
  if (body.length > 0) {
    // The body is the data: one level shallower than in a structured event, where data sits inside.
    if (isJsonMediaType(type))
      attrs.data = parseJsonText(body.toString('utf8'), 'data', limits.jsonDepth - 1);
    else if (contentType && isTextMediaType(type)) attrs.data = body.toString('utf8');
    // Without a content type nothing can be inferred: keep the bytes.
    else attrs.data_base64 = body.toString('base64');
  } else if (contentType && isTextMediaType(type)) attrs.data = '';
  return validateEvent(attrs, '', limits);
}

/** The event as a structured-mode HTTP message. */
export function toStructuredHttp(event: CloudEvent): { headers: Record<string, string>; body: string } {
  return { headers: { 'content-type': `${STRUCTURED}; charset=utf-8` }, body: eventJsonForSend(event) };
}

/** The event as a binary-mode HTTP message: attributes in ce-* headers, data as the body. */
export function toBinaryHttp(event: CloudEvent): { headers: Record<string, string>; body: string | Buffer } {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event)) {
    if (value === undefined || name === 'data' || name === 'data_base64' || name === 'datacontenttype')
      continue;
    headers[`ce-${name}`] = encodeHeaderValue(String(value));
  }
  let body: string | Buffer = '';
  if (event.datacontenttype) headers['content-type'] = event.datacontenttype;
  if (event.data_base64 !== undefined) body = Buffer.from(event.data_base64, 'base64');
  else if (event.data !== undefined) {
    const type = mediaType(event.datacontenttype);
    // Without datacontenttype the data is implicitly JSON, and the header says so explicitly.
    if (typeof event.data === 'string' && event.datacontenttype && !isJsonMediaType(type)) body = event.data;
    else {
      body = JSON.stringify(event.data);
      headers['content-type'] ??= 'application/json';
    }
  }
  return { headers, body };
}
