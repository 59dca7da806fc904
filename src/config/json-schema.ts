import { z } from 'zod';
import type { Registries } from './load.js';
import { channelCommonSchema, rootSchema } from './schema.js';

type JsonSchema = Record<string, unknown>;

function toJson(schema: z.ZodType): JsonSchema {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });
  return withoutStringRules(json) as JsonSchema;
}

/**
 * Any string in the file may be a `${VAR}` that only becomes a URL or a name once interpolated,
 * so the editor schema keeps string types but not their patterns and formats (`herald validate`
 * checks those after interpolation).
 */
function withoutStringRules(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutStringRules);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if ((k === 'pattern' || k === 'format') && typeof v === 'string') continue;
    out[k] = k === 'properties' ? mapValues(v) : withoutStringRules(v);
  }
  return out;
}

function mapValues(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutStringRules(x)]));
}

function withoutMeta(schema: JsonSchema): JsonSchema {
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}

/** The JSON Schema of herald.yaml, with every plugin kind's block spelled out (for editors). */
export function configJsonSchema(registries: Registries): JsonSchema {
  const root = toJson(rootSchema);
  const props = root.properties as Record<string, JsonSchema>;
  const pluginBlock = (
    kinds: readonly { kind: string; description: string; configSchema: z.ZodType }[],
    forChannels: boolean,
  ) => ({
    type: 'object',
    additionalProperties: {
      oneOf: kinds.map((k) => {
        const s = withoutMeta(toJson(k.configSchema));
        const properties = {
          kind: { const: k.kind, description: k.description },
          ...((s.properties as object) ?? {}),
        } as JsonSchema;
        if (forChannels) {
          Object.assign(properties, withoutMeta(toJson(channelCommonSchema)).properties);
          properties.fallback = {
            type: 'object',
            description: 'Used instead of this block when one of its ${VARS} is not set.',
            required: ['kind'],
          };
        }
        return { ...s, properties, required: ['kind', ...((s.required as string[]) ?? [])] };
      }),
    },
  });
  props.sources = { ...pluginBlock(registries.sources, false), description: props.sources?.description };
  props.channels = { ...pluginBlock(registries.channels, true), description: props.channels?.description };
  const triggers = props.triggers as { additionalProperties?: { properties?: Record<string, JsonSchema> } };
  const trigger = triggers.additionalProperties;
  if (trigger?.properties) {
    const base = trigger.properties.actions as { items?: JsonSchema } | undefined;
    const baseProps = (base?.items?.properties ?? {}) as JsonSchema;
    trigger.properties.actions = {
      ...base,
      items: {
        anyOf: registries.channels.map((k) => {
          const s = withoutMeta(toJson(k.actionSchema));
          return {
            ...s,
            title: `${k.kind} action`,
            properties: { ...baseProps, ...((s.properties as object) ?? {}) },
            required: ['channel', ...((s.required as string[]) ?? [])],
            additionalProperties: s.additionalProperties ?? true,
          };
        }),
      },
    };
    const filter = trigger.properties.filter ?? {};
    trigger.properties.filter = {
      ...filter,
      type: ['object', 'array'],
      description:
        `${(filter as { description?: string }).description ?? ''} Dialects: ${registries.dialects.map((d) => d.name).join(', ')}.`.trim(),
    };
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'herald.yaml',
    ...withoutMeta(root),
  };
}
