import { EventValidationError } from '../errors.js';
import { checkValueDepth, type EventLimits, eventLimits } from './limits.js';
import { type CloudEvent, CONTEXT_ATTRIBUTES } from './types.js';

const EXTENSION_NAME = /^[a-z0-9]+$/;
// RFC 3339 date-time (the JSON format's `time` must be one).
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
// RFC 2046 media type: type "/" subtype, optional parameters.
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$/;
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const KNOWN = new Set<string>([...CONTEXT_ATTRIBUTES, 'data', 'data_base64']);

/** Attribute values are bounded in UTF-8 bytes; a string of n UTF-16 units has at most 3n. */
function checkLength(name: string, value: string, limits: Readonly<EventLimits>): void {
  if (value.length * 3 <= limits.attributeLength) return;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > limits.attributeLength) {
    throw new EventValidationError(
      name,
      `attribute "${name}" is ${bytes} bytes long; at most ${limits.attributeLength} are accepted`,
      { code: 'ATTRIBUTE_TOO_LONG', limit: limits.attributeLength },
    );
  }
}

function requireString(input: Record<string, unknown>, name: string, limits: Readonly<EventLimits>): string {
  const value = input[name];
  if (value === undefined || value === null)
    throw new EventValidationError(name, `required attribute "${name}" is missing`);
  if (typeof value !== 'string')
    throw new EventValidationError(name, `attribute "${name}" must be a string, got ${typeOf(value)}`);
  if (value === '') throw new EventValidationError(name, `attribute "${name}" must not be empty`);
  checkLength(name, value, limits);
  return value;
}

function optionalString(
  input: Record<string, unknown>,
  name: string,
  limits: Readonly<EventLimits>,
): string | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string')
    throw new EventValidationError(name, `attribute "${name}" must be a string, got ${typeOf(value)}`);
  if (value === '') throw new EventValidationError(name, `attribute "${name}" must not be empty`);
  checkLength(name, value, limits);
  return value;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/**
 * Validates an event in the JSON format (CloudEvents 1.0) and returns a normalised copy.
 * Throws EventValidationError naming the offending attribute, also when the event passes one of
 * the `limits` (attribute length, extension count, nesting of `data`).
 */
export function validateEvent(
  input: unknown,
  prefix = '',
  limits: Readonly<EventLimits> = eventLimits(),
): CloudEvent {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new EventValidationError(
      prefix || '(event)',
      `a CloudEvent must be a JSON object, got ${typeOf(input)}`,
    );
  }
  try {
    return validateObject(input as Record<string, unknown>, limits);
  } catch (err) {
    if (prefix && err instanceof EventValidationError) throw err.within(prefix);
    throw err;
  }
}

function validateObject(input: Record<string, unknown>, limits: Readonly<EventLimits>): CloudEvent {
  const specversion = requireString(input, 'specversion', limits);
  if (specversion !== '1.0') {
    throw new EventValidationError(
      'specversion',
      `unsupported specversion "${specversion}" (Herald speaks CloudEvents 1.0)`,
    );
  }
  const event: CloudEvent = {
    specversion: '1.0',
    id: requireString(input, 'id', limits),
    source: requireString(input, 'source', limits),
    type: requireString(input, 'type', limits),
  };
  if (/\s/.test(event.source) && !event.source.includes('://')) {
    // A URI-reference has no raw spaces.
    throw new EventValidationError('source', 'attribute "source" must be a URI-reference (no spaces)');
  }
  const subject = optionalString(input, 'subject', limits);
  if (subject !== undefined) event.subject = subject;
  const time = optionalString(input, 'time', limits);
  if (time !== undefined) {
    if (!RFC3339.test(time) || Number.isNaN(Date.parse(time))) {
      throw new EventValidationError('time', `attribute "time" must be an RFC 3339 timestamp, got "${time}"`);
    }
    event.time = time;
  }
  const datacontenttype = optionalString(input, 'datacontenttype', limits);
  if (datacontenttype !== undefined) {
    if (!MEDIA_TYPE.test(datacontenttype)) {
      throw new EventValidationError(
        'datacontenttype',
        `attribute "datacontenttype" must be a media type, got "${datacontenttype}"`,
      );
    }
    event.datacontenttype = datacontenttype;
  }
  const dataschema = optionalString(input, 'dataschema', limits);
  if (dataschema !== undefined) {
    if (!ABSOLUTE_URI.test(dataschema)) {
      throw new EventValidationError(
        'dataschema',
        `attribute "dataschema" must be an absolute URI, got "${dataschema}"`,
      );
    }
    event.dataschema = dataschema;
  }
  const hasData = input.data !== undefined;
  if (input.data_base64 !== undefined && input.data_base64 !== null) {
    if (hasData)
      throw new EventValidationError('data_base64', '"data" and "data_base64" must not both be present');
    if (typeof input.data_base64 !== 'string' || !BASE64.test(input.data_base64)) {
      throw new EventValidationError('data_base64', '"data_base64" must be a base64 string');
    }
    event.data_base64 = input.data_base64;
  } else if (hasData) {
    // The event is the outermost level of its JSON document; data starts one level in.
    checkValueDepth(input.data, limits.jsonDepth - 1, 'data');
    event.data = input.data;
  }
  let extensions = 0;
  for (const name in input) {
    if (KNOWN.has(name)) continue;
    const value = input[name];
    if (++extensions > limits.extensions) {
      throw new EventValidationError(
        name,
        `the event has more than ${limits.extensions} extension attributes ("${name}" is one too many)`,
        { code: 'TOO_MANY_EXTENSIONS', limit: limits.extensions },
      );
    }
    if (!EXTENSION_NAME.test(name)) {
      throw new EventValidationError(
        name,
        `extension name "${name}" must use only lower-case letters a-z and digits 0-9`,
      );
    }
    if (value === undefined || value === null) continue;
    if (typeof value === 'string') {
      checkLength(name, value, limits);
      event[name] = value;
    } else if (typeof value === 'boolean') event[name] = value;
    else if (typeof value === 'number') {
      if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) {
        throw new EventValidationError(name, `extension "${name}" must be a 32-bit integer, got ${value}`);
      }
      event[name] = value;
    } else {
      throw new EventValidationError(
        name,
        `extension "${name}" must be a string, integer or boolean, got ${typeOf(value)}`,
      );
    }
  }
  return event;
}
