import type { BusConfig } from '../bus/config.js';
import type { EngineModel } from '../engine/model.js';
import type { CompiledProjection } from '../projections/compile.js';
import type { SlackAppConfig } from '../slack-app/config.js';
import type { StoreConfig } from '../store/config.js';
import type { CompiledSubscriptions } from '../subscriptions/config.js';
import type { LimitsConfig, RawConfig } from './schema.js';

// The compiled config: what loading a herald.yaml gives Herald to run. The part the engine runs
// is the engine's own model (src/engine/model.ts); the rest belongs to the folders that use it.

export interface HeraldConfig extends EngineModel {
  file?: string;
  server: RawConfig['server'];
  limits: LimitsConfig;
  store: StoreConfig;
  bus: BusConfig;
  dispatcher: RawConfig['dispatcher'];
  projections: CompiledProjection[];
  subscriptions: CompiledSubscriptions;
  slack?: SlackAppConfig;
}
