import type { Matcher } from '../filters/types.js';
import type { Template, TemplateTree } from '../templates/index.js';
import type { BackoffPolicy } from './backoff.js';
import type { ChannelKind, SourceKind } from './types.js';

// The compiled model the engine runs. The engine defines it and `src/config` produces it from
// herald.yaml, so the engine never depends on how a configuration is written or parsed.

/** A `where` over one subscriber's preferences (defaults applied). */
export type PreferencePredicate = ((preferences: Record<string, string | boolean>) => boolean) & {
  /** The condition as written in the config. */
  source?: string;
  /**
   * Why these preferences fail the condition, naming the preferences read and their values,
   * e.g. `notify_failures is false` (explain's "excluded by preference").
   */
  explain?: (preferences: Record<string, string | boolean>) => string;
};

export type RecipientSpec =
  | { kind: 'none' }
  | { kind: 'list'; templates: Template[] }
  | { kind: 'subscribers'; key: Template; where?: PreferencePredicate };

export interface CompiledAction {
  index: number;
  channel: string;
  to: RecipientSpec;
  /** The action parsed by its channel kind's schema. */
  params: unknown;
  /** Follow-up event emitted once the action is delivered. */
  followUp?: TemplateTree;
  /** How often and when this action notifies (see docs/notifications.md). */
  notify?: NotificationRules;
}

/**
 * An action's notification keys; each key template is rendered per delivery (`event`, and
 * `recipient`: the address, with `.preferences`, `.id` and `.name` of a known subscriber).
 */
export interface NotificationRules {
  dedupe?: { key: Template; windowMs: number };
  replace?: { key: Template };
  throttle?: { key: Template; limit: number; perMs: number };
  /** `update`: later digests of the key edit the first one's message (channels that can). */
  digest?: { key: Template; windowMs: number; max: number; update: boolean };
  delay?: { ms: number } | { until: Template };
  /**
   * Local times in minutes after midnight (`from > to` spans midnight) and the zone's template;
   * without one, UTC.
   */
  quietHours?: { fromMinute: number; toMinute: number; timezone?: Template };
}

export interface RetryPolicy {
  maxAttempts: number;
  backoff: BackoffPolicy;
}

export interface CompiledTrigger {
  name: string;
  description?: string;
  matcher: Matcher;
  actions: CompiledAction[];
  policy: RetryPolicy;
}

/** A token bucket over every Herald process on the store. */
export interface RateLimit {
  perSecond: number;
  burst: number;
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

/** What the engine is handed to run: its plugins, triggers and timings. */
export interface EngineModel {
  /** The file the model was loaded from, when there is one (shown by the admin API). */
  file?: string;
  server: { shutdownTimeoutMs: number };
  dispatcher: { leaseMs: number; pollIntervalMs: number };
  sources: CompiledPlugin<SourceKind>[];
  channels: CompiledPlugin<ChannelKind>[];
  triggers: CompiledTrigger[];
}
