import type { ChannelKind, SourceKind } from '../engine/types.js';
import type { Matcher } from '../filters/types.js';
import type { CompiledProjection } from '../projections/compile.js';
import type { SlackAppConfig } from '../slack-app/config.js';
import type { PreferenceSpec } from '../subscriptions/config.js';
import type { Template, TemplateTree } from '../templates/index.js';
import type { BackoffConfig, BusConfig, LimitsConfig, RateLimit, RawConfig, StoreConfig } from './schema.js';

// The compiled config: what loading a herald.yaml gives the engine and the rest of Herald to run.
// Types only, kept in one file of their own so they can move as one.

export type RecipientSpec =
  | { kind: 'none' }
  | { kind: 'list'; templates: Template[] }
  | { kind: 'subscribers'; key: Template; where?: PreferencePredicate };

/** A `where` over one subscriber's preferences (defaults applied). */
export type PreferencePredicate = (preferences: Record<string, string | boolean>) => boolean;

export interface CompiledFeed {
  name: string;
  key: Template;
  matcher: Matcher;
  maxItems: number;
  maxAgeMs: number;
}

export interface CompiledSubscriptions {
  preferences: Record<string, PreferenceSpec>;
  feeds: CompiledFeed[];
}

export interface CompiledAction {
  index: number;
  channel: string;
  to: RecipientSpec;
  /** The action parsed by its channel kind's schema. */
  params: unknown;
  /** Follow-up event emitted once the action is delivered. */
  followUp?: TemplateTree;
}

export interface RetryPolicy {
  maxAttempts: number;
  backoff: Required<Exclude<BackoffConfig, string>>;
}

export interface CompiledTrigger {
  name: string;
  description?: string;
  matcher: Matcher;
  actions: CompiledAction[];
  policy: RetryPolicy;
}

export interface CompiledPlugin<K> {
  name: string;
  kind: K;
  config: unknown;
  /** Set when the configured block was replaced by its `fallback` (why, for the start-up log). */
  fallbackReason?: string;
  /** A channel's `rateLimit` (any kind), kept apart from the kind's own config. */
  rateLimit?: RateLimit;
}

export interface HeraldConfig {
  file?: string;
  server: RawConfig['server'];
  limits: LimitsConfig;
  store: StoreConfig;
  bus: BusConfig;
  dispatcher: RawConfig['dispatcher'];
  sources: CompiledPlugin<SourceKind>[];
  channels: CompiledPlugin<ChannelKind>[];
  triggers: CompiledTrigger[];
  projections: CompiledProjection[];
  subscriptions: CompiledSubscriptions;
  slack?: SlackAppConfig;
}
