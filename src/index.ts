/**
 * The package root (`import { defineConfig } from 'herald'`): the types of a code-first config,
 * `herald.config.ts`. Type-only imports, so importing the root at run time loads nothing but this.
 */
import type { z } from 'zod';
import type { emailActionSchema, emailConfigSchema } from './channels/email/index.js';
import type { emitActionSchema, emitConfigSchema } from './channels/emit/index.js';
import type { inboxActionSchema, inboxConfigSchema } from './channels/inbox/index.js';
import type { jobActionSchema, jobConfigSchema } from './channels/job/index.js';
import type { logActionSchema, logConfigSchema } from './channels/log/index.js';
import type { natsActionSchema, natsChannelConfigSchema } from './channels/nats/index.js';
import type { slackActionSchema, slackConfigSchema } from './channels/slack/index.js';
import type { webhookActionSchema, webhookConfigSchema } from './channels/webhook/index.js';
import type { actionBaseSchema, channelCommonSchema, rootSchema, triggerSchema } from './config/schema.js';
import type { debeziumSourceConfigSchema } from './sources/debezium/index.js';
import type { httpSourceConfigSchema } from './sources/http/index.js';
import type { natsSourceConfigSchema } from './sources/nats/config.js';
import type { postgresCdcConfigSchema } from './sources/postgres-cdc/config.js';
import type { redisSourceConfigSchema } from './sources/redis/index.js';

/** Drops an index signature (`[key: string]: unknown`), so a misspelt key is a type error. */
type KnownKeys<T> = { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };

/**
 * Each channel kind's block and action, as written (zod input types). The kinds are those of
 * src/plugins.ts; a kind added there is added here too (test/client/define-config.test.ts checks).
 */
interface ChannelKinds {
  webhook: [typeof webhookConfigSchema, typeof webhookActionSchema];
  inbox: [typeof inboxConfigSchema, typeof inboxActionSchema];
  log: [typeof logConfigSchema, typeof logActionSchema];
  email: [typeof emailConfigSchema, typeof emailActionSchema];
  emit: [typeof emitConfigSchema, typeof emitActionSchema];
  nats: [typeof natsChannelConfigSchema, typeof natsActionSchema];
  job: [typeof jobConfigSchema, typeof jobActionSchema];
  slack: [typeof slackConfigSchema, typeof slackActionSchema];
}

interface SourceKinds {
  http: typeof httpSourceConfigSchema;
  nats: typeof natsSourceConfigSchema;
  redis: typeof redisSourceConfigSchema;
  'postgres-cdc': typeof postgresCdcConfigSchema;
  debezium: typeof debeziumSourceConfigSchema;
}

/** A channel kind's own block (without the keys every channel has). */
type ChannelKindBlock = {
  [K in keyof ChannelKinds]: { kind: K } & KnownKeys<z.input<ChannelKinds[K][0]>>;
}[keyof ChannelKinds];

/** A block under `channels`; `fallback` replaces it when one of the variables it reads is unset. */
export type ChannelBlock = ChannelKindBlock &
  z.input<typeof channelCommonSchema> & {
    fallback?: ChannelKindBlock & z.input<typeof channelCommonSchema>;
  };

/** A block under `sources`. */
export type SourceBlock = {
  [K in keyof SourceKinds]: { kind: K } & KnownKeys<z.input<SourceKinds[K]>>;
}[keyof SourceKinds];

/** An action: the keys of every action, and those of its channel's kind. */
export type ActionBlock = KnownKeys<z.input<typeof actionBaseSchema>> &
  { [K in keyof ChannelKinds]: KnownKeys<z.input<ChannelKinds[K][1]>> }[keyof ChannelKinds];

/** A trigger under `triggers`. */
export type TriggerBlock = Omit<z.input<typeof triggerSchema>, 'actions'> & { actions: ActionBlock[] };

/** The whole config as written in herald.yaml, typed for code. */
export type HeraldConfigInput = Omit<z.input<typeof rootSchema>, 'sources' | 'channels' | 'triggers'> & {
  sources?: Record<string, SourceBlock>;
  channels?: Record<string, ChannelBlock>;
  triggers?: Record<string, TriggerBlock>;
};

/** What a config function is handed: the environment Herald was started with. */
export interface ConfigContext {
  env: NodeJS.ProcessEnv;
}

/** A config function: handed the environment, returns the config (or a promise of it). */
export type ConfigFunction = (context: ConfigContext) => HeraldConfigInput | Promise<HeraldConfigInput>;

/** The default export of a herald.config.ts: the config, or a function (may be async) making it. */
export type ConfigExport = HeraldConfigInput | ConfigFunction;

/**
 * Types a code-first config. Returns its argument: Herald validates it at start exactly like a
 * herald.yaml (without `${VAR}` interpolation: the code reads the environment itself).
 */
// Not generic: a misspelt key in a nested block is only an error (at the key) when the literal is
// checked against the config type itself.
export function defineConfig(config: ConfigExport): ConfigExport {
  return config;
}
