/**
 * Coded errors shared by every area. Each carries a stable `code` so callers branch on codes,
 * never on messages, and keeps the `cause` it wraps.
 */
export type HeraldErrorCode =
  | 'CONFIG_INVALID'
  | 'EVENT_INVALID'
  /** JSON nested deeper than `limits.jsonDepth`. */
  | 'NESTING_TOO_DEEP'
  /** A context attribute or extension value longer than `limits.attributeLength`. */
  | 'ATTRIBUTE_TOO_LONG'
  /** More extension attributes than `limits.extensions`. */
  | 'TOO_MANY_EXTENSIONS'
  /** More events in one batch than `limits.batchSize`. */
  | 'BATCH_TOO_LARGE'
  /** The event is valid but the event log refuses it (it cannot be serialised, or breaks a constraint). */
  | 'EVENT_UNSTORABLE'
  | 'REQUEST_INVALID'
  | 'STORE_UNAVAILABLE'
  | 'SHUTTING_DOWN'
  | 'TEMPLATE_ERROR'
  | 'NOT_FOUND'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  /** A dead delivery cannot be replayed the way asked (e.g. re-rendered when its trigger is gone). */
  | 'REPLAY_CONFLICT'
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
    case 'NESTING_TOO_DEEP':
      return 400;
    case 'ATTRIBUTE_TOO_LONG':
    case 'TOO_MANY_EXTENSIONS':
    case 'BATCH_TOO_LARGE':
      return 413;
    case 'EVENT_UNSTORABLE':
      return 422;
    case 'UNAUTHORIZED':
      return 401;
    case 'FORBIDDEN':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'REPLAY_CONFLICT':
      return 409;
    case 'STORE_UNAVAILABLE':
    case 'SHUTTING_DOWN':
      return 503;
    default:
      return 500;
  }
}

/** Details a limit error names besides the attribute: where in the JSON, and the limit. */
export interface LimitDetails {
  /** Where in the JSON the limit was passed, e.g. `data.items[0][0]…`. */
  path?: string;
  limit?: number;
}

/**
 * An invalid CloudEvent; `attribute` names the offending context attribute or extension. Events
 * past a limit (too deep, too long, too many extensions) are invalid too, with their own code.
 */
export class EventValidationError extends HeraldError {
  readonly attribute: string;
  readonly path?: string;
  readonly limit?: number;
  constructor(attribute: string, message: string, options: { code?: HeraldErrorCode } & LimitDetails = {}) {
    super(options.code ?? 'EVENT_INVALID', message, {
      details: { attribute, path: options.path, limit: options.limit },
    });
    this.name = 'EventValidationError';
    this.attribute = attribute;
    this.path = options.path;
    this.limit = options.limit;
  }

  /** The same error for an event inside a batch: `prefix` (e.g. `[3]`) before what it names. */
  within(prefix: string): EventValidationError {
    return new EventValidationError(`${prefix}.${this.attribute}`, `${prefix}: ${this.message}`, {
      code: this.code,
      path: this.path === undefined ? undefined : `${prefix}.${this.path}`,
      limit: this.limit,
    });
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
