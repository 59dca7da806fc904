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
