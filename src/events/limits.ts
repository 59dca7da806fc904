import { EventValidationError, HeraldError } from '../errors.js';

/**
 * What one event, one JSON document or one batch may hold. Bounded at the door so that nothing
 * downstream (the store's serialiser, filters, templates) meets input it cannot finish with.
 */
export interface EventLimits {
  /** Deepest nesting of arrays and objects in any JSON Herald reads. */
  jsonDepth: number;
  /** Longest value of a context attribute or extension, in UTF-8 bytes (`data` excluded). */
  attributeLength: number;
  /** Most extension attributes one event may carry. */
  extensions: number;
  /** Most events in one batch (an HTTP or NATS batch, a Debezium array). */
  batchSize: number;
}

export const DEFAULT_EVENT_LIMITS: Readonly<EventLimits> = Object.freeze({
  jsonDepth: 64,
  attributeLength: 4096,
  extensions: 64,
  batchSize: 1000,
});

let configured: Readonly<EventLimits> = DEFAULT_EVENT_LIMITS;

/**
 * Sets the limits of this process, from the config's `limits` block. Every source and binding
 * reads them, so a stream source rejects what `POST /events` would.
 */
export function configureEventLimits(limits: EventLimits): void {
  configured = Object.freeze({ ...limits });
}

export function eventLimits(): Readonly<EventLimits> {
  return configured;
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
/** Path segments shown before the rest is elided: enough to find the place, never a megabyte. */
const SHOWN_SEGMENTS = 8;
const SHOWN_KEY_LENGTH = 40;

function keySegment(key: string): string {
  const shown = key.length > SHOWN_KEY_LENGTH ? `${key.slice(0, SHOWN_KEY_LENGTH)}…` : key;
  return IDENTIFIER.test(shown) ? `.${shown}` : `[${JSON.stringify(shown)}]`;
}

function joinPath(root: string, segments: string[], elided: boolean): string {
  let out = root;
  for (const s of segments) out += out === '' && s.startsWith('.') ? s.slice(1) : s;
  return elided ? `${out}…` : out;
}

function tooDeep(root: string, segments: string[], elided: boolean, maxDepth: number): EventValidationError {
  const path = joinPath(root, segments, elided);
  // The attribute is where the path starts: `data`, `[3].data`, or the body itself.
  const attribute = /^(?:\[\d+\]\.)?[A-Za-z0-9_$]+/.exec(path)?.[0] ?? '(body)';
  return new EventValidationError(attribute, `JSON nested deeper than ${maxDepth} levels at ${path}`, {
    code: 'NESTING_TOO_DEEP',
    path,
    limit: maxDepth,
  });
}

/**
 * Checks the nesting depth of JSON text before it is parsed, in one pass without recursion: a
 * document of 20,000 nested arrays parses, but the store's serialiser overflows on it. `root`
 * names the document in the error (`data`, `body`; empty for a whole event).
 */
export function checkJsonTextDepth(text: string, maxDepth: number, root = ''): void {
  // Per open container: is it an array, its element index, and where its current key is in `text`.
  const isArray: boolean[] = [];
  const index: number[] = [];
  const keyStart: number[] = [];
  const keyEnd: number[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c /* \ */) i++;
        else if (s === 0x22) break;
      }
      if (expectKey && depth > 0) {
        keyStart[depth - 1] = start;
        keyEnd[depth - 1] = i + 1;
        expectKey = false;
      }
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (depth >= maxDepth) {
        const segments: string[] = [];
        for (let d = 0; d < depth && segments.length < SHOWN_SEGMENTS; d++) {
          segments.push(isArray[d] ? `[${index[d]}]` : keySegment(decodeKey(text, keyStart[d]!, keyEnd[d]!)));
        }
        throw tooDeep(root, segments, depth > SHOWN_SEGMENTS, maxDepth);
      }
      isArray[depth] = c === 0x5b;
      index[depth] = 0;
      depth++;
      expectKey = c === 0x7b;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      if (depth > 0) depth--;
      expectKey = false;
    } else if (c === 0x2c /* , */ && depth > 0) {
      if (isArray[depth - 1]) index[depth - 1]!++;
      else expectKey = true;
    }
  }
}

function decodeKey(text: string, start: number, end: number): string {
  const raw = text.slice(start, Math.min(end, start + SHOWN_KEY_LENGTH * 6 + 2));
  try {
    return JSON.parse(raw.endsWith('"') && raw.length > 1 ? raw : `${raw}"`) as string;
  } catch {
    return raw.slice(1, -1);
  }
}

/**
 * Checks the nesting depth of a value already parsed (a mapped payload, a row from a database),
 * iteratively: `root` names it in the error.
 */
export function checkValueDepth(value: unknown, maxDepth: number, root: string): void {
  if (value === null || typeof value !== 'object') return;
  // Depth-first with an explicit stack of open containers and how far each has been read.
  const containers: object[] = [value];
  const keys: (string[] | null)[] = [Array.isArray(value) ? null : Object.keys(value)];
  const cursor: number[] = [0];
  while (containers.length > 0) {
    const top = containers.length - 1;
    const container = containers[top]!;
    const ownKeys = keys[top]!;
    const at = cursor[top]!;
    const size = ownKeys ? ownKeys.length : (container as unknown[]).length;
    if (at >= size) {
      containers.pop();
      keys.pop();
      cursor.pop();
      continue;
    }
    cursor[top] = at + 1;
    const child = ownKeys
      ? (container as Record<string, unknown>)[ownKeys[at]!]
      : (container as unknown[])[at];
    if (child === null || typeof child !== 'object') continue;
    if (containers.length >= maxDepth) {
      const segments: string[] = [];
      for (let d = 0; d < containers.length && segments.length < SHOWN_SEGMENTS; d++) {
        const k = keys[d];
        segments.push(k ? keySegment(k[cursor[d]! - 1]!) : `[${cursor[d]! - 1}]`);
      }
      throw tooDeep(root, segments, containers.length > SHOWN_SEGMENTS, maxDepth);
    }
    containers.push(child);
    keys.push(Array.isArray(child) ? null : Object.keys(child));
    cursor.push(0);
  }
}

/** Parses JSON text after checking its depth; a syntax error is a 400 naming the problem. */
export function parseJsonText(text: string, root = '', maxDepth = configured.jsonDepth): unknown {
  checkJsonTextDepth(text, maxDepth, root);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HeraldError('REQUEST_INVALID', `body is not valid JSON: ${(err as Error).message}`, {
      status: 400,
    });
  }
}

/** A batch of more than `limits.batchSize` events is refused whole, before any is read. */
export function checkBatchSize(count: number, what = 'a batch', limit = configured.batchSize): void {
  if (count > limit) {
    throw new EventValidationError(
      '(batch)',
      `${what} holds ${count} events; at most ${limit} are accepted at once`,
      { code: 'BATCH_TOO_LARGE', limit },
    );
  }
}
