import { emailChannel } from './channels/email/index.js';
import { emitChannel } from './channels/emit/index.js';
import { inboxChannel } from './channels/inbox/index.js';
import { jobChannel } from './channels/job/index.js';
import { logChannel } from './channels/log/index.js';
import { natsChannel } from './channels/nats/index.js';
import { slackChannel } from './channels/slack/index.js';
import { webhookChannel } from './channels/webhook/index.js';
import type { Registries } from './config/load.js';
import type { ChannelKind, SourceKind } from './engine/types.js';
import { changedDialect } from './filters/changed.js';
import { dataDialect } from './filters/data.js';
import { builtInDialects } from './filters/index.js';
import { sqlDialect } from './filters/sql.js';
import { debeziumHttpSource } from './sources/debezium/index.js';
import { httpSource } from './sources/http/index.js';
import { natsSource } from './sources/nats/index.js';
import { postgresCdcSource } from './sources/postgres-cdc/index.js';
import { redisSource } from './sources/redis/index.js';

/**
 * Every plugin kind Herald ships, listed once. Adding a kind is adding its folder and one line
 * here; the engine never imports a plugin by name.
 */
export const channelKinds: ChannelKind[] = [
  webhookChannel,
  inboxChannel,
  logChannel,
  emailChannel,
  emitChannel,
  natsChannel,
  jobChannel,
  slackChannel,
] as ChannelKind[];

export const sourceKinds: SourceKind[] = [
  httpSource,
  natsSource,
  redisSource,
  postgresCdcSource,
  debeziumHttpSource,
] as SourceKind[];

export const registries: Registries = {
  channels: channelKinds,
  sources: sourceKinds,
  dialects: [...builtInDialects, sqlDialect, dataDialect, changedDialect],
};
