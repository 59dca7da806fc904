import type { Document, LineCounter } from 'yaml';
import type { z } from 'zod';
import { HeraldError } from '../errors.js';

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

/**
 * Every issue found in one config document, each with the line and column of the node its path
 * names (or of the nearest node above it that exists), so a whole config is judged at once and
 * each mistake is reported where it was written.
 */
export class ConfigIssues {
  readonly list: ConfigIssue[] = [];

  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    private readonly file: string | undefined,
  ) {}

  /** An issue whose position is already known (the YAML parser's own). */
  push(issue: ConfigIssue): void {
    this.list.push(issue);
  }

  add(path: ConfigPath, message: string): void {
    this.list.push({ path, message, ...this.locate(path) });
  }

  /** A schema's issues, under `prefix`: an unknown key is one issue per key, at the key. */
  addZod(prefix: ConfigPath, zodIssues: z.core.$ZodIssue[]): void {
    for (const issue of zodIssues) {
      const path = [...prefix, ...(issue.path as ConfigPath)];
      if (issue.code === 'unrecognized_keys')
        for (const key of issue.keys) this.add([...path, key], 'unknown key');
      else this.add(path, zodMessage(issue));
    }
  }

  /** Throws a ConfigError listing every issue so far, if there is any. */
  throwIfAny(): void {
    if (this.list.length > 0) throw this.error();
  }

  error(): ConfigError {
    return new ConfigError(this.list, this.file);
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

function zodMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') {
    const received = (issue as { input?: unknown }).input;
    if (received === undefined) return `required: expected ${issue.expected}`;
    const what = received === null ? 'null' : Array.isArray(received) ? 'a list' : typeof received;
    return `expected ${issue.expected}, got ${what}`;
  }
  return issue.message.replace(/^Invalid input: /, '');
}
