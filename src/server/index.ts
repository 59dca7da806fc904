import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Engine } from '../engine/engine.js';
import type { HttpRoute } from '../engine/types.js';
import { HeraldError } from '../errors.js';
import { isBridgedDebeziumChange } from '../events/debezium.js';
import { parseHttpEvents } from '../events/index.js';
import type { CloudEvent } from '../events/types.js';
import { parseJsonBody } from '../http-input.js';
import { type AccessPolicy, checkAccess, classifyRoute } from './access.js';
import { registerAdminRoutes } from './admin.js';
import type { BatchAccepted, EventAccepted } from './api-types.js';
import { clientErrorHandler, errorHandler } from './http-errors.js';
import { requestVerifier } from './ingest-auth.js';

export interface ServerOptions {
  logger: Logger;
  bodyLimit: number;
  adminToken?: string;
  ingestToken?: string;
  /** Host names besides loopback the admin API answers without an admin token. */
  allowedHosts?: readonly string[];
  /** Serve /metrics without the admin token. */
  publicMetrics?: boolean;
  /** Headers and body must have arrived within this time. */
  requestTimeoutMs?: number;
  /** Headers must have arrived within this time (at most requestTimeoutMs). */
  headersTimeoutMs?: number;
}

/** Extra routes mounted by other areas (metrics, Slack app, dashboard), given the engine. */
export type ServerExtension = (app: FastifyInstance, engine: Engine) => void | Promise<void>;

const MAX_TOLD_BRIDGED_SOURCES = 100;

/**
 * Herald's HTTP server. Created before the engine so HTTP sources can add routes to it, then
 * `attach`ed to the engine (events, admin API, health) and started with `listen`.
 */
export class HeraldServer {
  readonly app: FastifyInstance;
  private readonly policy: AccessPolicy;
  private boundHost: string | undefined;
  private stopping = false;
  private readonly logger: Logger;

  constructor(options: ServerOptions) {
    this.logger = options.logger;
    const requestTimeout = options.requestTimeoutMs ?? 30_000;
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    this.policy = {
      adminToken: options.adminToken,
      ingestToken: options.ingestToken,
      publicMetrics: options.publicMetrics ?? false,
      allowedHosts: options.allowedHosts ?? [],
    };
    this.app = Fastify({
      logger: false,
      bodyLimit: options.bodyLimit,
      // Node answers 408 and closes the connection of a client too slow to send its request.
      requestTimeout,
      http: {
        headersTimeout,
        // Node looks for expired requests this often; its 30 s default could double a deadline.
        connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(headersTimeout / 4))),
      },
      // Bodies stay raw so signatures (Slack, webhooks) can be checked byte-exact; routes parse them.
      return503OnClosing: true,
      clientErrorHandler,
      forceCloseConnections: 'idle',
    });
    this.app.removeAllContentTypeParsers();
    this.app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    this.app.setErrorHandler(errorHandler(options.logger));
    this.app.setNotFoundHandler((req, reply) => {
      reply.status(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, code: 'NOT_FOUND' });
    });
    this.app.addHook('onRoute', classifyRoute);
    this.app.addHook('onRequest', async (req, reply) => {
      if (this.stopping && req.routeOptions.url !== '/healthz') {
        reply.header('connection', 'close');
        throw new HeraldError('SHUTTING_DOWN', 'Herald is shutting down; try again shortly');
      }
      checkAccess(req, reply, this.policy, this.boundHost);
    });
  }

  /** For HTTP-based sources: their routes get a parsed JSON body. */
  readonly routes = {
    addRoute: (route: HttpRoute) => {
      const verify = route.auth ? requestVerifier(route.auth) : undefined;
      this.app.route({
        method: route.method,
        url: route.path,
        config: { access: 'ingest', signed: verify !== undefined },
        handler: async (req, reply) => {
          if (verify) verify(Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0), req.headers);
          const body =
            route.method === 'GET' || route.readsRawBody
              ? undefined
              : parseJsonBody(req.body, req.headers['content-type']);
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
    app.post('/events', { config: { access: 'ingest' } }, async (req, reply) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const { mode, events } = parseHttpEvents({ headers: req.headers, body });
      const results = await engine.ingest(events);
      this.explainBridgedDebezium(events);
      if (mode === 'batch') {
        const duplicates = results.filter((r) => r.duplicate).length;
        const answer: BatchAccepted = { accepted: results.length - duplicates, duplicates };
        return reply.status(202).send(answer);
      }
      const answer: EventAccepted = { id: results[0]!.id, duplicate: results[0]!.duplicate };
      return reply.status(202).send(answer);
    });
    registerAdminRoutes(app, engine);
    return extensions.reduce<Promise<void>>(async (prev, ext) => {
      await prev;
      await ext(app, engine);
    }, Promise.resolve());
  }

  /** Sources already told that their Kafka-bridged Debezium changes belong at /debezium (bounded). */
  private readonly toldBridgedSources = new Set<string>();

  /**
   * A Kafka bridge pointed at /events stores Debezium changes as opaque Kafka records, which no
   * table or operation filter matches: say once per source where they belong instead.
   */
  private explainBridgedDebezium(events: CloudEvent[]): void {
    for (const event of events) {
      if (this.toldBridgedSources.has(event.source) || !isBridgedDebeziumChange(event)) continue;
      if (this.toldBridgedSources.size >= MAX_TOLD_BRIDGED_SOURCES) return;
      this.toldBridgedSources.add(event.source);
      this.logger.warn(
        { source: event.source, type: event.type },
        `events from ${event.source} are Debezium changes forwarded from Kafka; /events stores them as sent, so filters on iodebeziumtable or iodebeziumop and projections do not see them. Send them to a debezium source's path (default /debezium) to have them normalised`,
      );
    }
  }

  async listen(port: number, host: string): Promise<string> {
    this.boundHost = host;
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

  /**
   * Stops listening and waits for open requests; whatever is still open at `deadline` (a client
   * trickling its body, say) has its connection closed rather than holding the process up.
   */
  async close(deadline = Number.POSITIVE_INFINITY): Promise<void> {
    const closing = this.app.close();
    let timer: NodeJS.Timeout | undefined;
    if (Number.isFinite(deadline)) {
      timer = setTimeout(() => this.app.server.closeAllConnections(), Math.max(0, deadline - Date.now()));
    }
    try {
      await closing;
    } finally {
      clearTimeout(timer);
    }
  }
}
