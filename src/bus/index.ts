import type { Logger } from 'pino';
import type { Bus } from '../engine/bus.js';
import type { Store } from '../engine/store.js';
import { HeraldError } from '../errors.js';
import { type BusConfig, busSchema } from './config.js';
import { EmbeddedBus } from './embedded.js';

export type { Bus, BusHealth, RouteHandler } from '../engine/bus.js';

/**
 * `HERALD_BUS=nats://host:4222` selects the JetStream bus (other settings from the config's
 * `bus` block when it is a jetstream one, else the defaults); `HERALD_BUS=embedded` the embedded one.
 */
export function busFromEnv(config: BusConfig, env: NodeJS.ProcessEnv): BusConfig {
  const url = env.HERALD_BUS;
  if (!url) return config;
  if (url === 'embedded') return { kind: 'embedded' };
  if (/^(nats|tls):\/\//.test(url)) {
    if (config.kind === 'jetstream') return { ...config, url };
    return busSchema.parse({ kind: 'jetstream', url });
  }
  throw new HeraldError('CONFIG_INVALID', 'HERALD_BUS must be a nats:// URL or "embedded"');
}

// The JetStream bus and its NATS client are loaded by prepareBus, only for a config that uses
// them: an embedded Herald does not pay for the client's modules at start.
let jetstreamModule: typeof import('./jetstream/index.js') | undefined;

/** Loads what `createBus` needs for this config and is not loaded up front. Await it first. */
export async function prepareBus(config: BusConfig): Promise<void> {
  if (config.kind === 'jetstream') jetstreamModule ??= await import('./jetstream/index.js');
}

/** `onDeadLetter`: a message no router can handle was set aside (the jetstream bus). */
export function createBus(config: BusConfig, store: Store, logger: Logger, onDeadLetter?: () => void): Bus {
  if (config.kind === 'embedded') return new EmbeddedBus(store, logger);
  if (config.kind === 'jetstream') {
    if (!jetstreamModule) throw new Error('createBus: await prepareBus(config) first (the jetstream bus)');
    return new jetstreamModule.JetStreamBus({
      config,
      store,
      logger: logger.child({ bus: 'jetstream' }),
      onDeadLetter,
    });
  }
  throw new HeraldError('CONFIG_INVALID', `unknown bus kind "${(config as { kind: string }).kind}"`);
}
