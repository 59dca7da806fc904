import { type IncomingHttpHeaders, request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * One HTTP request with the path sent exactly as given (no URL normalisation, no encoding) and any
 * Host header: what fetch will not do, and what an attacker does.
 */
export function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname.replace(/^\[|\]$/g, ''),
        port,
        method,
        path,
        headers: {
          ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
          ...headers,
        },
        agent: false,
      },
      (res) => {
        // A stream that was let through never ends on its own: what it started with is enough.
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          res.once('data', (first: Buffer) => {
            resolve({ status: res.statusCode!, headers: res.headers, body: first.toString() });
            res.destroy();
          });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export interface TrickleResult {
  /** The first line of what the server answered ('' when it closed without a word). */
  statusLine: string;
  /** From the first byte sent to the connection closing. */
  elapsedMs: number;
}

/**
 * Sends `head` (a request line and headers, or part of them) and then one byte of `drip` every
 * `intervalMs`, like a client on a dying link, until the server closes the connection or
 * `giveUpMs` passes (then the socket is destroyed and `closed` resolves with elapsedMs ≥ giveUpMs).
 */
export function trickle(
  baseUrl: string,
  head: string,
  options: { drip?: string; intervalMs: number; giveUpMs: number },
): { socket: Socket; closed: Promise<TrickleResult> } {
  const { hostname, port } = new URL(baseUrl);
  const socket = connect(Number(port), hostname.replace(/^\[|\]$/g, ''));
  const started = Date.now();
  let answer = '';
  let sent = 0;
  const drip = options.drip ?? 'x';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    answer += chunk;
  });
  socket.on('error', () => {
    // A reset is one way of being cut off; `close` follows.
  });
  socket.write(head);
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write(drip[sent++ % drip.length]!);
  }, options.intervalMs);
  const giveUp = setTimeout(() => socket.destroy(), options.giveUpMs);
  const closed = new Promise<TrickleResult>((resolve) => {
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ statusLine: answer.split('\r\n')[0] ?? '', elapsedMs: Date.now() - started });
    });
  });
  return { socket, closed };
}
