import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { HttpRoute } from '../engine/types.js';
import { HeraldError } from '../errors.js';
import { parseHttpEvents } from '../events/index.js';
import { registerAdminRoutes } from './admin.js';
import { errorHandler, parseJsonBody } from './http-errors.js';

export interface ServerOptions {
  logger: Logger;
  bodyLimit: number;
  adminToken?: string;
}

/** Extra routes mounted by other areas (metrics, Slack app, dashboard), given the engine. */
export type ServerExtension = (app: FastifyInstance, engine: Engine) => void | Promise<void>;

/**
 * Herald's HTTP server. Created before the engine so HTTP sources can add routes to it, then
 * `attach`ed to the engine (events, admin API, health) and started with `listen`.
 */
export class HeraldServer {
  readonly app: FastifyInstance;
  private stopping = false;

  constructor(private readonly options: ServerOptions) {
    this.app = Fastify({
      logger: false,
      bodyLimit: options.bodyLimit,
      // Bodies stay raw so signatures (Slack, webhooks) can be checked byte-exact; routes parse them.
      return503OnClosing: true,
      forceCloseConnections: 'idle',
    });
    this.app.removeAllContentTypeParsers();
    this.app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    this.app.setErrorHandler(errorHandler(options.logger));
    this.app.setNotFoundHandler((req, reply) => {
      reply.status(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, code: 'NOT_FOUND' });
    });
    this.app.addHook('onRequest', async (req, reply) => {
      if (this.stopping && req.url !== '/healthz') {
        reply.header('connection', 'close');
        throw new HeraldError('SHUTTING_DOWN', 'Herald is shutting down; try again shortly');
      }
      if (this.options.adminToken && req.url.startsWith('/api/')) {
        if (!bearerMatches(req.headers.authorization, this.options.adminToken)) {
          reply.header('www-authenticate', 'Bearer');
          throw new HeraldError('UNAUTHORIZED', 'this endpoint needs Authorization: Bearer <admin token>');
        }
      }
    });
  }

  /** For HTTP-based sources: their routes get a parsed JSON body. */
  readonly routes = {
    addRoute: (route: HttpRoute) => {
      this.app.route({
        method: route.method,
        url: route.path,
        handler: async (req, reply) => {
          const body =
            route.method === 'GET' ? undefined : parseJsonBody(req.body, req.headers['content-type']);
          const result = await route.handler({
            body,
            rawBody: Buffer.isBuffer(req.body) ? req.body : undefined,
            headers: req.headers,
            query: req.query as Record<string, unknown>,
          });
          if (result.headers) reply.headers(result.headers);
          return reply.status(result.status).send(result.body);
        },
      });
    },
  };

  attach(engine: Engine, extensions: ServerExtension[] = []): Promise<void> {
    const app = this.app;
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (_req, reply) => {
      const store = await engine.storeHealth();
      if (!store.ok) return reply.status(503).send({ status: 'unavailable', store: store.detail });
      if (engine.status !== 'running') return reply.status(503).send({ status: engine.status });
      const bus = engine.bus.health();
      if (!bus.ok) return reply.status(503).send({ status: 'unavailable', bus: bus.detail });
      return { status: 'ready', bus: bus.state };
    });
    app.post('/events', async (req, reply) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const { mode, events } = parseHttpEvents({ headers: req.headers, body });
      const results = await engine.ingest(events);
      if (mode === 'batch') {
        const duplicates = results.filter((r) => r.duplicate).length;
        return reply.status(202).send({ accepted: results.length - duplicates, duplicates });
      }
      return reply.status(202).send({ id: results[0]!.id, duplicate: results[0]!.duplicate });
    });
    registerAdminRoutes(app, engine);
    return extensions.reduce<Promise<void>>(async (prev, ext) => {
      await prev;
      await ext(app, engine);
    }, Promise.resolve());
  }

  async listen(port: number, host: string): Promise<string> {
    return this.app.listen({ port, host });
  }

  get port(): number {
    const address = this.app.server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  /** New requests get 503 from now on; in-flight requests finish. */
  beginShutdown(): void {
    this.stopping = true;
  }

  async close(): Promise<void> {
    await this.app.close();
  }
}

function bearerMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length).trim());
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
