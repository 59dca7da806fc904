import { EventValidationError } from '../errors.js';
import { isJsonMediaType, mediaType } from './http.js';
import { checkBatchSize, checkJsonTextDepth, eventLimits } from './limits.js';
import { eventJsonForSend } from './serialize.js';
import type { CloudEvent } from './types.js';
import { validateEvent } from './validate.js';

/**
 * The CloudEvents NATS protocol binding. Structured mode: the payload is a JSON CloudEvent
 * (content-type `application/cloudevents+json`, or no content type and a payload carrying
 * `specversion`). Binary mode: attributes in `ce-*` message headers, the payload is the data and
 * the `content-type` header its `datacontenttype`. NATS headers carry UTF-8 as is, so values are
 * not percent-decoded as in HTTP.
 */
export type NatsMode = 'structured' | 'batch' | 'binary';

export interface NatsMessageParts {
  /** Header names as sent; matched case-insensitively. */
  headers: Record<string, string>;
  payload: Uint8Array;
}

const STRUCTURED = 'application/cloudevents+json';
const BATCH = 'application/cloudevents-batch+json';

export class NotACloudEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotACloudEventError';
  }
}

function lowerCased(headers: Record<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(headers)) out.set(k.toLowerCase(), v);
  return out;
}

/** `root` names the payload in a depth error: '' when it is a whole event, `data` when it is the data. */
function parseJson(payload: Uint8Array, what: string, root: string): unknown {
  const text = Buffer.from(payload).toString('utf8');
  const { jsonDepth } = eventLimits();
  checkJsonTextDepth(text, root === 'data' ? jsonDepth - 1 : jsonDepth, root);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EventValidationError('data', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function isText(type: string): boolean {
  return type.startsWith('text/') || type === 'application/xml' || type.endsWith('+xml');
}

/**
 * The CloudEvents a NATS message carries and the mode it used. Throws NotACloudEventError when
 * the message follows neither mode (a caller may then map it by config), EventValidationError
 * naming the attribute when it is a CloudEvent but an invalid one.
 */
export function parseNatsMessage(message: NatsMessageParts): { mode: NatsMode; events: CloudEvent[] } {
  const headers = lowerCased(message.headers);
  const contentType = headers.get('content-type');
  const type = mediaType(contentType);
  if (type === STRUCTURED) {
    return { mode: 'structured', events: [validateEvent(parseJson(message.payload, 'the payload', ''))] };
  }
  if (type === BATCH) {
    const parsed = parseJson(message.payload, 'the payload', '');
    if (!Array.isArray(parsed)) throw new EventValidationError('(batch)', 'a batch must be a JSON array');
    checkBatchSize(parsed.length, 'the batch');
    return { mode: 'batch', events: parsed.map((e, i) => validateEvent(e, `[${i}]`)) };
  }
  if (headers.has('ce-specversion'))
    return { mode: 'binary', events: [parseBinary(headers, message.payload)] };
  if (type === '' || isJsonMediaType(type)) {
    const text = Buffer.from(message.payload).toString('utf8');
    checkJsonTextDepth(text, eventLimits().jsonDepth);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new NotACloudEventError('the payload is not JSON and there are no ce- headers');
    }
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && 'specversion' in parsed) {
      return { mode: 'structured', events: [validateEvent(parsed)] };
    }
    throw new NotACloudEventError('the JSON payload has no "specversion" and there are no ce- headers');
  }
  throw new NotACloudEventError(`content-type ${type} without ce- headers`);
}

function parseBinary(headers: Map<string, string>, payload: Uint8Array): CloudEvent {
  const attrs: Record<string, unknown> = {};
  for (const [name, value] of headers) {
    if (!name.startsWith('ce-')) continue;
    const attr = name.slice(3);
    if (attr === 'data' || attr === 'data_base64' || attr === 'datacontenttype') {
      throw new EventValidationError(attr, `"${attr}" cannot be sent as a ce- header`);
    }
    attrs[attr] = value;
  }
  const contentType = headers.get('content-type');
  if (contentType) attrs.datacontenttype = contentType;
  const type = mediaType(contentType);
  if (payload.length > 0) {
    if (isJsonMediaType(type)) attrs.data = parseJson(payload, 'the payload (content-type JSON)', 'data');
    else if (isText(type)) attrs.data = Buffer.from(payload).toString('utf8');
    else attrs.data_base64 = Buffer.from(payload).toString('base64');
  } else if (isText(type)) attrs.data = '';
  return validateEvent(attrs);
}

/** The event as a binary-mode NATS message: attributes in ce-* headers, data as the payload. */
export function toBinaryNats(event: CloudEvent): NatsMessageParts {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event)) {
    if (value === undefined || name === 'data' || name === 'data_base64' || name === 'datacontenttype')
      continue;
    headers[`ce-${name}`] = String(value);
  }
  let payload: Uint8Array = new Uint8Array();
  if (event.datacontenttype) headers['content-type'] = event.datacontenttype;
  if (event.data_base64 !== undefined) payload = Buffer.from(event.data_base64, 'base64');
  else if (event.data !== undefined) {
    const type = mediaType(event.datacontenttype);
    if (typeof event.data === 'string' && event.datacontenttype && !isJsonMediaType(type)) {
      payload = Buffer.from(event.data, 'utf8');
    } else {
      payload = Buffer.from(JSON.stringify(event.data), 'utf8');
      headers['content-type'] ??= 'application/json';
    }
  }
  return { headers, payload };
}

/** The event as a structured-mode NATS message. */
export function toStructuredNats(event: CloudEvent): NatsMessageParts {
  return {
    headers: { 'content-type': `${STRUCTURED}; charset=utf-8` },
    payload: Buffer.from(eventJsonForSend(event), 'utf8'),
  };
}
