import type { ConfigPath } from './config-path.js';

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
  /** Every variable the string references, set or not, in order of first use. */
  used: string[];
}

export function interpolate(input: string, env: NodeJS.ProcessEnv): InterpolationResult {
  const missing: string[] = [];
  const used: string[] = [];
  if (!input.includes('${')) return { value: input, missing, used };
  const value = input.replace(PATTERN, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    if (!used.includes(name!)) used.push(name!);
    const set = env[name!];
    if (set !== undefined && set !== '') return set;
    if (fallback !== undefined) return fallback.replace(/\\(.)/g, '$1');
    missing.push(name!);
    return '';
  });
  return { value, missing, used };
}

/** What a config string became through interpolation: the words an issue about it is put in. */
export interface VariableUse {
  /** Every variable the string references. */
  names: string[];
  /** Those of `names` that are not set and have no default. */
  unset: string[];
  /** The string after interpolation. */
  value: string;
}

/** The config strings that reference variables, by path: so an issue at a path can name them. */
export class VariableOrigins {
  private readonly byPath = new Map<string, VariableUse>();

  record(path: ConfigPath, use: VariableUse): void {
    this.byPath.set(pathKey(path), use);
  }

  at(path: ConfigPath): VariableUse | undefined {
    return this.byPath.get(pathKey(path));
  }
}

function pathKey(path: ConfigPath): string {
  return JSON.stringify(path.map(String));
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

  /** The unhandled ones, grouped by the string that uses them. */
  unhandledByPath(): [ConfigPath, string[]][] {
    const byPath = new Map<string, [ConfigPath, string[]]>();
    for (const m of this.unhandled()) {
      const key = JSON.stringify(m.path);
      const entry = byPath.get(key) ?? [m.path, []];
      entry[1].push(m.name);
      byPath.set(key, entry);
    }
    return [...byPath.values()];
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
  origins: VariableOrigins,
): unknown {
  if (typeof value === 'string') {
    const result = interpolate(value, env);
    for (const name of result.missing) missing.push({ path, name });
    if (result.used.length > 0)
      origins.record(path, { names: result.used, unset: result.missing, value: result.value });
    return result.value;
  }
  if (Array.isArray(value))
    return value.map((v, i) => interpolateTree(v, [...path, i], env, missing, origins));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = interpolateTree(v, [...path, k], env, missing, origins);
    return out;
  }
  return value;
}
