/**
 * Coded errors shared by every area. Each carries a stable `code` so callers branch on codes,
 * never on messages, and keeps the `cause` it wraps.
 */
export type HeraldErrorCode =
  | 'CONFIG_INVALID'
  | 'EVENT_INVALID'
  | 'REQUEST_INVALID'
  | 'STORE_UNAVAILABLE'
  | 'SHUTTING_DOWN'
  | 'TEMPLATE_ERROR'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'CHANNEL_ERROR'
  | 'SOURCE_ERROR'
  | 'INTERNAL';

export class HeraldError extends Error {
  readonly code: HeraldErrorCode;
  /** HTTP status the server answers with when this error reaches a request. */
  readonly status: number;
  readonly details?: unknown;

  constructor(
    code: HeraldErrorCode,
    message: string,
    options: { cause?: unknown; status?: number; details?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HeraldError';
    this.code = code;
    this.status = options.status ?? defaultStatus(code);
    this.details = options.details;
  }
}

function defaultStatus(code: HeraldErrorCode): number {
  switch (code) {
    case 'EVENT_INVALID':
    case 'REQUEST_INVALID':
    case 'CONFIG_INVALID':
      return 400;
    case 'UNAUTHORIZED':
      return 401;
    case 'NOT_FOUND':
      return 404;
    case 'STORE_UNAVAILABLE':
    case 'SHUTTING_DOWN':
      return 503;
    default:
      return 500;
  }
}

/** An invalid CloudEvent; `attribute` names the offending context attribute or extension. */
export class EventValidationError extends HeraldError {
  readonly attribute: string;
  constructor(attribute: string, message: string) {
    super('EVENT_INVALID', message, { details: { attribute } });
    this.name = 'EventValidationError';
    this.attribute = attribute;
  }
}

/** Turns anything thrown into a HeraldError without losing what was thrown. */
export function toHeraldError(err: unknown, code: HeraldErrorCode = 'INTERNAL'): HeraldError {
  if (err instanceof HeraldError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HeraldError(code, message, { cause: err });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `promise`, or a rejection saying that `what` did not answer within `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}
