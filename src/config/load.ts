import { readFileSync } from 'node:fs';
import type { ChannelKind, SourceKind } from '../engine/types.js';
import { HeraldError } from '../errors.js';
import { configureEventLimits } from '../events/limits.js';
import { compileFilter, type FilterDialect, matchAll } from '../filters/index.js';
import { FilterCompileError, type Matcher } from '../filters/types.js';
import { type CompiledProjection, compileProjection } from '../projections/compile.js';
import type { CompiledFeed } from '../subscriptions/config.js';
import { configureTemplateLimits } from '../templates/index.js';
import type { ConfigPath } from './config-path.js';
import type { HeraldConfig } from './model.js';
import { type ParsedConfig, parseConfigText } from './parse.js';
import { compilePlugins } from './plugins.js';
import { parseRootSections } from './root.js';
import { suggestion } from './suggest.js';
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
  const cfg = parseRootSections(raw, issues, (limits) => {
    configureTemplateLimits(limits.templates);
    configureEventLimits(limits);
  });

  const channels = compilePlugins('channels', cfg.channels, registries.channels, unset, issues);
  const sources = compilePlugins('sources', cfg.sources, registries.sources, unset, issues);
  for (const [path, names] of unset.unhandledByPath()) issues.addUnset(path, names);

  const triggers = compileTriggers(
    cfg.triggers,
    declaredNames(raw, 'channels'),
    channels,
    registries.dialects,
    issues,
  );

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

  // The Slack app reads views by name at run time; a wrong name would only show as empty answers.
  const views = [...declaredNames(raw, 'projections')];
  const checkView = (path: ConfigPath, view: string | undefined) => {
    if (view === undefined || views.includes(view)) return;
    issues.add(
      path,
      `unknown view "${view}"${views.length ? suggestion(view, views, '"') : ' (no projections are defined)'}`,
    );
  };
  checkView(['slack', 'search', 'view'], cfg.slack?.search?.view);
  for (const [i, label] of (cfg.slack?.labels ?? []).entries())
    checkView(['slack', 'labels', i, 'view'], label.view);

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
    sources: sources.compiled,
    channels: channels.compiled,
    triggers,
  };
}

/** The entry names of a section as written, whether or not their blocks are valid. */
function declaredNames(raw: unknown, section: string): Set<string> {
  const entries = (raw as Record<string, unknown> | null)?.[section];
  return new Set(entries !== null && typeof entries === 'object' ? Object.keys(entries) : []);
}
