import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SinkRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  receivedAt: number;
}

export interface SinkResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  delayMs?: number;
  /**
   * Sends the status and headers, then one byte of body every `trickleMs`, never finishing: a
   * receiver that is never idle long enough for an idle timeout, yet never done.
   */
  trickleMs?: number;
}

/**
 * A real HTTP server that records every request and answers from a script of responses
 * (then 200). Used as the far end of webhook deliveries.
 */
export interface HttpSink {
  url: string;
  requests: SinkRequest[];
  /** Answers the next requests with these responses, in order. */
  respondWith(...responses: SinkResponse[]): void;
  /** Answers every request with this from now on (until changed). */
  setDefault(response: SinkResponse): void;
  waitFor(count: number, timeoutMs?: number): Promise<SinkRequest[]>;
  /** Requests being answered right now, and the most there ever were at once. */
  readonly concurrent: number;
  readonly maxConcurrent: number;
  /** Goes away (connections refused) until `start()`; the port stays the same. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startHttpSink(): Promise<HttpSink> {
  const requests: SinkRequest[] = [];
  const script: SinkResponse[] = [];
  let fallback: SinkResponse = { status: 200, body: '{"ok":true}' };
  const waiters: { count: number; resolve: () => void }[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const server: Server = createServer((req, res) => {
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    res.on('close', () => {
      concurrent--;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        receivedAt: Date.now(),
      });
      for (const w of [...waiters]) {
        if (requests.length >= w.count) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
      const response = script.shift() ?? fallback;
      const send = () => {
        res.writeHead(response.status, { 'content-type': 'application/json', ...response.headers });
        if (response.trickleMs) {
          res.write(' ');
          const trickle = setInterval(() => res.write(' '), response.trickleMs);
          res.on('close', () => clearInterval(trickle));
          return;
        }
        res.end(response.body ?? '');
      };
      if (response.delayMs) {
        // A client gone before the answer leaves no timer behind to keep the test process alive.
        const timer = setTimeout(send, response.delayMs);
        res.on('close', () => clearTimeout(timer));
      } else send();
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    get concurrent() {
      return concurrent;
    },
    get maxConcurrent() {
      return maxConcurrent;
    },
    stop,
    start: () => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve)),
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    respondWith: (...responses) => script.push(...responses),
    setDefault: (response) => {
      fallback = response;
    },
    waitFor(count, timeoutMs = 10_000) {
      if (requests.length >= count) return Promise.resolve(requests);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`sink got ${requests.length} of ${count} requests within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve(requests);
          },
        });
      });
    },
    close: () => (server.listening ? stop() : Promise.resolve()),
  };
}
