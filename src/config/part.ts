import type { z } from 'zod';
import { type ConfigIssues, type ConfigPath, flattenUnions } from './issues.js';

/** Rounds of fixing and parsing again: each round fixes every issue the last one found. */
const MAX_ROUNDS = 4;

/**
 * Parses one part of the config by its schema, as far as it can be judged:
 *
 * - A string that came from `${VAR}` where the schema wants a number or a boolean is read as one
 *   (`concurrency: ${N:-32}`), since a variable's value is always text. A value written as a
 *   string in the file stays a string: only interpolated values are coerced, and only where the
 *   schema asks for the type.
 * - Unknown keys are reported (with the nearest known key) and left out, so the rest of the part
 *   is still checked and used by later stages; the config is invalid all the same.
 *
 * Returns the parsed value, or undefined when the part has issues other than unknown keys.
 */
export function parsePart<T>(
  schema: z.ZodType<T>,
  value: unknown,
  prefix: ConfigPath,
  issues: ConfigIssues,
  options: { extraKeys?: readonly string[] } = {},
): { ok: true; data: T } | { ok: false } {
  let input = value;
  const unknownKeys: z.core.$ZodIssue[] = [];
  for (let round = 0; ; round++) {
    const result = schema.safeParse(input, { reportInput: true });
    if (result.success) {
      issues.addZod(prefix, unknownKeys, { schema, extraKeys: options.extraKeys });
      return { ok: true, data: result.data };
    }
    const found = flattenUnions(result.error.issues);
    const strip = found.filter((i) => i.code === 'unrecognized_keys');
    const coerce = found.flatMap((i) => {
      const coerced = coercion(i, prefix, issues);
      return coerced ? [coerced] : [];
    });
    if (round >= MAX_ROUNDS || (strip.length === 0 && coerce.length === 0)) {
      issues.addZod(prefix, [...unknownKeys, ...found], { schema, extraKeys: options.extraKeys });
      return { ok: false };
    }
    unknownKeys.push(...strip);
    input = structuredClone(input);
    for (const fix of coerce) input = setIn(input, fix.path, fix.value);
    for (const issue of strip) {
      const target = getIn(input, issue.path as ConfigPath);
      if (target !== null && typeof target === 'object')
        for (const key of (issue as z.core.$ZodIssueUnrecognizedKeys).keys)
          delete (target as Record<string, unknown>)[key];
    }
  }
}

/** The typed value an interpolated string stands for where the schema wants `expected`. */
export function coerceScalar(text: string, expected: string): number | boolean | undefined {
  const trimmed = text.trim();
  if (expected === 'number' || expected === 'int') {
    // YAML's decimal notation; a value such as "0x1F", "1_000" or "" is not taken for a number.
    if (!/^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$/.test(trimmed)) return undefined;
    const n = Number(trimmed);
    return Number.isFinite(n) ? n : undefined;
  }
  if (expected === 'boolean') {
    if (/^true$/i.test(trimmed)) return true;
    if (/^false$/i.test(trimmed)) return false;
  }
  return undefined;
}

function coercion(
  issue: z.core.$ZodIssue,
  prefix: ConfigPath,
  issues: ConfigIssues,
): { path: ConfigPath; value: unknown } | undefined {
  if (issue.code !== 'invalid_type') return undefined;
  const input = (issue as { input?: unknown }).input;
  if (typeof input !== 'string') return undefined;
  const path = issue.path as ConfigPath;
  if (!issues.originAt([...prefix, ...path])) return undefined;
  const value = coerceScalar(input, issue.expected);
  return value === undefined ? undefined : { path, value };
}

function getIn(value: unknown, path: ConfigPath): unknown {
  let node = value;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[String(part)];
  }
  return node;
}

function setIn(root: unknown, path: ConfigPath, value: unknown): unknown {
  if (path.length === 0) return value;
  const parent = getIn(root, path.slice(0, -1));
  if (parent !== null && typeof parent === 'object')
    (parent as Record<string, unknown>)[String(path[path.length - 1])] = value;
  return root;
}
