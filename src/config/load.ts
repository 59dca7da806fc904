import { readFileSync } from 'node:fs';
import type { ChannelKind, SourceKind } from '../engine/types.js';
import { HeraldError } from '../errors.js';
import { configureEventLimits } from '../events/limits.js';
import { compileFilter, type FilterDialect, matchAll } from '../filters/index.js';
import { FilterCompileError, type Matcher } from '../filters/types.js';
import { type CompiledProjection, compileProjection } from '../projections/compile.js';
import type { CompiledFeed } from '../subscriptions/config.js';
import { configureTemplateLimits } from '../templates/index.js';
import type { HeraldConfig } from './model.js';
import { type ParsedConfig, parseConfigText } from './parse.js';
import { compilePlugins } from './plugins.js';
import { limitsSchema, rootSchema } from './schema.js';
import { compileTriggers } from './triggers.js';

// Loading reads as its stages: parse.ts (YAML, `${VAR}`), issues.ts (issues located in the file),
// plugins.ts (each plugin block by its kind's schema), triggers.ts; model.ts is what comes out,
// around the engine's own model (src/engine/model.ts).
export { ConfigError, type ConfigIssue, type ConfigPath, formatIssue, formatPath } from './issues.js';
export type { HeraldConfig } from './model.js';
export { compileWhere } from './triggers.js';

export interface Registries {
  channels: readonly ChannelKind[];
  sources: readonly SourceKind[];
  dialects: readonly FilterDialect[];
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  file?: string;
}

export function loadConfigFile(
  file: string,
  registries: Registries,
  options: LoadOptions = {},
): HeraldConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HeraldError(
      'CONFIG_INVALID',
      `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      {
        cause: err,
      },
    );
  }
  return loadConfig(text, registries, { ...options, file });
}

/** Parses, interpolates, validates and compiles a herald.yaml. Throws ConfigError listing every issue. */
export function loadConfig(text: string, registries: Registries, options: LoadOptions = {}): HeraldConfig {
  return compileConfig(parseConfigText(text, options.env ?? process.env, options.file), registries, options);
}

/** Validates and compiles a parsed config: a YAML document's, or a config module's (code.ts). */
export function compileConfig(
  { raw, unset, issues }: ParsedConfig,
  registries: Registries,
  options: LoadOptions = {},
): HeraldConfig {
  // Limits first: templates are compiled while the rest of the config is parsed.
  const limits = limitsSchema.safeParse((raw as { limits?: unknown }).limits ?? {});
  if (limits.success) {
    configureTemplateLimits(limits.data.templates);
    configureEventLimits(limits.data);
  }
  const parsed = rootSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    issues.addZod([], parsed.error.issues);
    throw issues.error();
  }
  const cfg = parsed.data;

  const channels = compilePlugins('channels', cfg.channels, registries.channels, unset, issues);
  const sources = compilePlugins('sources', cfg.sources, registries.sources, unset, issues);
  for (const m of unset.unhandled())
    issues.add(
      m.path,
      `environment variable ${m.name} is not set (write \${${m.name}:-default} for a default)`,
    );

  const triggers = compileTriggers(cfg.triggers, cfg.channels, channels, registries.dialects, issues);

  const feeds: CompiledFeed[] = [];
  for (const [name, feed] of Object.entries(cfg.subscriptions.feeds)) {
    let matcher: Matcher = matchAll;
    if (feed.filter !== undefined) {
      try {
        matcher = compileFilter(feed.filter, ['subscriptions', 'feeds', name, 'filter'], registries.dialects);
      } catch (err) {
        if (err instanceof FilterCompileError) issues.add(err.path, err.message);
        else issues.add(['subscriptions', 'feeds', name, 'filter'], (err as Error).message);
      }
    }
    feeds.push({
      name,
      key: feed.key,
      matcher,
      maxItems: feed.maxItems,
      maxAgeMs: feed.maxAgeDays * 86_400_000,
    });
  }
  for (const [name, pref] of Object.entries(cfg.subscriptions.preferences)) {
    if (pref.type === 'enum' && !pref.values.includes(pref.default)) {
      issues.add(
        ['subscriptions', 'preferences', name, 'default'],
        `"${pref.default}" is not one of ${pref.values.join(', ')}`,
      );
    }
  }

  const projections: CompiledProjection[] = [];
  for (const [name, projection] of Object.entries(cfg.projections)) {
    try {
      projections.push(
        compileProjection(name, projection, (filter, path) =>
          compileFilter(filter, path, registries.dialects),
        ),
      );
    } catch (err) {
      if (err instanceof FilterCompileError) issues.add(err.path, err.message);
      else issues.add(['projections', name], (err as Error).message);
    }
  }

  issues.throwIfAny();
  return {
    projections,
    file: options.file,
    subscriptions: { preferences: cfg.subscriptions.preferences, feeds },
    slack: cfg.slack,
    server: cfg.server,
    limits: cfg.limits,
    store: cfg.store,
    bus: cfg.bus,
    dispatcher: cfg.dispatcher,
    sources,
    channels,
    triggers,
  };
}
