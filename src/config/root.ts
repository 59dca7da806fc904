import { z } from 'zod';
import type { ConfigIssues } from './issues.js';
import { parsePart } from './part.js';
import {
  actionBaseSchema,
  nameSchema,
  pluginBlockSchema,
  type RawConfig,
  recipientSchema,
  rootSchema,
  triggerSchema,
} from './schema.js';

/** Sections made of named entries: each entry is judged on its own. */
const NAMED_SECTIONS = {
  sources: pluginBlockSchema,
  channels: pluginBlockSchema,
  triggers: triggerSchema,
} as const;

/**
 * A trigger's actions, read as far as they can be when the trigger has issues (already reported):
 * a bad `to` or `followUp` is left out and an action without a channel is null, so each of the
 * others is still checked against its channel, at its own index.
 */
const triggerActionsOnly = z.object({
  actions: z.array(
    actionBaseSchema
      .extend({
        to: recipientSchema.optional().catch(undefined),
        followUp: actionBaseSchema.shape.followUp.catch(undefined),
      })
      .nullable()
      .catch(null),
  ),
});

/**
 * The top level of a herald.yaml, section by section and named entry by named entry, so one
 * mistake does not hide the others: a section with issues is reported and stands at its default
 * for the later stages (which then judge what they can), and the config is invalid all the same.
 */
export function parseRootSections(
  raw: unknown,
  issues: ConfigIssues,
  onLimits: (limits: RawConfig['limits']) => void,
): RawConfig {
  const document = (raw ?? {}) as Record<string, unknown>;
  const shape = rootSchema.shape;
  const sections = Object.keys(shape);
  for (const key of Object.keys(document)) if (!(key in shape)) issues.addUnknownKey([], key, sections);

  const out: Record<string, unknown> = {};
  // Limits first: templates are compiled while the rest of the config is parsed.
  const order = ['limits', ...sections.filter((s) => s !== 'limits')] as (keyof typeof shape)[];
  for (const key of order) {
    const value = document[key];
    if (key in NAMED_SECTIONS && isPlainObject(value)) {
      out[key] = parseNamedEntries(key as keyof typeof NAMED_SECTIONS, value, issues);
      continue;
    }
    const sectionSchema = shape[key] as z.ZodType;
    const parsed = parsePart(sectionSchema, value, [key], issues);
    out[key] = parsed.ok ? parsed.data : sectionSchema.safeParse(undefined).data;
    if (key === 'limits') onLimits(out[key] as RawConfig['limits']);
  }
  return out as RawConfig;
}

function parseNamedEntries(
  section: keyof typeof NAMED_SECTIONS,
  entries: Record<string, unknown>,
  issues: ConfigIssues,
): Record<string, unknown> {
  const entrySchema = z.record(nameSchema, NAMED_SECTIONS[section] as z.ZodType);
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(entries)) {
    const parsed = parsePart(entrySchema, { [name]: value }, [section], issues);
    if (parsed.ok) {
      Object.assign(out, parsed.data);
      continue;
    }
    // A trigger with issues of its own still has its actions checked against their channels.
    if (section === 'triggers' && isPlainObject(value) && value.enabled !== false) {
      const actions = triggerActionsOnly.safeParse(value);
      if (actions.success)
        out[name] = {
          enabled: true,
          delivery: triggerSchema.shape.delivery.parse(undefined),
          actions: actions.data.actions,
        };
    }
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
