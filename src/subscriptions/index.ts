import type { Logger } from 'pino';
import type { SubscriberVerdict } from '../engine/explain-types.js';
import type { PreferencePredicate } from '../engine/model.js';
import type { RecipientSubscriber } from '../engine/recipient-scope.js';
import type { SubscriberDirectory } from '../engine/router.js';
import type { FeedItem, StoredEvent, Subscriber, SubscriptionStore } from '../engine/store.js';
import { HeraldError } from '../errors.js';
import type { CloudEvent } from '../events/types.js';
import type { FilterEvaluationError } from '../filters/types.js';
import type { CompiledFeed, CompiledSubscriptions } from './config.js';

export type { PreferenceSpec, SubscriptionsConfig } from './config.js';

type FeedListener = (keys: string[]) => void;

/** The address a channel of this kind reaches a subscriber at: an email channel needs an email. */
function addressFor(kind: string | undefined, subscriber: Subscriber): string | null {
  return kind === 'email' ? subscriber.email : (subscriber.slackUserId ?? subscriber.email ?? subscriber.id);
}

/**
 * People, what they subscribed to, their preferences and their feeds — over the store. It is the
 * router's subscriber directory (`to: { subscribersOf }`) and what the Slack app and admin API use.
 */
export class Subscriptions implements SubscriberDirectory {
  private readonly feedListeners = new Set<FeedListener>();
  private pendingFeed: { feed: CompiledFeed; item: FeedItem }[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    readonly store: SubscriptionStore,
    readonly config: CompiledSubscriptions,
    /** Channel name → channel kind, to pick the address a channel needs (email vs Slack user). */
    private readonly channelKinds: Map<string, string>,
    private readonly logger: Logger,
  ) {}

  /** Stored preferences over the configured defaults; unknown stored keys are dropped. */
  preferencesOf(subscriber: Pick<Subscriber, 'preferences'>): Record<string, string | boolean> {
    const out: Record<string, string | boolean> = {};
    for (const [name, spec] of Object.entries(this.config.preferences)) {
      const stored = subscriber.preferences[name];
      out[name] =
        spec.type === 'boolean'
          ? typeof stored === 'boolean'
            ? stored
            : spec.default
          : typeof stored === 'string' && spec.values.includes(stored)
            ? stored
            : spec.default;
    }
    return out;
  }

  /** Validates and stores preference changes; names what is wrong otherwise. */
  async setPreferences(subscriberId: string, patch: Record<string, unknown>): Promise<Subscriber> {
    for (const [name, value] of Object.entries(patch)) {
      const spec = this.config.preferences[name];
      if (!spec) {
        const known = Object.keys(this.config.preferences);
        throw new HeraldError(
          'REQUEST_INVALID',
          `unknown preference "${name}"${known.length ? ` (known: ${known.join(', ')})` : ' (none are configured)'}`,
          { status: 400 },
        );
      }
      if (spec.type === 'boolean' && typeof value !== 'boolean')
        throw new HeraldError('REQUEST_INVALID', `preference "${name}" must be true or false`, {
          status: 400,
        });
      if (spec.type === 'enum' && !spec.values.includes(value as string))
        throw new HeraldError(
          'REQUEST_INVALID',
          `preference "${name}" must be one of ${spec.values.join(', ')}`,
          {
            status: 400,
          },
        );
    }
    const updated = await this.store.setPreferences(subscriberId, patch);
    if (!updated) throw new HeraldError('NOT_FOUND', `no subscriber "${subscriberId}"`, { status: 404 });
    return updated;
  }

  async recipientsOf(
    key: string,
    where: PreferencePredicate | undefined,
    channel: string,
    _event: CloudEvent,
    onMuted?: (subscriber: { id: string; name: string | null }, reason: string) => void,
  ): Promise<{ address: string; subscriber: RecipientSubscriber }[]> {
    const kind = this.channelKinds.get(channel);
    const out: { address: string; subscriber: RecipientSubscriber }[] = [];
    for (const subscriber of await this.store.subscribersOf(key)) {
      const preferences = this.preferencesOf(subscriber);
      if (where && !where(preferences)) {
        onMuted?.(subscriber, mutedReason(where, preferences));
        continue;
      }
      const address = addressFor(kind, subscriber);
      if (address)
        out.push({ address, subscriber: { id: subscriber.id, name: subscriber.name, preferences } });
    }
    return out;
  }

  /** Each subscriber of the key and whether `recipientsOf` includes them; for those it does not, why. */
  async explainRecipients(
    key: string,
    where: PreferencePredicate | undefined,
    channel: string,
    _event: CloudEvent,
  ): Promise<SubscriberVerdict[]> {
    const kind = this.channelKinds.get(channel);
    const out: SubscriberVerdict[] = [];
    for (const subscriber of await this.store.subscribersOf(key)) {
      const address = addressFor(kind, subscriber);
      const verdict: SubscriberVerdict = {
        id: subscriber.id,
        name: subscriber.name,
        address,
        included: false,
      };
      const preferences = this.preferencesOf(subscriber);
      if (where && !where(preferences)) {
        verdict.reason = mutedReason(where, preferences);
        if (where.source) verdict.preference = where.source;
      } else if (!address) {
        verdict.reason = `has no ${kind === 'email' ? 'email address' : 'address'} for channel ${channel}`;
      } else verdict.included = true;
      out.push(verdict);
    }
    return out;
  }

  onFeedChanged(listener: FeedListener): () => void {
    this.feedListeners.add(listener);
    return () => this.feedListeners.delete(listener);
  }

  /** Engine hook: routed events that match a feed are appended to it (batched, in order). */
  recordRouted(stored: StoredEvent): void {
    if (this.config.feeds.length === 0) return;
    const errors: FilterEvaluationError[] = [];
    for (const feed of this.config.feeds) {
      errors.length = 0;
      if (!feed.matcher(stored.event, errors) || errors.length > 0) continue;
      let key: string;
      try {
        key = feed.key.render({ event: stored.event });
      } catch (err) {
        this.logger.warn(
          { feed: feed.name, eventId: stored.event.id, err: (err as Error).message },
          'feed key failed',
        );
        continue;
      }
      if (!key) continue;
      this.pendingFeed.push({
        feed,
        item: { key, eventSeq: stored.seq, at: Date.now(), event: stored.event },
      });
    }
    if (this.pendingFeed.length > 0) this.flushing ??= this.flushSoon();
  }

  private async flushSoon(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    try {
      while (this.pendingFeed.length > 0) {
        const pending = this.pendingFeed;
        this.pendingFeed = [];
        const byFeed = new Map<CompiledFeed, FeedItem[]>();
        for (const { feed, item } of pending) {
          const items = byFeed.get(feed);
          if (items) items.push(item);
          else byFeed.set(feed, [item]);
        }
        const keys = new Set<string>();
        for (const [feed, items] of byFeed) {
          try {
            await this.store.appendFeed(items, {
              maxItems: feed.maxItems,
              minAt: Date.now() - feed.maxAgeMs,
            });
            for (const item of items) keys.add(item.key);
          } catch (err) {
            this.logger.warn(
              { feed: feed.name, err: (err as Error).message, items: items.length },
              'could not record feed items',
            );
          }
        }
        if (keys.size === 0) continue;
        for (const listener of this.feedListeners) {
          try {
            listener([...keys]);
          } catch (err) {
            this.logger.warn({ err: (err as Error).message }, 'feed listener failed');
          }
        }
      }
    } finally {
      this.flushing = null;
    }
  }

  /** Resolves when feed items recorded so far are stored (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}

/** `muted by preference: notify_failures is false (where: notify_failures)`. */
function mutedReason(where: PreferencePredicate, preferences: Record<string, string | boolean>): string {
  const why = where.explain?.(preferences) ?? 'the condition is false';
  return `muted by preference: ${why}${where.source ? ` (where: ${where.source})` : ''}`;
}
