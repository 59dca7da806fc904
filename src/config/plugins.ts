import type { z } from 'zod';
import type { CompiledPlugin, RateLimit } from '../engine/model.js';
import type { UnsetVariables } from './interpolate.js';
import type { ConfigIssues, ConfigPath } from './issues.js';
import { parsePart } from './part.js';
import { rateLimitSchema } from './schema.js';
import { closestMatch } from './suggest.js';

/** Keys every channel block has beside its kind's own. */
const COMMON_CHANNEL_KEYS = ['rateLimit'];
/** Keys a block has beside its kind's own, by section (offered when a key is misspelt). */
const BLOCK_KEYS = {
  channels: ['kind', 'fallback', ...COMMON_CHANNEL_KEYS],
  sources: ['kind', 'fallback'],
};

export interface CompiledPlugins<K> {
  compiled: CompiledPlugin<K>[];
  /** The kind of every block whose kind is known, valid or not: its actions can still be checked. */
  kindOf: Map<string, K>;
}

/**
 * The `channels` or `sources` blocks, each parsed by the schema of its kind. A block whose
 * variables are unset is replaced by its `fallback` when it has one (the reason is kept for the
 * start-up log); without one it is still checked (the unset values are reported as unset, not as
 * invalid) but cannot run. Blocks with issues are left out; the issues are added to `issues`.
 */
export function compilePlugins<K extends { kind: string; configSchema: z.ZodType }>(
  section: 'channels' | 'sources',
  blocks: Record<string, { kind: string } & Record<string, unknown>>,
  kinds: readonly K[],
  unset: UnsetVariables,
  issues: ConfigIssues,
): CompiledPlugins<K> {
  const byKind = new Map(kinds.map((k) => [k.kind, k]));
  const out: CompiledPlugin<K>[] = [];
  const kindOf = new Map<string, K>();
  const kindNamed = (kindName: string, at: ConfigPath): K | undefined => {
    const kind = byKind.get(kindName);
    if (kind) return kind;
    const known = [...byKind.keys()];
    const meant = closestMatch(kindName, known);
    issues.add(
      [...at, 'kind'],
      `unknown ${section === 'channels' ? 'channel' : 'source'} kind "${kindName}" (${meant ? `did you mean "${meant}"? ` : ''}known: ${known.join(', ')})`,
    );
    return undefined;
  };

  for (const [name, block] of Object.entries(blocks)) {
    const at: ConfigPath = [section, name];
    const { kind: kindName, fallback, ...rest } = block as { kind: string; fallback?: unknown };
    const unsetHere = unset.under(at).filter((m) => m.path[2] !== 'fallback');
    const declared = kindNamed(kindName, at);
    if (declared) kindOf.set(name, declared);
    // Checked even when it cannot run (its variables unset), so its other mistakes show now.
    const own = declared ? parseBlock(section, declared, rest, at, issues) : undefined;

    if (unsetHere.length > 0 && fallback !== undefined) {
      if (
        fallback === null ||
        typeof fallback !== 'object' ||
        typeof (fallback as { kind?: unknown }).kind !== 'string'
      ) {
        issues.add([...at, 'fallback'], 'expected a channel block with a `kind`, e.g. { kind: inbox }');
        continue;
      }
      unset.handle(unsetHere);
      const fallbackAt = [...at, 'fallback'];
      const { kind: fallbackKindName, ...fallbackRest } = fallback as { kind: string };
      const kind = kindNamed(fallbackKindName, fallbackAt);
      const replaced = kind && parseBlock(section, kind, fallbackRest, fallbackAt, issues);
      if (!kind || !replaced) continue;
      const fallbackReason = `${[...new Set(unsetHere.map((m) => m.name))].join(', ')} not set`;
      out.push({ name, kind, fallbackReason, ...replaced });
      continue;
    }
    if (fallback !== undefined) unset.handle(unset.under([...at, 'fallback']));
    if (declared && own && unsetHere.length === 0) out.push({ name, kind: declared, ...own });
  }
  return { compiled: out, kindOf };
}

/** One block by its kind's schema, with the `rateLimit` every channel kind accepts taken off first. */
function parseBlock<K extends { configSchema: z.ZodType }>(
  section: 'channels' | 'sources',
  kind: K,
  block: Record<string, unknown>,
  at: ConfigPath,
  issues: ConfigIssues,
): { config: unknown; rateLimit?: RateLimit } | undefined {
  let kindKeys = block;
  let rateLimit: RateLimit | undefined;
  let rateLimitOk = true;
  if (section === 'channels' && 'rateLimit' in block) {
    const { rateLimit: rawRateLimit, ...others } = block;
    kindKeys = others;
    const parsed = parsePart(rateLimitSchema, rawRateLimit, [...at, 'rateLimit'], issues);
    if (parsed.ok) rateLimit = parsed.data;
    else rateLimitOk = false;
  }
  const result = parsePart(kind.configSchema, kindKeys, at, issues, {
    extraKeys: at.length === 2 ? BLOCK_KEYS[section] : ['kind', ...COMMON_CHANNEL_KEYS],
  });
  if (!result.ok || !rateLimitOk) return undefined;
  return { config: result.data, ...(rateLimit ? { rateLimit } : {}) };
}
