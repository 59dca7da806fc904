import type { Document, LineCounter } from 'yaml';
import type { z } from 'zod';
import { HeraldError } from '../errors.js';
import type { ConfigPath } from './config-path.js';
import type { VariableOrigins, VariableUse } from './interpolate.js';
import { objectKeysAt, suggestion } from './suggest.js';

export type { ConfigPath };

export interface ConfigIssue {
  path: ConfigPath;
  message: string;
  /** The message names its place itself ("`slack.token` is empty: …"), so no path goes before it. */
  placed?: boolean;
  /** Environment variables whose setting fixes it. */
  variables?: string[];
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
  const what = issue.placed ? issue.message : `${formatPath(issue.path)}: ${issue.message}`;
  return `${what}${where ? ` (${where})` : ''}`;
}

function unsetSummary(issues: readonly ConfigIssue[]): string {
  const names = [...new Set(issues.flatMap((i) => i.variables ?? []))];
  if (names.length === 0) return '';
  return `\nset ${names.length === 1 ? 'this environment variable' : 'these environment variables'}: ${names.join(', ')}`;
}

export class ConfigError extends HeraldError {
  readonly issues: ConfigIssue[];
  readonly file?: string;
  constructor(issues: ConfigIssue[], file?: string) {
    super(
      'CONFIG_INVALID',
      `invalid config${file ? ` ${file}` : ''}:\n${issues.map((i) => `  - ${formatIssue(i, file)}`).join('\n')}${unsetSummary(issues)}`,
      { details: issues },
    );
    this.name = 'ConfigError';
    this.issues = issues;
    this.file = file;
  }
}

/**
 * Every issue found in one config document, each with the line and column of the node its path
 * names (or of the nearest node above it that exists), so a whole config is judged at once and
 * each mistake is reported where it was written.
 */
type AnySchema = z.core.$ZodType;

/** What the keys an unknown key is compared with come from: the schema, plus keys taken off before. */
export interface KeyContext {
  schema: AnySchema;
  /** Keys accepted beside the schema's own at its top level (e.g. `kind`, `channel`). */
  extraKeys?: readonly string[];
}

/**
 * Every issue found in one config document, each with the line and column of the node its path
 * names (or of the nearest node above it that exists), so a whole config is judged at once and
 * each mistake is reported where it was written. A value that came from `${VAR}` is spoken of by
 * its variable; a value whose variable is unset is reported once, as unset, not also as invalid.
 */
export class ConfigIssues {
  readonly list: ConfigIssue[] = [];
  private readonly seen = new Set<string>();
  private origins: VariableOrigins | undefined;

  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    private readonly file: string | undefined,
  ) {}

  /** Where each interpolated string's variables are known from (after interpolation). */
  useOrigins(origins: VariableOrigins): void {
    this.origins = origins;
  }

  /** An issue whose position is already known (the YAML parser's own). */
  push(issue: ConfigIssue): void {
    const key = `${JSON.stringify(issue.path)}\u0000${issue.message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push(issue);
  }

  add(path: ConfigPath, message: string): void {
    if (this.unsetAt(path)) return;
    const use = this.origins?.at(path);
    if (use && use.value.trim() === '') {
      this.push({
        path,
        message: `\`${formatPath(path)}\` is empty: set ${use.names.join(' or ')}`,
        placed: true,
        variables: use.names,
        ...this.locate(path),
      });
      return;
    }
    const from = use ? ` (the value comes from ${use.names.join(', ')})` : '';
    this.push({ path, message: `${message}${from}`, ...this.locate(path) });
  }

  /** `${NAME}` without a default at `path`, and NAME is not set. */
  addUnset(path: ConfigPath, names: readonly string[]): void {
    const use = this.origins?.at(path);
    const list = [...new Set(names)];
    const message =
      use === undefined || use.value.trim() === ''
        ? `\`${formatPath(path)}\` is empty: set ${list.join(' and ')}`
        : `\`${formatPath(path)}\` uses ${list.join(', ')}, not set: set ${list.length > 1 ? 'them' : 'it'}, or write \${${list[0]}:-default} for a default`;
    this.push({ path, message, placed: true, variables: list, ...this.locate(path) });
  }

  /** `key` in the object at `path` is not one of `known`. */
  addUnknownKey(path: ConfigPath, key: string, known: readonly string[]): void {
    this.push({
      path: [...path, key],
      message: `unknown key \`${key}\` in ${formatPath(path)}${suggestion(key, known)}`,
      placed: true,
      ...this.locate([...path, key]),
    });
  }

  /**
   * A schema's issues, under `prefix`: an unknown key is one issue per key, at the key, with the
   * nearest known key (from `keys`) as a suggestion; a union that failed is reported by the one
   * option the value was meant for, when the value's shape tells which.
   */
  addZod(prefix: ConfigPath, zodIssues: readonly z.core.$ZodIssue[], keys?: KeyContext): void {
    for (const issue of flattenUnions(zodIssues)) {
      const relative = issue.path as ConfigPath;
      const path = [...prefix, ...relative];
      if (issue.code === 'unrecognized_keys') {
        const known = keys ? objectKeysAt(keys.schema, relative) : [];
        if (keys?.extraKeys && relative.length === 0) known.push(...keys.extraKeys);
        for (const key of issue.keys) this.addUnknownKey(path, key, known);
      } else this.add(path, zodMessage(issue));
    }
  }

  /** Throws a ConfigError listing every issue so far, if there is any. */
  throwIfAny(): void {
    if (this.list.length > 0) throw this.error();
  }

  /** The issues in the order they are written in the file (those without a position first). */
  error(): ConfigError {
    const ordered = this.list
      .map((issue, index) => ({ issue, index }))
      .sort(
        (a, b) =>
          (a.issue.line ?? 0) - (b.issue.line ?? 0) ||
          (a.issue.column ?? 0) - (b.issue.column ?? 0) ||
          a.index - b.index,
      )
      .map((x) => x.issue);
    return new ConfigError(ordered, this.file);
  }

  /** The variables the string at `path` was made from, if it was interpolated. */
  originAt(path: ConfigPath): VariableUse | undefined {
    return this.origins?.at(path);
  }

  private unsetAt(path: ConfigPath): boolean {
    return (this.origins?.at(path)?.unset.length ?? 0) > 0;
  }

  private locate(path: ConfigPath): Pick<ConfigIssue, 'line' | 'column'> {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node?.range) {
        const pos = this.lineCounter.linePos(node.range[0]);
        return { line: pos.line, column: pos.col };
      }
      if (n === 0) break;
    }
    return {};
  }
}

/**
 * A failed union says only "invalid input". When exactly one option failed on the value's
 * contents rather than on its shape (its type, or which literal it is), that option is the one
 * the user wrote, and its own issues say what is wrong.
 */
export function flattenUnions(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    if (issue.code !== 'invalid_union' || issue.errors.length === 0) {
      out.push(issue);
      continue;
    }
    const meant = issue.errors.filter(
      (option) =>
        !option.some((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value')),
    );
    if (meant.length !== 1) {
      out.push(issue);
      continue;
    }
    for (const inner of flattenUnions(meant[0]!))
      out.push({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue);
  }
  return out;
}

function zodMessage(issue: z.core.$ZodIssue): string {
  const received = (issue as { input?: unknown }).input;
  const what = received === null ? 'null' : Array.isArray(received) ? 'a list' : typeof received;
  if (issue.code === 'invalid_type') {
    if (received === undefined) return `required: expected ${issue.expected}`;
    return `expected ${issue.expected}, got ${what}`;
  }
  if (issue.code === 'invalid_union' && received !== undefined) {
    // Every option refused the value's type: say which types would do.
    const expected = issue.errors.flatMap((option) =>
      option.flatMap((i) => (i.path.length === 0 && i.code === 'invalid_type' ? [i.expected] : [])),
    );
    if (expected.length === issue.errors.length && expected.length > 0)
      return `expected ${[...new Set(expected)].join(' or ')}, got ${what}`;
  }
  return issue.message.replace(/^Invalid input: /, '');
}
