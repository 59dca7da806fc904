import type { z } from 'zod';
import type { ConfigPath } from './config-path.js';

/** Edits (insert, delete, substitute one character) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The candidate a misspelt word most likely meant: the nearest by edit distance, when it is near
 * enough to be a slip (a third of the word's length, at least one edit), case ignored.
 */
export function closestMatch(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  const allowed = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** " (did you mean `x`?)", or " (known: a, b, c)" for a short list, or nothing. */
export function suggestion(word: string, candidates: readonly string[], quote = '`'): string {
  const match = closestMatch(word, candidates);
  if (match) return ` (did you mean ${quote}${match}${quote}?)`;
  if (candidates.length > 0 && candidates.length <= 16) return ` (known: ${candidates.join(', ')})`;
  return '';
}

type AnySchema = z.core.$ZodType;

/**
 * The keys an object of `schema` accepts at `path`: what an unknown key there is compared with.
 * Wrappers (optional, default, pipe…) are looked through; a union contributes the keys of all its
 * object options.
 */
export function objectKeysAt(schema: AnySchema, path: ConfigPath): string[] {
  const keys = new Set<string>();
  const visit = (node: AnySchema, rest: ConfigPath, depth: number): void => {
    if (depth > 64) return;
    const def = node._zod.def as unknown as Record<string, unknown> & { type: string };
    switch (def.type) {
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        visit(def.innerType as AnySchema, rest, depth + 1);
        return;
      case 'pipe':
        visit(def.in as AnySchema, rest, depth + 1);
        return;
      case 'lazy':
        visit((def.getter as () => AnySchema)(), rest, depth + 1);
        return;
      case 'union':
        for (const option of def.options as AnySchema[]) visit(option, rest, depth + 1);
        return;
      case 'intersection':
        visit(def.left as AnySchema, rest, depth + 1);
        visit(def.right as AnySchema, rest, depth + 1);
        return;
      case 'object': {
        const shape = def.shape as Record<string, AnySchema>;
        if (rest.length === 0) {
          for (const key of Object.keys(shape)) keys.add(key);
          return;
        }
        const child = shape[String(rest[0])];
        if (child) visit(child, rest.slice(1), depth + 1);
        return;
      }
      case 'record':
        if (rest.length > 0) visit(def.valueType as AnySchema, rest.slice(1), depth + 1);
        return;
      case 'array':
        if (rest.length > 0) visit(def.element as AnySchema, rest.slice(1), depth + 1);
        return;
      default:
        return;
    }
  };
  visit(schema, path, 0);
  return [...keys];
}
