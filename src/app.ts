import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { busFromEnv, createBus, prepareBus } from './bus/index.js';
import { loadConfigFromFile } from './config/code.js';
import type { HeraldConfig } from './config/load.js';
import { Engine, type EngineHooks } from './engine/engine.js';
import type { SubscriberDirectory } from './engine/router.js';
import type { StoredEvent } from './engine/store.js';
import { HeraldError } from './errors.js';
import { createLogger, isPrettyLogger } from './logger.js';
import { combineHooks, HeraldMetrics } from './observability/metrics.js';
import { tracesEndpoint } from './observability/traces-endpoint.js';
import { registries } from './plugins.js';
import { registerViewRoutes } from './projections/api.js';
import { Projector } from './projections/projector.js';
import { isLoopbackHost } from './server/access.js';
import { dashboardExtension } from './server/dashboard.js';
import { HeraldServer, type ServerExtension } from './server/index.js';
import { LiveFeed, type LiveFeedOptions } from './server/live.js';
import type { SlackApp } from './slack-app/app.js';
import { openStore, type Store, storeFromEnv } from './store/index.js';
import { registerSubscriptionRoutes } from './subscriptions/admin.js';
import { Subscriptions } from './subscriptions/index.js';

/** The notify-router recipe: what `herald start` runs when there is no ./herald.yaml. */
export const DEMO_CONFIG = fileURLToPath(new URL('../examples/notify-router/herald.yaml', import.meta.url));

export interface StartOptions {
  /** Config file (YAML, or a herald.config.ts / .js); default ./herald.yaml or ./herald.config.ts when present, else the demo. */
  configFile?: string;
  port?: number;
  host?: string;
  /** Data directory for the embedded store (default ./.herald). */
  dataDir?: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  roles?: { ingest: boolean; router: boolean; dispatcher: boolean };
  extensions?: ServerExtension[];
  hooks?: EngineHooks;
  subscribers?: SubscriberDirectory;
  /** The dashboard's live feed (SSE heartbeat interval). */
  live?: LiveFeedOptions;
  /** Wraps the opened store (instrumentation, fault injection in tests). */
  wrapStore?: (store: Store) => Store;
  /** Listen on a non-loopback address without an admin token (`--insecure-admin`). */
  insecureAdmin?: boolean;
}

export interface RunningHerald {
  config: HeraldConfig;
  metrics: HeraldMetrics;
  engine: Engine;
  server: HeraldServer;
  subscriptions: Subscriptions;
  /** Present when the config has a `slack` block. */
  slackApp?: SlackApp;
  url: string;
  logger: Logger;
  /** Graceful stop: 503 for new requests, in-flight sends finish until the deadline. */
  stop(): Promise<void>;
}

/** Looked for in the working directory when no config file is named, in this order. */
export const DEFAULT_CONFIG_FILES = [
  'herald.yaml',
  'herald.config.ts',
  'herald.config.mts',
  'herald.config.js',
  'herald.config.mjs',
];

export function resolveConfigFile(configFile: string | undefined, cwd = process.cwd()): string {
  if (configFile) return resolve(cwd, configFile);
  const local = DEFAULT_CONFIG_FILES.map((name) => resolve(cwd, name)).find((path) => existsSync(path));
  return local ?? DEMO_CONFIG;
}

export async function startHerald(options: StartOptions = {}): Promise<RunningHerald> {
  const env = options.env ?? process.env;
  const logger = options.logger ?? createLogger();
  const file = resolveConfigFile(options.configFile);
  const config = await loadConfigFromFile(file, registries, { env });
  const adminToken = config.server.adminToken ?? (env.HERALD_ADMIN_TOKEN || undefined);
  const ingestToken = config.server.ingestToken ?? (env.HERALD_INGEST_TOKEN || undefined);
  const port = options.port ?? config.server.port;
  const host = options.host ?? config.server.host;
  if (
    !adminToken &&
    !isLoopbackHost(host) &&
    !config.server.allowUnauthenticatedAdmin &&
    !options.insecureAdmin
  ) {
    throw new HeraldError(
      'CONFIG_INVALID',
      `refusing to listen on ${host} without an admin token: anyone who can reach it could read the events and the config and replay the dead-letter queue. Set HERALD_ADMIN_TOKEN (or server.adminToken), listen on 127.0.0.1, or insist with --insecure-admin (server.allowUnauthenticatedAdmin: true). See docs/security.md.`,
    );
  }
  const opened = await openStore(
    storeFromEnv(config.store, env),
    resolve(options.dataDir ?? '.herald'),
    logger,
  );
  const store = options.wrapStore ? options.wrapStore(opened) : opened;
  const server = new HeraldServer({
    logger,
    bodyLimit: config.server.bodyLimit,
    adminToken,
    ingestToken,
    allowedHosts: config.server.allowedHosts,
    publicMetrics: config.server.publicMetrics,
    requestTimeoutMs: config.server.requestTimeoutMs,
    headersTimeoutMs: config.server.headersTimeoutMs,
  });
  const metrics = new HeraldMetrics({
    projections: config.projections.map((p) => p.name),
    onSampleError: (what, error) => logger.warn({ what, err: error }, 'a metrics sample failed'),
  });
  const live = new LiveFeed(options.live);
  // The OpenTelemetry SDK and Slack's Bolt are loaded only when used: together they are a third
  // of an idle process's memory.
  const tracing = tracesEndpoint(env)
    ? (await import('./observability/tracing.js')).createTracing(env)
    : null;
  const subscriptions = new Subscriptions(
    store.subscriptions,
    config.subscriptions,
    new Map(config.channels.map((c) => [c.name, c.kind.kind])),
    logger,
  );
  const slackApp = config.slack
    ? (await import('./slack-app/app.js')).createSlackApp(config.slack, subscriptions, logger, env, {
        list: (view, query) => store.projections.list(view, query),
        get: (view, key) => store.projections.get(view, key),
      })
    : undefined;
  const hooks = combineHooks(
    metrics.hooks,
    live.hooks,
    ...(tracing ? [tracing.hooks] : []),
    ...(options.hooks ? [options.hooks] : []),
    ...(config.subscriptions.feeds.length > 0
      ? [{ onRouted: (e: StoredEvent) => subscriptions.recordRouted(e) }]
      : []),
  );
  for (const plugin of config.channels) await plugin.kind.prepare?.(plugin.config);
  for (const plugin of config.sources) await plugin.kind.prepare?.(plugin.config);
  const busConfig = busFromEnv(config.bus, env);
  await prepareBus(busConfig);
  const engine = new Engine({
    config,
    store,
    logger,
    env,
    hooks,
    subscribers: options.subscribers ?? subscriptions,
    http: server.routes,
    roles: options.roles,
    bus: createBus(busConfig, store, logger, () => metrics.busDeadLetters.inc()),
    projector:
      config.projections.length > 0
        ? (ingest) =>
            new Projector(store, config.projections, ingest, logger.child({ stage: 'projector' }), hooks)
        : undefined,
  });
  await engine.start();
  await server.attach(engine, [
    metrics.extension,
    live.extension,
    (app) => registerSubscriptionRoutes(app, subscriptions),
    (app) => registerViewRoutes(app, config.projections, store.projections),
    ...(slackApp ? [(app: Parameters<ServerExtension>[0]) => slackApp.extension(app)] : []),
    ...(options.extensions ?? []),
    // Last: its catch-all GET answers only what no other route does.
    dashboardExtension(),
  ]);
  try {
    await slackApp?.start();
  } catch (err) {
    await engine.stop(0);
    await server.close();
    throw err;
  }
  await server.listen(port, host);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${server.port}`;

  for (const channel of config.channels) {
    if (channel.fallbackReason) {
      logger.warn(
        { channel: channel.name, kind: channel.kind.kind },
        `channel ${channel.name}: ${channel.fallbackReason}; its messages go to the ${channel.kind.kind} instead`,
      );
    }
  }
  if (!adminToken && !isLoopbackHost(host)) {
    logger.warn(
      { host },
      `the admin API has no token and Herald listens on ${host}: only requests naming localhost or server.allowedHosts as Host are answered, and nothing else protects it`,
    );
  }
  const roles = options.roles ?? { ingest: true, router: true, dispatcher: true };
  const start: StartSummary = {
    url,
    dashboard: `${url}/`,
    config: displayPath(file),
    store: store.kind,
    dataDir: store.kind === 'sqlite' ? displayPath(resolve(options.dataDir ?? '.herald')) : undefined,
    bus: engine.bus.kind,
    roles: Object.entries(roles)
      .filter(([, on]) => on)
      .map(([role]) => role),
    adminAuth: adminToken ? 'token' : isLoopbackHost(host) ? 'local-only' : 'host-check',
    ingestAuth: ingestToken ? 'token' : 'open',
  };
  if (isPrettyLogger(logger)) logger.info(startBanner(start, describeRouting(config)));
  else
    logger.info(
      { ...start, ingestToken: Boolean(ingestToken) },
      `Herald listening on ${url}; ${describeRouting(config)}`,
    );

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      const deadline = Date.now() + config.server.shutdownTimeoutMs;
      server.beginShutdown();
      await slackApp?.stop();
      await engine.stop(config.server.shutdownTimeoutMs);
      await subscriptions.settled();
      await server.close(deadline);
      await tracing
        ?.shutdown()
        .catch((err) => logger.warn({ err: (err as Error).message }, 'trace export failed'));
    })();
    return stopping;
  };
  return { config, metrics, engine, server, subscriptions, slackApp, url, logger, stop };
}

/** One line saying where events go: "sales-to-slack → slack-sales; pricing-to-email → email-pricing". */
export function describeRouting(config: HeraldConfig): string {
  if (config.triggers.length === 0) return 'no triggers configured: events are stored but go nowhere';
  const kinds = new Map(config.channels.map((c) => [c.name, c.kind.kind]));
  return `events go: ${config.triggers
    .map(
      (t) =>
        `${t.name} → ${[...new Set(t.actions.map((a) => `${a.channel} (${kinds.get(a.channel)})`))].join(', ')}`,
    )
    .join('; ')}`;
}

/** What a started Herald tells its operator first: where it listens, on what, guarded how. */
export interface StartSummary {
  url: string;
  dashboard: string;
  config: string;
  store: string;
  /** The embedded store's directory. */
  dataDir?: string;
  bus: string;
  roles: string[];
  /** `token`: the admin API needs the admin token; `local-only`/`host-check`: it answers by Host. */
  adminAuth: 'token' | 'local-only' | 'host-check';
  ingestAuth: 'token' | 'open';
}

/** The start banner for a terminal: one fact a line, the URL first. */
export function startBanner(start: StartSummary, routing: string): string {
  const admin = {
    token: 'needs the admin token (Authorization: Bearer …)',
    'local-only': 'no token: answers this machine only (set HERALD_ADMIN_TOKEN to share it)',
    'host-check': 'no token: answers requests naming localhost or server.allowedHosts',
  }[start.adminAuth];
  const ingest =
    start.ingestAuth === 'token'
      ? 'POST /events and http routes need the ingest token'
      : 'POST /events and http routes are open (set HERALD_INGEST_TOKEN to require a token)';
  const rows: [string, string][] = [
    ['dashboard', start.dashboard],
    ['config', start.config],
    ['store', `${start.store}${start.dataDir ? ` in ${start.dataDir}` : ''} · bus ${start.bus}`],
    ['roles', start.roles.join(', ')],
    ['admin API', admin],
    ['ingest', ingest],
    ['routing', routing],
  ];
  return [
    `Herald listening on ${start.url}`,
    ...rows.map(([label, value]) => `  ${label.padEnd(10)} ${value}`),
  ].join('\n');
}

/** A path relative to the working directory when it is below it: shorter to read. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}
