// Talks to Herald's admin API. The admin token lives in sessionStorage (gone with the tab) and
// travels only in the Authorization header, never in a URL where logs and history would keep it.

const TOKEN_KEY = 'herald.adminToken';

export class Unauthorized extends Error {
  constructor() {
    super('Herald needs the admin token');
  }
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

type Listener = () => void;
const authListeners = new Set<Listener>();

export const auth = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string | null): void {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  /** Called when Herald answers 401: the app shows the login form. */
  onRefused(listener: Listener): () => void {
    authListeners.add(listener);
    return () => authListeners.delete(listener);
  },
};

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const token = auth.token;
  return token ? { ...extra, authorization: `Bearer ${token}` } : extra;
}

function refused(): never {
  for (const l of authListeners) l();
  throw new Unauthorized();
}

async function failure(res: Response): Promise<never> {
  if (res.status === 401) refused();
  let message = `${res.status} ${res.statusText}`;
  let code: string | undefined;
  try {
    const body = (await res.json()) as { error?: string; code?: string };
    if (body.error) message = body.error;
    code = body.code;
  } catch {
    // Not JSON: the status line says enough.
  }
  throw new ApiError(res.status, message, code);
}

export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: headers(), signal });
  if (!res.ok) await failure(res);
  return (await res.json()) as T;
}

/** Always a JSON body (`{}` when there is nothing to say): Herald refuses other admin POSTs. */
export async function post<T>(path: string, body: unknown = {}): Promise<T> {
  const res = await fetch(path, {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json' }),
    body: JSON.stringify(body),
  });
  if (!res.ok) await failure(res);
  return (await res.json()) as T;
}

export interface StreamMessage {
  event: string;
  data: unknown;
}

/**
 * Reads a Server-Sent Events stream with fetch, so the token goes in a header (EventSource cannot
 * send one). Resolves when the stream ends; rejects on HTTP errors or when aborted.
 */
export async function readStream(
  path: string,
  onMessage: (message: StreamMessage) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok) await failure(res);
  if (!res.body) throw new ApiError(res.status, 'the stream has no body');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end = buffer.indexOf('\n\n');
    while (end !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf('\n\n');
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue; // heartbeat comment
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0) onMessage({ event, data: JSON.parse(data.join('\n')) });
    }
  }
}

/* ------------------------------------------------------------------ shapes */

// The server's answers, from the one module both sides compile against (erased from the bundle).
export type {
  ActionExplanation,
  Attempt,
  CesqlStep,
  CloudEvent,
  ConfigView,
  DeadLetterFilterReplay,
  DeadLetterPage,
  DeadLetterReplay,
  Delivery,
  DeliveryDetail,
  DeliveryStatus,
  EventDetail,
  EventExplanation,
  EventPage,
  FilterClause,
  Health,
  InboxMessage,
  InboxMessagePage,
  LiveDelivery,
  LiveEvent,
  LiveReady,
  RoutingRecord,
  SourceDeadLetter,
  SourceDeadLetterPage,
  SourceDeadLetterReplay,
  Status,
  StoredEvent,
  TriggerExplanation,
} from '../../src/server/api-types.js';
