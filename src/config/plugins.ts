import type { z } from 'zod';
import type { CompiledPlugin, RateLimit } from '../engine/model.js';
import type { UnsetVariables } from './interpolate.js';
import type { ConfigIssues, ConfigPath } from './issues.js';
import { rateLimitSchema } from './schema.js';

/**
 * The `channels` or `sources` blocks, each parsed by the schema of its kind. A block whose
 * variables are unset is replaced by its `fallback` when it has one (the reason is kept for the
 * start-up log), and is otherwise left to be reported as unset: it cannot be judged without their
 * values. Blocks with issues are left out; the issues are added to `issues`.
 */
export function compilePlugins<K extends { kind: string; configSchema: z.ZodType }>(
  section: 'channels' | 'sources',
  blocks: Record<string, { kind: string } & Record<string, unknown>>,
  kinds: readonly K[],
  unset: UnsetVariables,
  issues: ConfigIssues,
): CompiledPlugin<K>[] {
  const byKind = new Map(kinds.map((k) => [k.kind, k]));
  const out: CompiledPlugin<K>[] = [];
  for (const [name, block] of Object.entries(blocks)) {
    let at: ConfigPath = [section, name];
    let {
      kind: kindName,
      fallback,
      ...rest
    } = block as { kind: string; fallback?: unknown } & Record<string, unknown>;
    let fallbackReason: string | undefined;
    const unsetHere = unset.under(at).filter((m) => m.path[2] !== 'fallback');
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
      fallbackReason = `${[...new Set(unsetHere.map((m) => m.name))].join(', ')} not set`;
      ({ kind: kindName, ...rest } = fallback as { kind: string });
      at = [...at, 'fallback'];
    } else if (unsetHere.length > 0) {
      // Reported as unset variables; the block cannot be judged without their values.
      continue;
    } else if (fallback !== undefined) {
      unset.handle(unset.under([...at, 'fallback']));
    }
    const kind = byKind.get(kindName);
    if (!kind) {
      issues.add(
        [...at, 'kind'],
        `unknown ${section === 'channels' ? 'channel' : 'source'} kind "${kindName}" (known: ${[...byKind.keys()].join(', ')})`,
      );
      continue;
    }
    // A key common to every channel kind: taken off before the kind's strict schema sees the block.
    let rateLimit: RateLimit | undefined;
    let rateLimitOk = true;
    if (section === 'channels' && 'rateLimit' in rest) {
      const { rateLimit: rawRateLimit, ...kindKeys } = rest;
      rest = kindKeys;
      const parsed = rateLimitSchema.safeParse(rawRateLimit, { reportInput: true });
      if (parsed.success) rateLimit = parsed.data;
      else {
        issues.addZod([...at, 'rateLimit'], parsed.error.issues);
        rateLimitOk = false;
      }
    }
    const result = kind.configSchema.safeParse(rest, { reportInput: true });
    if (!result.success) {
      issues.addZod(at, result.error.issues);
      continue;
    }
    if (!rateLimitOk) continue;
    out.push({ name, kind, config: result.data, fallbackReason, ...(rateLimit ? { rateLimit } : {}) });
  }
  return out;
}
