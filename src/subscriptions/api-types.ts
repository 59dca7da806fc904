/**
 * The answers of the subscriber admin API (`/api/subscribers`, `/api/subscriptions`, `/api/feeds`)
 * as they travel in JSON. Types only: src/server/api-types.ts re-exports them for the dashboard
 * and the client, which compile without Node.
 */
import type { FeedItem, Subscriber } from '../engine/store.js';

export type { FeedItem, Subscriber };

/**
 * A preference every subscriber has, as configured under `subscriptions.preferences` (defaults
 * applied). The admin routes return the parsed config through this type, so the schema and this
 * shape cannot drift apart.
 */
export type PreferenceDefinition =
  | { type: 'boolean'; default: boolean; label?: string; on: boolean; description?: string }
  | { type: 'enum'; values: string[]; default: string; label?: string; description?: string };

/** A subscriber with every preference resolved (set or default) and the keys they follow. */
export interface SubscriberView extends Omit<Subscriber, 'preferences'> {
  preferences: Record<string, string | boolean>;
  keys: string[];
}

/** `GET /api/subscribers`: `next` is the `after` cursor of the following page, null at the end. */
export interface SubscriberPage {
  subscribers: SubscriberView[];
  preferences: Record<string, PreferenceDefinition>;
  next: string | null;
}

/** `POST /api/subscribers/:id/subscriptions`: `created` is false when they already followed it. */
export interface SubscriptionAdded {
  subscriber: string;
  key: string;
  created: boolean;
}

/** `GET /api/subscriptions/:key/subscribers`. */
export interface KeySubscribers {
  key: string;
  subscribers: (Omit<Subscriber, 'preferences'> & { preferences: Record<string, string | boolean> })[];
}

/** `GET /api/feeds/:key`: newest first. */
export interface Feed {
  key: string;
  items: FeedItem[];
}
