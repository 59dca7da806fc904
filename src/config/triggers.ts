import { DEFAULT_BACKOFF } from '../engine/backoff.js';
import type {
  CompiledAction,
  CompiledTrigger,
  NotificationRules,
  PreferencePredicate,
  RecipientSpec,
  RetryPolicy,
} from '../engine/model.js';
import type { ChannelKind } from '../engine/types.js';
import type { CloudEvent } from '../events/types.js';
import {
  type CesqlEvaluationError,
  type CesqlExplanation,
  CesqlParseError,
  type CesqlStep,
  compile,
  compileExplainer,
} from '../filters/cesql/index.js';
import { compileFilter, type FilterDialect, matchAll } from '../filters/index.js';
import { FilterCompileError, type Matcher } from '../filters/types.js';
import { compileTree, type Template, type TemplateTree } from '../templates/index.js';
import type { ConfigIssues, ConfigPath } from './issues.js';
import { parsePart } from './part.js';
import type { CompiledPlugins } from './plugins.js';
import type { BackoffConfig, RawConfig } from './schema.js';
import { closestMatch, objectKeysAt } from './suggest.js';

type RawAction = RawConfig['triggers'][string]['actions'][number];

/** Keys of an action that are not its channel kind's: checked before the kind's schema sees it. */
const ACTION_BASE_KEYS = [
  'channel',
  'to',
  'followUp',
  'dedupe',
  'replace',
  'throttle',
  'digest',
  'delay',
  'quietHours',
];

/**
 * The enabled triggers: each filter compiled, each action checked against its channel (the
 * channel kind's action schema and its own check of the pair) and its recipients and follow-up
 * compiled. An action naming a declared channel that has issues of its own is still checked
 * against its channel's kind, when that is known.
 */
export function compileTriggers(
  triggers: RawConfig['triggers'],
  declaredChannels: ReadonlySet<string>,
  channels: CompiledPlugins<ChannelKind>,
  dialects: readonly FilterDialect[],
  issues: ConfigIssues,
): CompiledTrigger[] {
  const channelByName = new Map(channels.compiled.map((c) => [c.name, c]));
  const compiled: CompiledTrigger[] = [];
  for (const [name, trigger] of Object.entries(triggers)) {
    if (!trigger.enabled) continue;
    const base: ConfigPath = ['triggers', name];
    let matcher: Matcher = matchAll;
    if (trigger.filter !== undefined) {
      try {
        matcher = compileFilter(trigger.filter, [...base, 'filter'], dialects);
      } catch (err) {
        if (err instanceof FilterCompileError) issues.add(err.path, err.message);
        else issues.add([...base, 'filter'], (err as Error).message);
      }
    }
    const actions: CompiledAction[] = [];
    // Null: an action of a trigger with issues that could not be read (see parseRootSections).
    (trigger.actions as (RawAction | null)[]).forEach((action, index) => {
      if (action === null) return;
      const at: ConfigPath = [...base, 'actions', index];
      const {
        channel: channelName,
        to,
        followUp: followUpBlock,
        dedupe,
        replace,
        throttle,
        digest,
        delay,
        quietHours,
        ...rest
      } = action;
      const channel = channelByName.get(channelName);
      const declared = channels.kindOf.get(channelName);
      if (!declared && !declaredChannels.has(channelName)) {
        const known = [...declaredChannels];
        const meant = closestMatch(channelName, known);
        issues.add(
          [...at, 'channel'],
          `unknown channel "${channelName}"${meant ? ` (did you mean "${meant}"?)` : ''}${known.length ? ` (defined: ${known.join(', ')})` : ' (no channels are defined)'}`,
        );
        return;
      }
      // A declared channel of an unknown kind is already reported; its actions cannot be checked.
      if (!declared) return;
      // The action is written for the declared kind, and judged by it even while a fallback runs.
      const written = parsePart(declared.actionSchema, rest, at, issues, { extraKeys: ACTION_BASE_KEYS });
      if (written.ok) flagNearMisses(declared.actionSchema, rest, at, issues);
      // A channel with issues of its own cannot run: its actions are only checked.
      if (!written.ok || !channel) return;
      const result =
        channel.kind === declared
          ? written
          : parsePart(channel.kind.actionSchema, rest, at, issues, { extraKeys: ACTION_BASE_KEYS });
      if (!result.ok) return;
      const mismatch = channel.kind.checkAction?.(channel.config, result.data);
      if (mismatch) {
        issues.add(at, mismatch);
        return;
      }
      let recipients: RecipientSpec;
      try {
        recipients = recipientSpec(to);
      } catch (err) {
        issues.add([...at, 'to', 'where'], (err as Error).message);
        return;
      }
      let followUp: TemplateTree | undefined;
      if (followUpBlock !== undefined) {
        if (typeof followUpBlock.type !== 'string' || followUpBlock.type === '') {
          issues.add([...at, 'followUp', 'type'], 'a follow-up event needs a `type`');
          return;
        }
        try {
          followUp = compileTree(followUpBlock);
        } catch (err) {
          issues.add([...at, 'followUp'], (err as Error).message);
          return;
        }
      }
      if (digest && replace) {
        issues.add(
          [...at, 'digest'],
          '`digest` and `replace` cannot be used together: a digest already keeps every event of its key in one message (drop `replace`)',
        );
        return;
      }
      // Judged by the declared kind: a Slack channel running on its inbox fallback posts each digest.
      if (digest?.update && !declared.updatesMessages) {
        issues.add(
          [...at, 'digest', 'update'],
          `\`update: true\` needs a channel that can edit a message it sent; channel "${channelName}" is of kind ${declared.kind}, which cannot (slack can)`,
        );
        return;
      }
      const notify = notificationRules({ dedupe, replace, throttle, digest, delay, quietHours });
      actions.push({ index, channel: channelName, to: recipients, params: result.data, followUp, notify });
    });
    compiled.push({
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
  return compiled;
}

/**
 * A kind whose actions take extra keys as message fields (the inbox) accepts any key, so a slip
 * such as `tex` for `text` would pass silently: a key that is not the schema's but is one edit or
 * so from one of its keys is reported as the misspelling it most likely is.
 */
function flagNearMisses(
  actionSchema: ChannelKind['actionSchema'],
  action: Record<string, unknown>,
  at: ConfigPath,
  issues: ConfigIssues,
): void {
  const known = [...objectKeysAt(actionSchema, []), ...ACTION_BASE_KEYS];
  for (const key of Object.keys(action))
    if (!known.includes(key) && closestMatch(key, known)) issues.addUnknownKey(at, key, known);
}

function notificationRules(keys: {
  dedupe?: RawAction['dedupe'];
  replace?: RawAction['replace'];
  throttle?: RawAction['throttle'];
  digest?: RawAction['digest'];
  delay?: RawAction['delay'];
  quietHours?: RawAction['quietHours'];
}): NotificationRules | undefined {
  const rules: NotificationRules = {};
  if (keys.dedupe) rules.dedupe = { key: keys.dedupe.key, windowMs: keys.dedupe.window };
  if (keys.replace) rules.replace = { key: keys.replace.key };
  if (keys.throttle)
    rules.throttle = { key: keys.throttle.key, limit: keys.throttle.limit, perMs: keys.throttle.per };
  if (keys.digest)
    rules.digest = {
      key: keys.digest.key,
      windowMs: keys.digest.window,
      max: keys.digest.max,
      update: keys.digest.update,
    };
  if (keys.delay !== undefined)
    rules.delay = typeof keys.delay === 'number' ? { ms: keys.delay } : { until: keys.delay.until };
  if (keys.quietHours) {
    const { from, to, timezone } = keys.quietHours;
    rules.quietHours = { fromMinute: from, toMinute: to, ...(timezone ? { timezone } : {}) };
  }
  return Object.keys(rules).length > 0 ? rules : undefined;
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
  const value = (p: Record<string, string | boolean>, name: string) =>
    `${name} is ${p[name] === undefined ? 'not a known preference' : JSON.stringify(p[name])}`;
  if (simple) {
    const [, negated, name] = simple;
    const test = negated
      ? (p: Record<string, string | boolean>) => p[name!] === false
      : (p: Record<string, string | boolean>) => p[name!] === true;
    return Object.assign(test, {
      source: text,
      explain: (p: Record<string, string | boolean>) => value(p, name!),
    });
  }
  const comparison = /^([a-z][a-z0-9_]*)\s*(=|==|!=|<>)\s*(?:'([^']*)'|"([^"]*)"|([A-Za-z0-9_.-]+))$/i.exec(
    text,
  );
  if (comparison) {
    const [, name, op, single, double, bare] = comparison;
    const wanted = single ?? double ?? bare!;
    const equal = (p: Record<string, string | boolean>) => String(p[name!]) === wanted;
    const test = op === '=' || op === '==' ? equal : (p: Record<string, string | boolean>) => !equal(p);
    return Object.assign(test, {
      source: text,
      explain: (p: Record<string, string | boolean>) => value(p, name!),
    });
  }
  let compiled: ReturnType<typeof compile>;
  try {
    compiled = compile(text);
  } catch (err) {
    if (err instanceof CesqlParseError)
      throw new Error(
        `CESQL: ${err.message} (for a preference with "_" in its name write \`name\`, \`not name\` or \`name = value\`)`,
      );
    throw err;
  }
  const errors: CesqlEvaluationError[] = [];
  let explainer: ((event: CloudEvent) => CesqlExplanation) | null = null;
  // Preferences stand in for the event's attributes: CESQL reads them by name.
  const test = (p: Record<string, string | boolean>) => {
    errors.length = 0;
    return compiled.evaluate(p as unknown as CloudEvent, errors) === true && errors.length === 0;
  };
  return Object.assign(test, {
    source: text,
    explain: (p: Record<string, string | boolean>) => {
      explainer ??= compileExplainer(compiled.ast);
      const why = explainer(p as unknown as CloudEvent).why;
      return why ? decisiveStep(why) : `${text} is true`;
    },
  });
}

/** The sub-expression that made a `where` false, in one line. */
function decisiveStep(step: CesqlStep): string {
  let decisive = step;
  while (decisive.because?.length === 1) decisive = decisive.because[0]!;
  if (!decisive.because?.length) return decisive.message;
  return decisive.because.map(decisiveStep).join('; ');
}

function normaliseBackoff(backoff: BackoffConfig): RetryPolicy['backoff'] {
  if (typeof backoff === 'string') return { ...DEFAULT_BACKOFF, kind: backoff };
  return { ...DEFAULT_BACKOFF, ...backoff };
}
