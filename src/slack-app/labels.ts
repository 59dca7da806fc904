import type { SlackAppConfig } from './config.js';

/** Reads one row of a materialized view (the projections store). */
export type ViewRowReader = (
  view: string,
  key: string,
) => Promise<{ key: string; value: Record<string, unknown> } | null>;

/** A label is a name in a list, not a paragraph. */
const MAX_LABEL_LENGTH = 150;
/** Keys labelled per call; one view read each, so a long list cannot fan out without bound. */
export const MAX_LABELLED_KEYS = 50;

/**
 * Names subscription keys for people (`product:1` → `Red Kettle`) from the `slack.labels` rules.
 * Returns a label for each key a rule names; a key without one (no rule, its row gone, an empty or
 * failing render) is left out, and callers show the key itself.
 */
export function createKeyLabeler(
  rules: SlackAppConfig['labels'],
  readRow: ViewRowReader | undefined,
  onError: (key: string, err: Error) => void = () => undefined,
): (keys: readonly string[]) => Promise<Map<string, string>> {
  const labelOf = async (key: string): Promise<string | undefined> => {
    const rule = rules.find((r) => key.startsWith(r.prefix));
    if (!rule) return undefined;
    const id = key.slice(rule.prefix.length);
    try {
      let row: Record<string, unknown> | null = null;
      if (rule.view) {
        // Without the row there is nothing true to say but the key.
        if (!readRow) return undefined;
        row = (await readRow(rule.view, id))?.value ?? null;
        if (!row) return undefined;
      }
      const text = rule.text.render({ key, id, row }).trim().replace(/\s+/g, ' ');
      return text ? text.slice(0, MAX_LABEL_LENGTH) : undefined;
    } catch (err) {
      onError(key, err as Error);
      return undefined;
    }
  };
  return async (keys) => {
    const labels = new Map<string, string>();
    if (rules.length === 0) return labels;
    const some = keys.slice(0, MAX_LABELLED_KEYS);
    const found = await Promise.all(some.map(labelOf));
    some.forEach((key, i) => {
      if (found[i] !== undefined) labels.set(key, found[i]);
    });
    return labels;
  };
}

/** Slack mrkdwn treats `&`, `<` and `>` as markup; a name from data must show as written. */
export const escapeMrkdwn = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** How a key reads in a message: its label in bold, else the key as code. */
export const keyText = (key: string, labels: ReadonlyMap<string, string> | undefined): string => {
  const label = labels?.get(key);
  return label === undefined ? `\`${key}\`` : `*${escapeMrkdwn(label)}*`;
};
