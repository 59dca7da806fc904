import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { resolveConfigFile } from '../app.js';
import type { BusConfig } from '../bus/config.js';
import { busFromEnv, createBus, prepareBus } from '../bus/index.js';
import { loadConfigFromFile } from '../config/code.js';
import type { HeraldConfig } from '../config/load.js';
import type { ChannelContext, CheckResult } from '../engine/types.js';
import { errorMessage } from '../errors.js';
import { createLogger } from '../logger.js';
import { registries } from '../plugins.js';
import { openStore, type Store, storeFromEnv } from '../store/index.js';

export interface DoctorRow extends CheckResult {
  component: string;
}

/**
 * Checks what a `herald start` would need: the config, the store, and every channel and source
 * that can tell whether its far end answers. Nothing is sent.
 */
export async function runDoctor(
  options: { configFile?: string; dataDir?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<DoctorRow[]> {
  const env = options.env ?? process.env;
  const rows: DoctorRow[] = [];
  const file = resolveConfigFile(options.configFile);
  let config: HeraldConfig;
  try {
    config = await loadConfigFromFile(file, registries, { env });
    rows.push({ component: 'config', ok: true, detail: file });
  } catch (err) {
    rows.push({
      component: 'config',
      ok: false,
      detail: errorMessage(err),
      fix: `run: herald validate ${file}`,
    });
    return rows;
  }
  const logger = createLogger({ level: 'silent' });
  const storeConfig = storeFromEnv(config.store, env);
  try {
    const store = await openStore(storeConfig, resolve(options.dataDir ?? '.herald'), logger);
    try {
      await store.migrate();
      await store.ping();
      rows.push({ component: `store (${store.kind})`, ok: true, detail: 'open, migrated, answering' });
      rows.push(await checkBus(config, store, logger, env));
      const context: ChannelContext = { logger, kv: store.kv, inbox: store.inbox, emit: async () => {}, env };
      for (const plugin of config.channels) {
        const name = `channel ${plugin.name} (${plugin.kind.kind})`;
        await plugin.kind.prepare?.(plugin.config);
        const channel = plugin.kind.create(plugin.name, plugin.config, context);
        try {
          const result = channel.check ? await channel.check() : { ok: true, detail: 'nothing to check' };
          rows.push({
            component: name,
            ...result,
            detail: plugin.fallbackReason
              ? `${result.detail} (fallback: ${plugin.fallbackReason})`
              : result.detail,
          });
        } catch (err) {
          rows.push({ component: name, ok: false, detail: errorMessage(err) });
        } finally {
          await channel.close?.().catch(() => undefined);
        }
      }
      for (const plugin of config.sources) {
        await plugin.kind.prepare?.(plugin.config);
        const source = plugin.kind.create(plugin.name, plugin.config, {
          logger,
          ingest: async () => [],
          deadLetter: async () => {},
          kv: store.kv,
          env,
        });
        const result = source.check
          ? await source.check().catch((err) => ({ ok: false, detail: errorMessage(err) }))
          : { ok: true, detail: 'nothing to check' };
        rows.push({ component: `source ${plugin.name} (${plugin.kind.kind})`, ...result });
      }
    } finally {
      await store.close();
    }
  } catch (err) {
    rows.push({
      component: `store (${storeConfig.kind})`,
      ok: false,
      detail: errorMessage(err),
      fix:
        storeConfig.kind === 'postgres'
          ? 'check the URL, that PostgreSQL runs, and the role’s rights'
          : 'check the data directory is writable',
    });
  }
  return rows;
}

/** Connects the bus as `start` would (creating its stream and consumer if missing), then leaves. */
async function checkBus(
  config: HeraldConfig,
  store: Store,
  logger: Logger,
  env: NodeJS.ProcessEnv,
): Promise<DoctorRow> {
  let busConfig: BusConfig;
  try {
    busConfig = busFromEnv(config.bus, env);
  } catch (err) {
    return {
      component: 'bus',
      ok: false,
      detail: errorMessage(err),
      fix: 'set HERALD_BUS to nats://host:port',
    };
  }
  const component = `bus (${busConfig.kind})`;
  await prepareBus(busConfig);
  const bus = createBus(busConfig, store, logger);
  try {
    await bus.start();
    const health = bus.health();
    return { component, ok: health.ok, detail: health.detail };
  } catch (err) {
    return {
      component,
      ok: false,
      detail: errorMessage(err),
      fix: 'check that nats-server runs with JetStream (-js) at bus.url and that the account may create streams',
    };
  } finally {
    await bus.close().catch(() => undefined);
  }
}

export function formatDoctor(rows: DoctorRow[]): string {
  const widths = [Math.max(9, ...rows.map((r) => r.component.length)), 6];
  const line = (a: string, b: string, c: string) => `${a.padEnd(widths[0]!)}  ${b.padEnd(widths[1]!)}  ${c}`;
  const out = [line('component', 'status', 'detail'), line('-'.repeat(widths[0]!), '------', '------')];
  for (const r of rows) {
    out.push(line(r.component, r.ok ? 'ok' : 'FAIL', r.detail));
    if (!r.ok && r.fix) out.push(line('', '', `fix: ${r.fix}`));
  }
  return out.join('\n');
}
