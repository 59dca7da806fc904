import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { CloudEvent } from '../../events/types.js';
import { evaluate } from './index.js';

/** One case of a file in the CESQL TCK format. */
export interface TckCase {
  name: string;
  expression: string;
  result?: unknown;
  error?: string;
  event?: Record<string, unknown>;
  eventOverrides?: Record<string, unknown>;
}

export interface TckOutcome {
  file: string;
  name: string;
  result: unknown;
  errors: string[];
}

/** A minimal valid event, used when a case gives none. */
export const MINIMAL_EVENT: CloudEvent = {
  specversion: '1.0',
  id: 'tck-event',
  source: 'http://localhost/tck',
  type: 'io.cloudevents.tck',
};

/** Reads a TCK file with the YAML 1.2 core schema (so unquoted timestamps stay strings). */
export function readTckFile(path: string): TckCase[] {
  const doc = parseYaml(readFileSync(path, 'utf8'), { version: '1.2', schema: 'core' }) as {
    tests?: TckCase[];
  };
  if (!doc || !Array.isArray(doc.tests)) throw new Error(`${path}: expected a "tests" list`);
  return doc.tests.map((t) => ({ ...t, name: String(t.name), expression: String(t.expression) }));
}

export function eventFor(c: TckCase): CloudEvent {
  const base = (c.event as CloudEvent | undefined) ?? MINIMAL_EVENT;
  return { ...base, ...(c.eventOverrides ?? {}) } as CloudEvent;
}

export function runCase(file: string, c: TckCase): TckOutcome {
  const { result, errors } = evaluate(c.expression, eventFor(c));
  return { file: basename(file), name: c.name, result, errors };
}

/** Does an outcome satisfy the case's expectations (`result` when given, and `error` or none)? */
export function checkCase(c: TckCase, outcome: TckOutcome): string | null {
  const problems: string[] = [];
  if (c.result !== undefined && outcome.result !== c.result) {
    problems.push(`result ${JSON.stringify(outcome.result)}, expected ${JSON.stringify(c.result)}`);
  }
  if (c.error !== undefined) {
    if (!outcome.errors.includes(c.error))
      problems.push(`errors ${JSON.stringify(outcome.errors)}, expected "${c.error}"`);
  } else if (outcome.errors.length > 0) problems.push(`unexpected errors ${JSON.stringify(outcome.errors)}`);
  return problems.length ? problems.join('; ') : null;
}
