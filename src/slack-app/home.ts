import type { KnownBlock } from '@slack/web-api';
import type { FeedItem } from '../engine/store.js';
import type { PreferenceSpec } from '../subscriptions/config.js';
import { compileTemplate } from '../templates/index.js';
import type { SlackAppConfig } from './config.js';
import { keyText } from './labels.js';

/** What a Home renderer gets: the person's feed (newest first), preferences and their specs. */
export interface HomeInput {
  items: FeedItem[];
  keys: string[];
  /** Names of followed keys (`slack.labels`); a key without one is shown as it is. */
  labels?: ReadonlyMap<string, string>;
  preferences: Record<string, string | boolean>;
  specs: Record<string, PreferenceSpec>;
  config: SlackAppConfig['home'];
  command: string;
  now: number;
}

/** Slack rejects a Home view with more than 100 blocks. */
const MAX_BLOCKS = 100;
const DAY_MS = 86_400_000;

/** Button text for a preference: boolean `On`/`Off` (relative to the spec's `on`), enums their value. */
export function toggleLabel(name: string, spec: PreferenceSpec, value: string | boolean): string {
  const label = spec.label ?? name;
  if (spec.type === 'boolean') return `${label}: ${value === spec.on ? 'On' : 'Off'}`;
  return `${label}: ${String(value)}`;
}

/** The value a toggle button sets: the opposite boolean, or the next enum value. */
export function nextValue(spec: PreferenceSpec, value: string | boolean): string | boolean {
  if (spec.type === 'boolean') return !value;
  const i = spec.values.indexOf(String(value));
  return spec.values[(i + 1) % spec.values.length]!;
}

export function toggleBlocks(input: Pick<HomeInput, 'preferences' | 'specs'>, only?: string[]): KnownBlock[] {
  const names = Object.keys(input.specs).filter((n) => !only || only.includes(n));
  const blocks: KnownBlock[] = [];
  // An actions block holds at most 25 elements.
  for (let i = 0; i < names.length; i += 25) {
    blocks.push({
      type: 'actions',
      block_id: `preferences-${i / 25}`,
      elements: names.slice(i, i + 25).map((name) => {
        const spec = input.specs[name]!;
        const value = input.preferences[name]!;
        return {
          type: 'button' as const,
          action_id: `pref:${name}`,
          text: { type: 'plain_text' as const, text: toggleLabel(name, spec, value) },
          value: JSON.stringify(nextValue(spec, value)),
        };
      }),
    });
  }
  return blocks;
}

const header = (text: string): KnownBlock => ({
  type: 'header',
  text: { type: 'plain_text', text: text.slice(0, 150) },
});
const markdown = (text: string): KnownBlock => ({
  type: 'section',
  text: { type: 'mrkdwn', text: text.slice(0, 3000) },
});
const context = (text: string): KnownBlock => ({
  type: 'context',
  elements: [{ type: 'mrkdwn', text: text.slice(0, 3000) }],
});

function emptyState(input: HomeInput): KnownBlock[] {
  return input.keys.length === 0
    ? [
        markdown(
          `You follow nothing yet. Type \`${input.command} subscribe\` to follow what concerns your email address.`,
        ),
      ]
    : [markdown(`Nothing new for ${input.keys.map((k) => keyText(k, input.labels)).join(', ')}.`)];
}

/** What the person follows, each with a Stop button (at most 20, the rest summarised). */
function followingBlocks(keys: string[], labels: HomeInput['labels']): KnownBlock[] {
  if (keys.length === 0) return [];
  const shown = keys.slice(0, 20);
  return [
    markdown('*You follow*'),
    ...shown.map(
      (key): KnownBlock => ({
        type: 'section',
        text: { type: 'mrkdwn', text: keyText(key, labels) },
        accessory: {
          type: 'button',
          action_id: 'sub:off',
          style: 'danger',
          text: { type: 'plain_text', text: 'Stop' },
          value: JSON.stringify({ key }),
        },
      }),
    ),
    ...(keys.length > shown.length ? [context(`and ${keys.length - shown.length} more`)] : []),
  ];
}

/** The `feed` renderer: what the person follows, then one line per recent event (Liquid). */
export function renderFeedHome(input: HomeInput): KnownBlock[] {
  const line = compileTemplate(input.config.line);
  const blocks: KnownBlock[] = [
    header(input.config.title),
    ...toggleBlocks(input),
    ...followingBlocks(input.keys, input.labels),
    { type: 'divider' },
  ];
  const items = input.items.slice(0, input.config.limit);
  if (items.length === 0) return [...blocks, ...emptyState(input)];
  for (const item of items) {
    if (blocks.length >= MAX_BLOCKS - 1) break;
    blocks.push(markdown(line.render({ event: item.event, key: item.key })));
  }
  return blocks;
}

/* ------------------------------------------------------------------ ci-feed */

interface CiData {
  type?: string;
  pr_number?: number;
  pr_status?: string;
  pr_title?: string;
  parent_pr_number?: number;
  linked_pr_number?: number;
  ci_status?: string;
  result?: {
    status?: string;
    start_time?: string;
    duration?: number | string;
    results?: { name?: string; status?: string }[];
    ext?: { report_url?: string };
    links?: string[];
  };
}

interface CiEntry {
  kind: 'pr' | 'merge';
  data: CiData;
  at: number;
  merged: boolean;
}

const num = (v: unknown) => (typeof v === 'number' ? v : Number(v ?? 0) || 0);

/** Counts of jobs by status, e.g. "3 success, 1 failure". */
export function jobSummary(results: CiData['result']): string {
  const counts = new Map<string, number>();
  for (const r of results?.results ?? [])
    counts.set(r.status ?? 'unknown', (counts.get(r.status ?? 'unknown') ?? 0) + 1);
  return [...counts].map(([status, n]) => `${n} ${status}`).join(', ') || 'no jobs yet';
}

/** The failing jobs of a run (status failure or error). */
export function failingJobs(data: CiData): string[] {
  return (data.result?.results ?? [])
    .filter((r) => r.status === 'failure' || r.status === 'error')
    .map((r) => r.name ?? '?');
}

/**
 * The ci-feed entries after the person's toggles: the newest event per PR and per merge result;
 * a PR counts as merged when its status says so or a merge-result event names it as parent or
 * linked PR.
 */
export function ciEntries(
  items: FeedItem[],
  preferences: Record<string, string | boolean>,
  now: number,
): CiEntry[] {
  const events = items
    .filter((i) => i.event.data && typeof i.event.data === 'object')
    .map((i) => {
      const time = i.event.time ? Date.parse(String(i.event.time)) : Number.NaN;
      return { data: i.event.data as CiData, at: Number.isNaN(time) ? i.at : time };
    });
  const mergedPrs = new Set<number>();
  for (const e of events) {
    if (num(e.data.pr_number) !== 0) continue;
    for (const n of [num(e.data.parent_pr_number), num(e.data.linked_pr_number)]) if (n > 0) mergedPrs.add(n);
  }
  const newest = new Map<string, CiEntry>();
  for (const e of events) {
    const pr = num(e.data.pr_number);
    const isMerge = pr === 0;
    const id = isMerge
      ? `merge:${e.data.result?.links?.[1] ?? `${num(e.data.parent_pr_number)}:${num(e.data.linked_pr_number)}`}`
      : `pr:${pr}`;
    const existing = newest.get(id);
    if (existing && existing.at > e.at) continue;
    newest.set(id, {
      kind: isMerge ? 'merge' : 'pr',
      data: e.data,
      at: e.at,
      merged: isMerge || e.data.pr_status === 'merged' || mergedPrs.has(pr),
    });
  }
  return [...newest.values()]
    .filter((entry) => {
      if (preferences.show_last_7d === true && entry.at < now - 7 * DAY_MS) return false;
      if (entry.kind === 'merge') return preferences.hide_merges !== true;
      if (preferences.hide_merged_prs === true && entry.merged) return false;
      if (
        preferences.hide_secondary_prs === true &&
        num(entry.data.parent_pr_number) > 0 &&
        num(entry.data.pr_number) > 0
      )
        return false;
      return true;
    })
    .sort((a, b) => b.at - a.at);
}

const link = (url: string | undefined, text: string) => (url ? `<${url}|${text}>` : text);

function ciEntryBlocks(entry: CiEntry): KnownBlock[] {
  const d = entry.data;
  const [prUrl, runUrl] = d.result?.links ?? [];
  const status = entry.merged ? 'merged' : (d.pr_status ?? 'open');
  const title =
    entry.kind === 'merge'
      ? `*Merge result${num(d.parent_pr_number) > 0 ? ` of #${num(d.parent_pr_number)}` : ''}${num(d.linked_pr_number) > 0 ? ` (linked #${num(d.linked_pr_number)})` : ''}*`
      : `*${link(prUrl, `#${num(d.pr_number)} ${d.pr_title ?? ''}`.trim())}*`;
  const failing = failingJobs(d);
  const lines = [
    title,
    `PR: *${status}*  ·  CI: *${d.ci_status ?? d.result?.status ?? 'pending'}*  ·  Jobs: ${jobSummary(d.result)}`,
    ...(failing.length ? [`Failing: ${failing.join(', ')}`] : []),
  ];
  const links = [
    ...(prUrl ? [link(prUrl, 'PR')] : []),
    ...(runUrl ? [link(runUrl, 'Run')] : []),
    ...(d.result?.ext?.report_url ? [link(d.result.ext.report_url, 'Report')] : []),
  ];
  return [markdown(lines.join('\n')), ...(links.length ? [context(links.join('  ·  '))] : [])];
}

/** The `ci-feed` renderer: per PR its title, PR status, CI status, job summary and links. */
export function renderCiFeedHome(input: HomeInput): KnownBlock[] {
  const blocks: KnownBlock[] = [header(input.config.title), ...toggleBlocks(input), { type: 'divider' }];
  const entries = ciEntries(input.items, input.preferences, input.now).slice(0, input.config.limit);
  if (entries.length === 0) return [...blocks, ...emptyState(input)];
  for (const entry of entries) {
    const next = ciEntryBlocks(entry);
    if (blocks.length + next.length > MAX_BLOCKS) break;
    blocks.push(...next);
  }
  return blocks;
}

export const homeRenderers: Record<SlackAppConfig['home']['renderer'], (input: HomeInput) => KnownBlock[]> = {
  feed: renderFeedHome,
  'ci-feed': renderCiFeedHome,
};
