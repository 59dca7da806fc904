import { readFileSync } from 'node:fs';
import { isMap, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { DEFAULT_BACKOFF } from '../engine/backoff.js';
import type { ChannelKind, SourceKind } from '../engine/types.js';
import { HeraldError } from '../errors.js';
import { configureEventLimits } from '../events/limits.js';
import type { CloudEvent } from '../events/types.js';
import { CesqlParseError, compilePredicate } from '../filters/cesql/index.js';
import { compileFilter, type FilterDialect, matchAll } from '../filters/index.js';
import { FilterCompileError, type Matcher } from '../filters/types.js';
import { type CompiledProjection, compileProjection } from '../projections/compile.js';
import type { SlackAppConfig } from '../slack/config.js';
import type { PreferenceSpec } from '../subscriptions/config.js';
import {
  compileTree,
  configureTemplateLimits,
  type Template,
  type TemplateTree,
} from '../templates/index.js';
import { interpolate } from './interpolate.js';
import {
  type BackoffConfig,
  type BusConfig,
  type LimitsConfig,
  limitsSchema,
  type RateLimit,
  type RawConfig,
  rateLimitSchema,
  rootSchema,
  type StoreConfig,
} from './schema.js';

export type ConfigPath = (string | number)[];

export interface ConfigIssue {
  path: ConfigPath;
  message: string;
  line?: number;
  column?: number;
}

export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? part : `.${part}`;
  }
  return out || '(root)';
}

export function formatIssue(issue: ConfigIssue, file?: string): string {
  const where = issue.line
    ? `${file ? `${file}:` : 'line '}${issue.line}:${issue.column ?? 1}`
    : (file ?? '');
  return `${formatPath(issue.path)}: ${issue.message}${where ? ` (${where})` : ''}`;
}

export class ConfigError extends HeraldError {
  readonly issues: ConfigIssue[];
  readonly file?: string;
  constructor(issues: ConfigIssue[], file?: string) {
    super(
      'CONFIG_INVALID',
      `invalid config${file ? ` ${file}` : ''}:\n${issues.map((i) => `  - ${formatIssue(i, file)}`).join('\n')}`,
      { details: issues },
    );
    this.name = 'ConfigError';
    this.issues = issues;
    this.file = file;
  }
}

export interface Registries {
  channels: readonly ChannelKind[];
  sources: readonly SourceKind[];
  dialects: readonly FilterDialect[];
}

export type RecipientSpec =
  | { kind: 'none' }
  | { kind: 'list'; templates: Template[] }
  | { kind: 'subscribers'; key: Template; where?: PreferencePredicate };

/** A `where` over one subscriber's preferences (defaults applied). */
export type PreferencePredicate = (preferences: Record<string, string | boolean>) => boolean;

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

export interface CompiledAction {
  index: number;
  channel: string;
  to: RecipientSpec;
  /** The action parsed by its channel kind's schema. */
  params: unknown;
  /** Follow-up event emitted once the action is delivered. */
  followUp?: TemplateTree;
}

export interface RetryPolicy {
  maxAttempts: number;
  backoff: Required<Exclude<BackoffConfig, string>>;
}

export interface CompiledTrigger {
  name: string;
  description?: string;
  matcher: Matcher;
  actions: CompiledAction[];
  policy: RetryPolicy;
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

export interface HeraldConfig {
  file?: string;
  server: RawConfig['server'];
  limits: LimitsConfig;
  store: StoreConfig;
  bus: BusConfig;
  dispatcher: RawConfig['dispatcher'];
  sources: CompiledPlugin<SourceKind>[];
  channels: CompiledPlugin<ChannelKind>[];
  triggers: CompiledTrigger[];
  projections: CompiledProjection[];
  subscriptions: CompiledSubscriptions;
  slack?: SlackAppConfig;
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
  const env = options.env ?? process.env;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const issues: ConfigIssue[] = [];
  const locate = (path: ConfigPath): Pick<ConfigIssue, 'line' | 'column'> => {
    for (let n = path.length; n >= 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return { line: pos.line, column: pos.col };
      }
      if (n === 0) break;
    }
    return {};
  };
  const add = (path: ConfigPath, message: string) => issues.push({ path, message, ...locate(path) });
  const addZod = (prefix: ConfigPath, zodIssues: z.core.$ZodIssue[]) => {
    for (const issue of zodIssues) {
      const path = [...prefix, ...(issue.path as ConfigPath)];
      if (issue.code === 'unrecognized_keys')
        for (const key of issue.keys) add([...path, key], 'unknown key');
      else add(path, zodMessage(issue));
    }
  };

  for (const err of doc.errors) {
    const pos = err.linePos?.[0];
    issues.push({
      path: [],
      message: `YAML: ${err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`,
      line: pos?.line,
      column: pos?.col,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues, options.file);

  const missing: { path: ConfigPath; name: string }[] = [];
  const raw = interpolateTree(doc.toJS() ?? {}, [], env, missing);
  // Keys of the YAML document are needed for locating issues even when the tree is not a map.
  if (!isMap(doc.contents) && doc.contents !== null) add([], 'the config must be a YAML mapping');
  if (issues.length > 0) throw new ConfigError(issues, options.file);

  // Limits first: templates are compiled while the rest of the config is parsed.
  const limits = limitsSchema.safeParse((raw as { limits?: unknown }).limits ?? {});
  if (limits.success) {
    configureTemplateLimits(limits.data.templates);
    configureEventLimits(limits.data);
  }
  const parsed = rootSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) {
    addZod([], parsed.error.issues);
    throw new ConfigError(issues, options.file);
  }
  const cfg = parsed.data;

  const missingUnder = (prefix: ConfigPath) => missing.filter((m) => prefix.every((p, i) => m.path[i] === p));
  const handled = new Set<(typeof missing)[number]>();

  const channels = compilePlugins(
    'channels',
    cfg.channels,
    registries.channels,
    missingUnder,
    handled,
    add,
    addZod,
  );
  const sources = compilePlugins(
    'sources',
    cfg.sources,
    registries.sources,
    missingUnder,
    handled,
    add,
    addZod,
  );
  for (const m of missing) {
    if (!handled.has(m))
      add(m.path, `environment variable ${m.name} is not set (write \${${m.name}:-default} for a default)`);
  }

  const channelByName = new Map(channels.map((c) => [c.name, c]));
  const triggers: CompiledTrigger[] = [];
  for (const [name, trigger] of Object.entries(cfg.triggers)) {
    if (!trigger.enabled) continue;
    const base: ConfigPath = ['triggers', name];
    let matcher: Matcher = matchAll;
    if (trigger.filter !== undefined) {
      try {
        matcher = compileFilter(trigger.filter, [...base, 'filter'], registries.dialects);
      } catch (err) {
        if (err instanceof FilterCompileError) add(err.path, err.message);
        else add([...base, 'filter'], (err as Error).message);
      }
    }
    const actions: CompiledAction[] = [];
    trigger.actions.forEach((action, index) => {
      const at: ConfigPath = [...base, 'actions', index];
      const { channel: channelName, to, followUp: followUpBlock, ...rest } = action;
      const channel = channelByName.get(channelName);
      // A declared channel with its own errors is already reported; its actions cannot be checked.
      if (!channel && channelName in cfg.channels) return;
      if (!channel) {
        const known = Object.keys(cfg.channels);
        add(
          [...at, 'channel'],
          `unknown channel "${channelName}"${known.length ? ` (defined: ${known.join(', ')})` : ' (no channels are defined)'}`,
        );
        return;
      }
      const result = channel.kind.actionSchema.safeParse(rest, { reportInput: true });
      if (!result.success) {
        addZod(at, result.error.issues);
        return;
      }
      const mismatch = channel.kind.checkAction?.(channel.config, result.data);
      if (mismatch) {
        add(at, mismatch);
        return;
      }
      let recipients: RecipientSpec;
      try {
        recipients = recipientSpec(to);
      } catch (err) {
        add([...at, 'to', 'where'], (err as Error).message);
        return;
      }
      let followUp: TemplateTree | undefined;
      if (followUpBlock !== undefined) {
        if (typeof followUpBlock.type !== 'string' || followUpBlock.type === '') {
          add([...at, 'followUp', 'type'], 'a follow-up event needs a `type`');
          return;
        }
        try {
          followUp = compileTree(followUpBlock);
        } catch (err) {
          add([...at, 'followUp'], (err as Error).message);
          return;
        }
      }
      actions.push({ index, channel: channelName, to: recipients, params: result.data, followUp });
    });
    triggers.push({
      name,
      description: trigger.description,
      matcher,
      actions,
      policy: {
        maxAttempts: trigger.delivery.maxAttempts,
        backoff: normaliseBackoff(trigger.delivery.backoff),
      },
    });
  }

  const feeds: CompiledFeed[] = [];
  for (const [name, feed] of Object.entries(cfg.subscriptions.feeds)) {
    let matcher: Matcher = matchAll;
    if (feed.filter !== undefined) {
      try {
        matcher = compileFilter(feed.filter, ['subscriptions', 'feeds', name, 'filter'], registries.dialects);
      } catch (err) {
        if (err instanceof FilterCompileError) add(err.path, err.message);
        else add(['subscriptions', 'feeds', name, 'filter'], (err as Error).message);
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
      add(
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
      if (err instanceof FilterCompileError) add(err.path, err.message);
      else add(['projections', name], (err as Error).message);
    }
  }

  if (issues.length > 0) throw new ConfigError(issues, options.file);
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

function compilePlugins<K extends { kind: string; configSchema: z.ZodType }>(
  section: 'channels' | 'sources',
  blocks: Record<string, { kind: string } & Record<string, unknown>>,
  kinds: readonly K[],
  missingUnder: (prefix: ConfigPath) => { path: ConfigPath; name: string }[],
  handled: Set<{ path: ConfigPath; name: string }>,
  add: (path: ConfigPath, message: string) => void,
  addZod: (prefix: ConfigPath, issues: z.core.$ZodIssue[]) => void,
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
    const unset = missingUnder(at).filter((m) => m.path[2] !== 'fallback');
    if (unset.length > 0 && fallback !== undefined) {
      if (
        fallback === null ||
        typeof fallback !== 'object' ||
        typeof (fallback as { kind?: unknown }).kind !== 'string'
      ) {
        add([...at, 'fallback'], 'expected a channel block with a `kind`, e.g. { kind: inbox }');
        continue;
      }
      for (const m of unset) handled.add(m);
      fallbackReason = `${[...new Set(unset.map((m) => m.name))].join(', ')} not set`;
      ({ kind: kindName, ...rest } = fallback as { kind: string });
      at = [...at, 'fallback'];
    } else if (unset.length > 0) {
      // Reported as unset variables; the block cannot be judged without their values.
      continue;
    } else if (fallback !== undefined) {
      for (const m of missingUnder([...at, 'fallback'])) handled.add(m);
    }
    const kind = byKind.get(kindName);
    if (!kind) {
      add(
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
        addZod([...at, 'rateLimit'], parsed.error.issues);
        rateLimitOk = false;
      }
    }
    const result = kind.configSchema.safeParse(rest, { reportInput: true });
    if (!result.success) {
      addZod(at, result.error.issues);
      continue;
    }
    if (!rateLimitOk) continue;
    out.push({ name, kind, config: result.data, fallbackReason, ...(rateLimit ? { rateLimit } : {}) });
  }
  return out;
}

function recipientSpec(to: unknown): RecipientSpec {
  if (to === undefined) return { kind: 'none' };
  if (Array.isArray(to)) return { kind: 'list', templates: to as Template[] };
  if (typeof (to as Template).render === 'function') return { kind: 'list', templates: [to as Template] };
  const sub = to as { subscribersOf: Template; where?: string };
  if (sub.where === undefined) return { kind: 'subscribers', key: sub.subscribersOf };
  return { kind: 'subscribers', key: sub.subscribersOf, where: compileWhere(sub.where) };
}

/**
 * `where` is either simple — `name` (true), `not name` (false), `name = value`, `name != value`,
 * which allows the `_` in preference names — or a CESQL expression over the preferences.
 */
export function compileWhere(source: string): PreferencePredicate {
  const text = source.trim();
  const simple = /^(?:(not\s+|!)\s*)?([a-z][a-z0-9_]*)$/i.exec(text);
  if (simple) {
    const [, negated, name] = simple;
    return negated ? (p) => p[name!] === false : (p) => p[name!] === true;
  }
  const comparison = /^([a-z][a-z0-9_]*)\s*(=|==|!=|<>)\s*(?:'([^']*)'|"([^"]*)"|([A-Za-z0-9_.-]+))$/i.exec(
    text,
  );
  if (comparison) {
    const [, name, op, single, double, bare] = comparison;
    const value = single ?? double ?? bare!;
    const equal = (p: Record<string, string | boolean>) => String(p[name!]) === value;
    return op === '=' || op === '==' ? equal : (p) => !equal(p);
  }
  let matches: (event: CloudEvent) => boolean;
  try {
    matches = compilePredicate(text);
  } catch (err) {
    if (err instanceof CesqlParseError)
      throw new Error(
        `CESQL: ${err.message} (for a preference with "_" in its name write \`name\`, \`not name\` or \`name = value\`)`,
      );
    throw err;
  }
  // Preferences stand in for the event's attributes: CESQL reads them by name.
  return (p) => matches(p as unknown as CloudEvent);
}

function normaliseBackoff(backoff: BackoffConfig): RetryPolicy['backoff'] {
  if (typeof backoff === 'string') return { ...DEFAULT_BACKOFF, kind: backoff };
  return { ...DEFAULT_BACKOFF, ...backoff };
}

function interpolateTree(
  value: unknown,
  path: ConfigPath,
  env: NodeJS.ProcessEnv,
  missing: { path: ConfigPath; name: string }[],
): unknown {
  if (typeof value === 'string') {
    const result = interpolate(value, env);
    for (const name of result.missing) missing.push({ path, name });
    return result.value;
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateTree(v, [...path, i], env, missing));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateTree(v, [...path, k], env, missing);
    return out;
  }
  return value;
}

function zodMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') {
    const received = (issue as { input?: unknown }).input;
    if (received === undefined) return `required: expected ${issue.expected}`;
    const what = received === null ? 'null' : Array.isArray(received) ? 'a list' : typeof received;
    return `expected ${issue.expected}, got ${what}`;
  }
  return issue.message.replace(/^Invalid input: /, '');
}
