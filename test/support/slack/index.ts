import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * A Slack-compatible Web API server for tests: the methods Herald uses, Slack's request shapes
 * (form or JSON bodies, bearer or `token` field) and response shapes (`ok`/`error`, HTTP 200 for
 * API errors, 429 with Retry-After for rate limits). Drive it with Slack's own SDK.
 */
export interface SlackCall {
  method: string;
  args: Record<string, unknown>;
  headers: IncomingHttpHeaders;
  at: number;
}

export type Fault =
  | { status: 429; retryAfter: number }
  | { status: 500 }
  | { error: string }
  | { delayMs: number };

export interface SlackUser {
  id: string;
  name: string;
  email?: string;
}

export interface SlackServer {
  /** Give this to the SDK as `slackApiUrl`. */
  url: string;
  token: string;
  calls: SlackCall[];
  callsTo(method: string): SlackCall[];
  addUser(user: SlackUser): void;
  addChannel(name: string, id?: string): string;
  /** The next call(s) to `method` get this answer instead. */
  failNext(method: string, fault: Fault, times?: number): void;
  waitForCall(method: string, predicate?: (c: SlackCall) => boolean, timeoutMs?: number): Promise<SlackCall>;
  /** A URL like the `response_url` Slack gives with a slash command; what is POSTed there is kept. */
  createResponseUrl(): string;
  /** Bodies POSTed to response URLs, by URL. */
  responses: Map<string, unknown[]>;
  /** The app-level token (`xapp-…`) that `apps.connections.open` accepts. */
  appToken: string;
  /** Socket Mode: resolves once a client has opened a connection and received `hello`. */
  waitForSocket(timeoutMs?: number): Promise<void>;
  /**
   * Socket Mode: sends an envelope (`slash_commands`, `interactive`, `events_api`) to the
   * connected client and resolves with its acknowledgement (`{ envelope_id, payload }`).
   */
  sendEnvelope(
    type: 'slash_commands' | 'interactive' | 'events_api',
    payload: Record<string, unknown>,
    timeoutMs?: number,
  ): Promise<{ envelope_id: string; payload?: unknown }>;
  close(): Promise<void>;
}

export async function startSlackServer(
  options: { token?: string; appToken?: string } = {},
): Promise<SlackServer> {
  const token = options.token ?? 'xoxb-test-token';
  const appToken = options.appToken ?? 'xapp-1-test-app-token';
  const calls: SlackCall[] = [];
  const faults = new Map<string, Fault[]>();
  const users = new Map<string, SlackUser>();
  const channels = new Map<string, string>(); // name → id
  const messages = new Map<string, { channel: string; text?: string }>(); // ts → message
  let tsCounter = 0;
  const nextTs = () => `${Math.floor(Date.now() / 1000)}.${String(++tsCounter).padStart(6, '0')}`;

  const resolveChannel = (raw: unknown): string | null => {
    const value = String(raw ?? '');
    if (/^[CDG][A-Z0-9]+$/.test(value)) return value;
    if (/^[UW][A-Z0-9]+$/.test(value)) return users.has(value) ? `D${value.slice(1)}` : null;
    return channels.get(value.replace(/^#/, '')) ?? null;
  };

  const handlers: Record<string, (args: Record<string, unknown>) => Record<string, unknown>> = {
    'auth.test': () => ({
      ok: true,
      url: 'https://herald-test.slack.com/',
      team: 'Herald Test',
      user: 'herald',
      team_id: 'T0001',
      user_id: 'U0BOT',
      bot_id: 'B0001',
    }),
    'chat.postMessage': (args) => {
      const channel = resolveChannel(args.channel);
      if (!channel) return { ok: false, error: 'channel_not_found' };
      if (!args.text && !args.blocks) return { ok: false, error: 'no_text' };
      const ts = nextTs();
      messages.set(ts, { channel, text: args.text as string | undefined });
      return {
        ok: true,
        channel,
        ts,
        message: {
          type: 'message',
          text: args.text ?? '',
          ts,
          ...(args.thread_ts ? { thread_ts: args.thread_ts } : {}),
        },
      };
    },
    'chat.update': (args) => {
      const existing = messages.get(String(args.ts));
      if (!existing) return { ok: false, error: 'message_not_found' };
      existing.text = args.text as string | undefined;
      return { ok: true, channel: existing.channel, ts: args.ts, text: args.text ?? '' };
    },
    'conversations.open': (args) => {
      const user = String(args.users ?? '').split(',')[0]!;
      if (!users.has(user)) return { ok: false, error: 'user_not_found' };
      return { ok: true, channel: { id: `D${user.slice(1)}` } };
    },
    'users.info': (args) => {
      const user = users.get(String(args.user));
      if (!user) return { ok: false, error: 'user_not_found' };
      return {
        ok: true,
        user: { id: user.id, name: user.name, profile: { email: user.email, real_name: user.name } },
      };
    },
    'users.lookupByEmail': (args) => {
      const user = [...users.values()].find((u) => u.email === args.email);
      if (!user) return { ok: false, error: 'users_not_found' };
      return { ok: true, user: { id: user.id, name: user.name, profile: { email: user.email } } };
    },
    'views.publish': (args) => ({
      ok: true,
      view: {
        id: 'V0001',
        type: 'home',
        ...(typeof args.view === 'string' ? JSON.parse(args.view) : (args.view as object)),
      },
    }),
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if ((req.url ?? '').startsWith('/response/')) {
        const key = `${base}${(req.url ?? '').slice(1)}`;
        const list = responses.get(key);
        if (!list) {
          res.writeHead(404).end('no such response_url');
          return;
        }
        list.push(raw ? JSON.parse(raw) : null);
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0]!;
      let args: Record<string, unknown> = {};
      if ((req.headers['content-type'] ?? '').includes('application/json')) args = raw ? JSON.parse(raw) : {};
      else for (const [k, v] of new URLSearchParams(raw)) args[k] = v;
      calls.push({ method, args, headers: req.headers, at: Date.now() });
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
        res.end(JSON.stringify(body));
      };
      const fault = faults.get(method)?.shift();
      if (fault && 'delayMs' in fault) await new Promise((r) => setTimeout(r, fault.delayMs));
      else if (fault && 'status' in fault && fault.status === 429) {
        return send(429, { ok: false, error: 'ratelimited' }, { 'retry-after': String(fault.retryAfter) });
      } else if (fault && 'status' in fault)
        return send(fault.status, { ok: false, error: 'internal_error' });
      else if (fault && 'error' in fault) return send(200, { ok: false, error: fault.error });
      const given =
        String(req.headers.authorization ?? '').replace(/^Bearer /, '') || String(args.token ?? '');
      if (!given) return send(200, { ok: false, error: 'not_authed' });
      // Socket Mode's one method takes the app-level token; every other method a bot token.
      if (method === 'apps.connections.open') {
        if (!given.startsWith('xapp-')) return send(200, { ok: false, error: 'not_allowed_token_type' });
        if (given !== appToken) return send(200, { ok: false, error: 'invalid_auth' });
        const ticket = Math.random().toString(36).slice(2);
        return send(200, {
          ok: true,
          url: `${base.replace(/^http/, 'ws')}link/?ticket=${ticket}&app_id=A0001`,
        });
      }
      if (given !== token) return send(200, { ok: false, error: 'invalid_auth' });
      const handler = handlers[method];
      if (!handler) return send(200, { ok: false, error: 'unknown_method' });
      send(200, handler(args));
    });
  });
  const responses = new Map<string, unknown[]>();

  // Socket Mode: Slack's WebSocket speaks JSON envelopes. It greets with `hello`, pushes
  // `{envelope_id, type, payload, accepts_response_payload}` and expects `{envelope_id, payload?}`
  // back; it pings so the client's liveness check passes.
  const sockets = new WebSocketServer({ noServer: true });
  const connected = new Set<WebSocket>();
  const pendingAcks = new Map<string, (ack: { envelope_id: string; payload?: unknown }) => void>();
  let envelopeCounter = 0;
  server.on('upgrade', (req, socket, head) => {
    if (!(req.url ?? '').startsWith('/link/')) return socket.destroy();
    sockets.handleUpgrade(req, socket, head, (ws) => {
      connected.add(ws);
      const pinger = setInterval(() => ws.ping(), 2_000);
      ws.on('close', () => {
        clearInterval(pinger);
        connected.delete(ws);
      });
      ws.on('message', (data) => {
        let ack: { envelope_id?: string; payload?: unknown };
        try {
          ack = JSON.parse(String(data));
        } catch {
          return;
        }
        if (ack.envelope_id)
          pendingAcks.get(ack.envelope_id)?.({ envelope_id: ack.envelope_id, payload: ack.payload });
      });
      ws.send(
        JSON.stringify({
          type: 'hello',
          num_connections: connected.size,
          debug_info: { host: 'herald-test', build_number: 1, approximate_connection_time: 18060 },
          connection_info: { app_id: 'A0001' },
        }),
      );
    });
  });

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const url = `${base}api/`;
  let channelCounter = 0;
  let responseCounter = 0;
  return {
    responses,
    createResponseUrl: () => {
      const key = `${base}response/T0001/${++responseCounter}/${Math.random().toString(36).slice(2)}`;
      responses.set(key, []);
      return key;
    },
    url,
    token,
    appToken,
    calls,
    async waitForSocket(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (connected.size === 0) {
        if (Date.now() > deadline) throw new Error(`no Socket Mode connection within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    sendEnvelope(type, payload, timeoutMs = 10_000) {
      const ws = [...connected][0];
      if (!ws) return Promise.reject(new Error('no Socket Mode client is connected'));
      const envelopeId = `env-${++envelopeCounter}-${Math.random().toString(36).slice(2, 8)}`;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pendingAcks.delete(envelopeId);
          reject(new Error(`envelope ${envelopeId} (${type}) was not acknowledged within ${timeoutMs} ms`));
        }, timeoutMs);
        pendingAcks.set(envelopeId, (ack) => {
          clearTimeout(timer);
          pendingAcks.delete(envelopeId);
          resolve(ack);
        });
        ws.send(
          JSON.stringify({
            envelope_id: envelopeId,
            type,
            payload,
            accepts_response_payload: type !== 'events_api',
            ...(type === 'events_api' ? { retry_attempt: 0, retry_reason: '' } : {}),
          }),
        );
      });
    },
    callsTo: (method) => calls.filter((c) => c.method === method),
    addUser: (user) => {
      users.set(user.id, user);
    },
    addChannel: (name, id) => {
      const channelId = id ?? `C${String(++channelCounter).padStart(8, '0')}`;
      channels.set(name.replace(/^#/, ''), channelId);
      return channelId;
    },
    failNext: (method, fault, times = 1) => {
      const list = faults.get(method) ?? [];
      for (let i = 0; i < times; i++) list.push(fault);
      faults.set(method, list);
    },
    async waitForCall(method, predicate = () => true, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = calls.find((c) => c.method === method && predicate(c));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no ${method} call within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close: () =>
      new Promise((r) => {
        for (const ws of connected) ws.terminate();
        sockets.close();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
