#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { startHerald } from '../app.js';
import type { EventInput } from '../client/index.js';
import { errorMessage } from '../errors.js';
import { newEventId } from '../events/ids.js';
import { registerCesqlCommand } from './cesql.js';
import { cliClient, parseRoles, runCall } from './client.js';
import { registerExplainCommand } from './explain.js';

// The app, the config loader and every plugin are imported by the commands that use them, so
// `--version`, `--help` and the client commands answer without loading them.
const loadApp = () => import('../app.js');
const loadConfigModules = async () => {
  const [{ loadConfigFromFile }, { configJsonSchema }, { ConfigError }, { registries }] = await Promise.all([
    import('../config/code.js'),
    import('../config/json-schema.js'),
    import('../config/load.js'),
    import('../plugins.js'),
  ]);
  return { loadConfigFromFile, configJsonSchema, ConfigError, registries };
};

const program = new Command();
program
  .name('herald')
  .description('Herald: an event router. CloudEvents in; Slack, email, webhooks, jobs and views out.')
  .version(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version)
  .showHelpAfterError('(run with --help for usage)');

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
};

program
  .command('start')
  .description(
    'Run Herald: HTTP server, sources, router and dispatcher, on the embedded store unless configured otherwise.',
  )
  .option(
    '-c, --config <file>',
    'config file: YAML, or herald.config.ts/.js (default: ./herald.yaml or ./herald.config.ts if present, else the bundled notify-router demo)',
  )
  .option('-p, --port <n>', 'HTTP port (default: server.port in the config, 8080)', port)
  .option('--host <addr>', 'interface to listen on (default: server.host in the config, 127.0.0.1)')
  .option('-d, --data <dir>', 'data directory for the embedded store', '.herald')
  .option(
    '--insecure-admin',
    'listen on a non-loopback address without an admin token (server.allowUnauthenticatedAdmin)',
  )
  .addOption(
    new Option('--role <roles>', 'stages this process runs: comma-separated ingest,router,dispatcher')
      .default(parseRoles('ingest,router,dispatcher'), 'ingest,router,dispatcher')
      .argParser(parseRoles),
  )
  .addHelpText(
    'after',
    '\nEnvironment: HERALD_ADMIN_TOKEN protects the admin API, the dashboard’s data and /metrics;\n' +
      'HERALD_INGEST_TOKEN protects POST /events, http source routes and /debezium;\n' +
      'HERALD_LOG_LEVEL (info) sets logging; HERALD_LOG_FORMAT=json|pretty its form (default: pretty on\n' +
      'a terminal, JSON lines otherwise); channels read their secrets through ${VARS} in the config\n' +
      '(e.g. SLACK_BOT_TOKEN, SMTP_URL); HERALD_HEAP_GROWING_PERCENT (50), MALLOC_ARENA_MAX (2) and\n' +
      'NODE_OPTIONS=--max-semi-space-size=N (8) bound memory. Server keys (timeouts, allowedHosts,\n' +
      'publicMetrics): see docs/configuration.md; what to set before exposing Herald: docs/security.md.',
  )
  .action(
    async (opts: {
      config?: string;
      port?: number;
      host?: string;
      data: string;
      insecureAdmin?: boolean;
      role: ReturnType<typeof parseRoles>;
    }) => {
      let running: Awaited<ReturnType<typeof startHerald>>;
      try {
        const { startHerald } = await loadApp();
        running = await startHerald({
          configFile: opts.config,
          port: opts.port,
          host: opts.host,
          dataDir: opts.data,
          roles: opts.role,
          insecureAdmin: opts.insecureAdmin,
        });
      } catch (err) {
        console.error(`herald: ${errorMessage(err)}`);
        const { ConfigError } = await loadConfigModules();
        process.exit(err instanceof ConfigError ? 2 : 1);
      }
      let signals = 0;
      const onSignal = (signal: NodeJS.Signals) => {
        signals++;
        if (signals > 1) process.exit(130);
        running.logger.info({ signal }, 'stopping: no new events; finishing in-flight sends');
        running.stop().then(
          () => process.exit(0),
          (err) => {
            console.error(`herald: stop failed: ${errorMessage(err)}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    },
  );

program
  .command('validate')
  .description('Check a config file; print every problem with its path and line. Exits 2 when invalid.')
  .argument('[file]', 'config file: YAML or herald.config.ts/.js (default: ./herald.yaml, else the demo)')
  .option('-c, --config <file>', 'config file (the same as the argument)')
  .action(async (file: string | undefined, opts: { config?: string }) => {
    const [{ resolveConfigFile }, { loadConfigFromFile, registries }] = await Promise.all([
      loadApp(),
      loadConfigModules(),
    ]);
    const path = resolveConfigFile(file ?? opts.config);
    try {
      const config = await loadConfigFromFile(path, registries);
      console.log(
        `${path}: ok (${config.sources.length} source(s), ${config.channels.length} channel(s), ${config.triggers.length} trigger(s))`,
      );
    } catch (err) {
      console.error(errorMessage(err));
      process.exit(2);
    }
  });

program
  .command('schema')
  .description('Print the JSON Schema of herald.yaml (for editor completion and validation).')
  .action(async () => {
    const { configJsonSchema, registries } = await loadConfigModules();
    console.log(JSON.stringify(configJsonSchema(registries), null, 2));
  });

program
  .command('send')
  .description('Publish a CloudEvent to a running Herald (POST /events, structured mode).')
  .option('-t, --type <type>', 'event type (required unless --file)')
  .option('-s, --source <source>', 'event source', 'herald-cli')
  .option('--subject <subject>', 'event subject')
  .option('--id <id>', 'event id (default: a new time-ordered UUID, version 7)')
  .option('--data <json>', 'event data as JSON (or @file.json)')
  .option('-f, --file <file>', 'a whole CloudEvent (JSON) to send instead of the flags')
  .option('-u, --url <url>', 'Herald base URL', process.env.HERALD_URL ?? 'http://127.0.0.1:8080')
  .action(
    async (opts: {
      type?: string;
      source: string;
      subject?: string;
      id?: string;
      data?: string;
      file?: string;
      url: string;
    }) => {
      let event: Record<string, unknown>;
      try {
        if (opts.file) event = JSON.parse(readFileSync(opts.file, 'utf8'));
        else {
          if (!opts.type) throw new Error('--type is required (or give --file)');
          event = {
            specversion: '1.0',
            id: opts.id ?? newEventId(),
            source: opts.source,
            type: opts.type,
            time: new Date().toISOString(),
          };
          if (opts.subject) event.subject = opts.subject;
          if (opts.data !== undefined) {
            const text = opts.data.startsWith('@') ? readFileSync(opts.data.slice(1), 'utf8') : opts.data;
            event.data = JSON.parse(text);
            event.datacontenttype = 'application/json';
          }
        }
      } catch (err) {
        console.error(`herald send: ${errorMessage(err)}`);
        process.exit(2);
      }
      const answer = await runCall(() => cliClient(opts.url).send(event as EventInput));
      console.log(JSON.stringify(answer));
    },
  );

const dlq = program
  .command('dlq')
  .description('Inspect and replay the dead-letter queue of a running Herald.');
dlq
  .command('list')
  .description('List dead letters, newest first.')
  .option('-u, --url <url>', 'Herald base URL', process.env.HERALD_URL ?? 'http://127.0.0.1:8080')
  .option('-n, --limit <n>', 'how many', '50')
  .option('--channel <name>', 'only this channel')
  .option('--trigger <name>', 'only this trigger')
  .action(async (opts: { url: string; limit: string; channel?: string; trigger?: string }) => {
    const page = await runCall(() =>
      cliClient(opts.url).dlq.list({
        limit: Number(opts.limit),
        channel: opts.channel,
        trigger: opts.trigger,
      }),
    );
    const rows = page.deadLetters;
    if (rows.length === 0) console.log('the dead-letter queue is empty');
    for (const r of rows) {
      console.log(
        `${r.id}\t${new Date(r.updatedAt).toISOString()}\t${r.trigger} → ${r.channel}\tevent ${r.eventId}\t${r.lastError}`,
      );
    }
  });
dlq
  .command('replay')
  .description(
    'Replay dead letters: one by id, or all matching the filter options. Each is planned again from the current config (recipient rendered again) unless --as-recorded.',
  )
  .argument('[id]', 'delivery id to replay')
  .option('--as-recorded', 'retry the recipient each delivery was planned for, instead of planning it again')
  .option('-u, --url <url>', 'Herald base URL', process.env.HERALD_URL ?? 'http://127.0.0.1:8080')
  .option('--all', 'replay every dead letter matching the filters below')
  .option('--channel <name>', 'only this channel')
  .option('--trigger <name>', 'only this trigger')
  .option('--type <type>', 'only events of this type')
  .option('--reason <text>', 'only reasons containing this text')
  .action(
    async (
      id: string | undefined,
      opts: {
        url: string;
        all?: boolean;
        channel?: string;
        trigger?: string;
        type?: string;
        reason?: string;
        asRecorded?: boolean;
      },
    ) => {
      if (!id && !opts.all) {
        console.error('herald dlq replay: give a delivery id, or --all (with optional filters)');
        process.exit(2);
      }
      const client = cliClient(opts.url);
      const asRecorded = opts.asRecorded ? { asRecorded: true } : {};
      const answer = await runCall<object>(() =>
        id
          ? client.dlq.replay(Number(id), asRecorded)
          : client.dlq.replayMatching({
              channel: opts.channel,
              trigger: opts.trigger,
              eventType: opts.type,
              reason: opts.reason,
              ...asRecorded,
            }),
      );
      console.log(JSON.stringify(answer));
    },
  );

program
  .command('doctor')
  .description(
    'Check the config, the store and every channel and source connection; print what works and how to fix what does not.',
  )
  .option('-c, --config <file>', 'config file (default: ./herald.yaml, else the demo)')
  .option('-d, --data <dir>', 'data directory of the embedded store', '.herald')
  .action(async (opts: { config?: string; data: string }) => {
    const { formatDoctor, runDoctor } = await import('./doctor.js');
    const rows = await runDoctor({ configFile: opts.config, dataDir: opts.data });
    console.log(formatDoctor(rows));
    process.exit(rows.every((r) => r.ok) ? 0 : 1);
  });

registerCesqlCommand(program);
registerExplainCommand(program);

program.parseAsync(process.argv).catch((err) => {
  console.error(`herald: ${errorMessage(err)}`);
  process.exit(1);
});
