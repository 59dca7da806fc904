import type { ErrorBody } from '../server/api-types.js';

/** Herald answered with an error: its status, and the code and message of its JSON error body. */
export class HeraldApiError extends Error {
  readonly status: number;
  /** Herald's stable error code, e.g. `EVENT_INVALID`, `UNAUTHORIZED`, `NOT_FOUND`. */
  readonly code: string;
  /** The whole error body (with `attribute`, `path`, `limit` or `details` when Herald gave them). */
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(body.error);
    this.name = 'HeraldApiError';
    this.status = status;
    this.code = body.code;
    this.body = body;
  }
}

/** Herald could not be reached, or did not answer in time, on every attempt. */
export class HeraldUnreachableError extends Error {
  readonly attempts: number;
  constructor(url: string, attempts: number, cause: unknown) {
    super(
      `cannot reach Herald at ${url} (${attempts} attempt${attempts === 1 ? '' : 's'}): ${causeText(cause)}`,
      { cause },
    );
    this.name = 'HeraldUnreachableError';
    this.attempts = attempts;
  }
}

function causeText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const inner = (err as { cause?: unknown }).cause;
  // fetch reports every network failure as "fetch failed"; the reason is in its cause.
  if (err.message === 'fetch failed' && inner instanceof Error) return inner.message || err.message;
  return err.message;
}

/**
 * When a failed request may be sent again. `idempotent`: the request carries an id that lets
 * Herald drop a repeat (an event's `id`), or only reads, so any network failure may be retried.
 * Otherwise only failures where the request certainly was not handled are: a 503 (Herald was
 * stopping or not ready) and a connection that could not be opened.
 */
export type RetryMode = 'idempotent' | 'unhandled-only';

export interface TransportOptions {
  url: string;
  retries: number;
  timeoutMs: number;
  retryDelayMs: number;
  fetch: typeof fetch;
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  token?: string;
  retry: RetryMode;
}

/** A Retry-After longer than this is not waited for: the error goes back to the caller. */
const MAX_RETRY_AFTER_MS = 30_000;
/** Answers larger than this are refused rather than read into memory. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function buildUrl(base: string, path: string, query?: HttpRequest['query']): string {
  const url = new URL(path.replace(/^\//, ''), base.endsWith('/') ? base : `${base}/`);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== '') url.searchParams.set(key, String(value));
  }
  return url.href;
}

/** Exponential backoff with full jitter: attempt 1 waits up to base, attempt 2 up to 2×base… */
function backoff(attempt: number, baseMs: number): number {
  return Math.round(Math.random() * baseMs * 2 ** (attempt - 1));
}

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends one request, with bounded retries, and returns the parsed JSON answer (undefined for
 * 204). Every other status ≥ 400 throws a HeraldApiError.
 */
export async function call<T>(options: TransportOptions, req: HttpRequest): Promise<T> {
  const url = buildUrl(options.url, req.path, req.query);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (req.token) headers.authorization = `Bearer ${req.token}`;
  let body: string | undefined;
  if (req.body !== undefined) {
    body = JSON.stringify(req.body);
    headers['content-type'] = req.contentType ?? 'application/json';
  }
  const attempts = 1 + options.retries;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let response: Response;
    try {
      response = await options.fetch(url, {
        method: req.method,
        headers,
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err) {
      lastError = err;
      const neverSent = NEVER_SENT.has(errorCode(err) ?? '');
      if (attempt < attempts && (req.retry === 'idempotent' || neverSent)) {
        await sleep(backoff(attempt, options.retryDelayMs));
        continue;
      }
      throw new HeraldUnreachableError(options.url, attempt, err);
    }
    if (response.status === 503 && attempt < attempts) {
      const wait = retryAfterMs(response.headers.get('retry-after'));
      if (wait === undefined || wait <= MAX_RETRY_AFTER_MS) {
        await response.body?.cancel();
        await sleep(wait ?? backoff(attempt, options.retryDelayMs));
        continue;
      }
    }
    return answer<T>(response);
  }
  throw new HeraldUnreachableError(options.url, attempts, lastError);
}

/**
 * The answer's text, read up to MAX_ANSWER_BYTES: a declared length over it is refused before
 * reading, and a chunked answer without one is cut off once it passes the limit.
 */
async function boundedText(response: Response): Promise<string> {
  const tooLarge = (size: string) =>
    new HeraldApiError(response.status, {
      error: `the answer is ${size}, more than the client reads (${MAX_ANSWER_BYTES} bytes)`,
      code: 'ANSWER_TOO_LARGE',
    });
  const declared = Number(response.headers.get('content-length'));
  if (declared > MAX_ANSWER_BYTES) {
    await response.body?.cancel();
    throw tooLarge(`${declared} bytes`);
  }
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel();
      throw tooLarge(`over ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function answer<T>(response: Response): Promise<T> {
  const text = await boundedText(response);
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (response.status >= 400) {
    const body =
      parsed && typeof parsed === 'object' && typeof (parsed as ErrorBody).error === 'string'
        ? (parsed as ErrorBody)
        : { error: text.slice(0, 500) || `HTTP ${response.status}`, code: `HTTP_${response.status}` };
    throw new HeraldApiError(response.status, body);
  }
  if (parsed === undefined && text !== '') {
    throw new HeraldApiError(response.status, {
      error: `expected a JSON answer, got: ${text.slice(0, 200)}`,
      code: 'ANSWER_NOT_JSON',
    });
  }
  return parsed as T;
}
