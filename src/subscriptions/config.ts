import { z } from 'zod';
import type { Matcher } from '../filters/types.js';
import { type Template, templateSchema } from '../templates/index.js';

const booleanPreference = z.strictObject({
  type: z.literal('boolean').describe('On/off.'),
  default: z.boolean().default(false).describe('Value until the person changes it.'),
  label: z
    .string()
    .optional()
    .describe('Button text in Slack, e.g. "Merged PRs" (shown as "Merged PRs: On").'),
  on: z
    .boolean()
    .default(true)
    .describe(
      'Which value the button shows as "On". For a `hide_…` preference set false, so "On" means shown.',
    ),
  description: z.string().optional().describe('What the preference means, for people and operators.'),
});

const enumPreference = z.strictObject({
  type: z.literal('enum').describe('One of a list of values.'),
  values: z.array(z.string().min(1)).min(2).describe('The allowed values.'),
  default: z.string().describe('Value until the person changes it (one of `values`).'),
  label: z.string().optional().describe('Button text in Slack; the button cycles through `values`.'),
  description: z.string().optional().describe('What the preference means, for people and operators.'),
});

export const preferenceSchema = z
  .discriminatedUnion('type', [booleanPreference, enumPreference])
  .describe('A per-person preference: `boolean` or `enum`, with its default.');
export type PreferenceSpec = z.infer<typeof preferenceSchema>;

export const feedSchema = z
  .strictObject({
    key: templateSchema().describe(
      'Subscription key the event is recorded under, e.g. "email:{{ event.data.author_email }}".',
    ),
    filter: z
      .unknown()
      .optional()
      .describe('Which events go into the feed (a trigger filter). Absent = every event.'),
    maxItems: z
      .number()
      .int()
      .positive()
      .default(200)
      .describe('Items kept per key; older ones are dropped.'),
    maxAgeDays: z.number().positive().default(30).describe('Items older than this are dropped.'),
  })
  .describe('A recent-history feed per key, read by the Slack App Home.');

export const subscriptionsSchema = z
  .strictObject({
    preferences: z
      .record(z.string().regex(/^[a-z][a-z0-9_]*$/, 'preference names use a-z, 0-9 and _'), preferenceSchema)
      .default({})
      .describe('Preferences every subscriber has; `where` conditions of `to: { subscribersOf }` read them.'),
    feeds: z.record(z.string(), feedSchema).default({}).describe('Feeds by name.'),
  })
  .describe('Subscribers, their preferences, and feeds.');
export type SubscriptionsConfig = z.infer<typeof subscriptionsSchema>;

/** A feed as compiled by `src/config`: its key template and filter, ready to run. */
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
