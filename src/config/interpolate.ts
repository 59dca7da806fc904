import type { ConfigPath } from './issues.js';

/**
 * `${VAR}` and `${VAR:-default}` in config strings. `$${` writes a literal `${`.
 * Interpolation runs on parsed YAML scalars, never on the raw text, so a variable's value can
 * never change the YAML structure.
 */
const PATTERN = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}\\]|\\.)*))?\}/g;

export interface InterpolationResult {
  value: string;
  /** Variables referenced without a default and not set. */
  missing: string[];
}

export function interpolate(input: string, env: NodeJS.ProcessEnv): InterpolationResult {
  const missing: string[] = [];
  if (!input.includes('${')) return { value: input, missing };
  const value = input.replace(PATTERN, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    const set = env[name!];
    if (set !== undefined && set !== '') return set;
    if (fallback !== undefined) return fallback.replace(/\\(.)/g, '$1');
    missing.push(name!);
    return '';
  });
  return { value, missing };
}

/** A variable that a string of the config references, without a default, and that is not set. */
export interface UnsetVariable {
  path: ConfigPath;
  name: string;
}

/**
 * The unset variables of a document. Those a plugin block's `fallback` takes care of are handled;
 * every other one is a config issue.
 */
export class UnsetVariables {
  private readonly handled = new Set<UnsetVariable>();

  constructor(private readonly all: readonly UnsetVariable[]) {}

  /** Those used at or below `prefix`. */
  under(prefix: ConfigPath): UnsetVariable[] {
    return this.all.filter((m) => prefix.every((p, i) => m.path[i] === p));
  }

  handle(variables: Iterable<UnsetVariable>): void {
    for (const m of variables) this.handled.add(m);
  }

  unhandled(): UnsetVariable[] {
    return this.all.filter((m) => !this.handled.has(m));
  }
}

/**
 * Interpolates every string of a parsed document, and records where each unset variable is used:
 * a plugin block with a `fallback` is judged by whether its own variables are set.
 */
export function interpolateTree(
  value: unknown,
  path: ConfigPath,
  env: NodeJS.ProcessEnv,
  missing: UnsetVariable[],
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
